// Reading a job for `train` and `eval`: the file, then each --set override.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "mixpeft/error.h"
#include "mixpeft/job_config.h"
#include "mixpeft/train.h"

namespace mixpeft::cli {

// `pretrain`: a job without [peft] trains every weight, and it must start
// from model.config.
inline train::JobSpec load_job(const std::string& path, const std::vector<std::string>& overrides,
                               bool pretrain = false) {
  nlohmann::json job = config::read_job_file(path);
  for (const auto& o : overrides) config::apply_override(job, o);
  if (pretrain) {
    if (!job.contains("peft")) job["peft"] = {{"peft_type", "FULL"}};
    const bool scratch = job.contains("model") && job["model"].is_object() && job["model"].contains("config");
    MIXPEFT_CHECK(scratch, ErrorKind::kInvalidArgument, path,
                  ": pretrain starts from model.config (a config.json); to fine-tune a checkpoint use train");
  }
  // Relative paths in a job are relative to the working directory, as on the command line.
  try {
    return train::JobSpec::from_json(job, "");
  } catch (const Error& e) {
    throw Error(e.kind(), path + ": " + e.what());
  }
}

}  // namespace mixpeft::cli
