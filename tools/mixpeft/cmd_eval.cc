// mixpeft eval JOB: the validation (or test, or train) metrics of a trained
// adapter, or of a plain model (e.g. a merged one).
//
//   $ mixpeft eval configs/demo.toml                        # OUTPUT/best (else OUTPUT/final)
//   $ mixpeft eval configs/demo.toml --adapter runs/demo/checkpoints/step-00000040/artifact
//   $ mixpeft eval configs/demo.toml --set model.path=merged --no-adapter
#include <filesystem>
#include <iostream>

#include <CLI/CLI.hpp>

#include "commands.h"
#include "job_util.h"
#include "mixpeft/peft.h"
#include "mixpeft/tokenizer.h"

namespace mixpeft::cli {
namespace {

namespace fs = std::filesystem;

struct EvalArgs {
  std::string job;
  std::vector<std::string> sets;
  std::string adapter;
  bool no_adapter = false;
  std::string split = "validation";
  bool json = false;
};

void run_eval(const EvalArgs& a) {
  train::JobSpec job = load_job(a.job, a.sets);
  const std::string tok_path = job.model.tokenizer.empty() ? job.model.path : job.model.tokenizer;
  auto tokenizer = tok::Tokenizer::load(tok_path);
  data::Dataset ds = data::load_dataset(job.dataset, *tokenizer);
  const data::Split* split = a.split == "train" ? &ds.train : a.split == "test" ? &ds.test : &ds.validation;
  MIXPEFT_CHECK(a.split != "test" || ds.has_test(), ErrorKind::kInvalidArgument,
                "--split test: the job's dataset has no test split (dataset.test)");
  std::shared_ptr<Model> model;
  std::string what;
  const std::string method = job.method();
  // What the run saved: --adapter, else OUTPUT/best, else OUTPUT/final.
  const std::string trained =
      !a.adapter.empty() ? a.adapter
      : fs::exists(fs::path(job.output_dir) / "best") ? job.output_dir + "/best"
                                                      : job.output_dir + "/final";
  if (a.no_adapter || method == "FULL" || method == "HEAD") {
    // FULL and HEAD runs save whole models.
    what = a.no_adapter ? job.model.path : trained;
    model = train::load_task_model(what, job.model.dtype, ds.task, ds.label_names, job.seed);
  } else {
    what = trained;
    MIXPEFT_CHECK(fs::exists(fs::path(what) / "adapter_config.json"), ErrorKind::kNotFound, what,
                  ": no adapter here (train first, or pass --adapter DIR or --no-adapter)");
    model = train::load_adapter(job.model.path, what, job.model.dtype)->model_ptr();
  }
  nlohmann::json m = train::evaluate(*model, ds, *split, train::eval_options(job.train, data::pad_id_for(*tokenizer)));
  if (a.json) {
    std::cout << nlohmann::json{{"model", what}, {"split", a.split}, {"metrics", m}}.dump() << "\n";
    return;
  }
  std::cout << "model     " << what << "\nsplit     " << a.split << " (" << m["examples"].get<int64_t>()
            << " examples)\n";
  for (auto it = m.begin(); it != m.end(); ++it) {
    if (it.key() == "examples") continue;
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.6f", it->is_number() ? it->get<double>() : std::nan(""));
    std::cout << it.key() << std::string(it.key().size() < 10 ? 10 - it.key().size() : 1, ' ') << buf << "\n";
  }
}

}  // namespace

void add_eval_command(CLI::App& app) {
  static EvalArgs a;
  auto* cmd = app.add_subcommand("eval", "Evaluate a trained adapter (or a plain model) on a job's dataset");
  cmd->add_option("job", a.job, "Job file (.toml or .json), as given to train")->required();
  cmd->add_option("--set", a.sets, "Override a key of the job (repeatable)")->type_name("KEY=VALUE");
  auto* adapter = cmd->add_option("--adapter", a.adapter, "Adapter folder (default: OUTPUT/best, else OUTPUT/final)")
                      ->type_name("DIR");
  cmd->add_flag("--no-adapter", a.no_adapter, "Evaluate model.path as it is (e.g. a merged model)")->excludes(adapter);
  cmd->add_option("--split", a.split, "validation (default), test or train")
      ->check(CLI::IsMember({"validation", "test", "train"}));
  cmd->add_flag("--json", a.json, "Print one JSON object instead of lines");
  cmd->callback([] { run_eval(a); });
}

}  // namespace mixpeft::cli
