// Trainer checkpoints (private to src/train). A checkpoint is a folder
// OUTPUT/checkpoints/step-NNNNNNNN/ holding
//   trainer_state.json         step, data position, best metric, the job
//   trainer_state.safetensors  "param.<name>" (trainable parameters, exact),
//                              "optim.exp_avg.<name>", "optim.exp_avg_sq.<name>",
//                              "rng.cpu.<rank>", "rng.routing.<rank>" (uint8 generator states)
//   artifact/                  the adapter (or model) as Trainable::save writes it
// It is written under a temporary name and renamed into place, so a folder
// named step-N is always complete; a run killed during a save leaves only
// a .tmp-* folder, which the next save removes.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>
#include <nlohmann/json.hpp>

namespace mixpeft::train {

struct TrainerState {
  int64_t step = 0;            // optimizer steps done
  int64_t epoch = 0;           // epoch of the next batch
  int64_t batch_in_epoch = 0;  // index of the next batch in that epoch's plan
  double best_value = 0;
  int64_t best_step = -1;      // -1: no evaluation yet
  int64_t bad_evals = 0;       // evaluations since the best one
  nlohmann::json best_metrics = nlohmann::json::object();
  double last_loss = 0;
  nlohmann::json to_json() const;
  static TrainerState from_json(const nlohmann::json& j, const std::string& where);
};

struct Checkpoint {
  std::string dir;
  TrainerState state;
  nlohmann::json job;    // JobSpec::to_json() of the run that wrote it
  int64_t world_size = 1;
  std::map<std::string, at::Tensor> tensors;  // trainer_state.safetensors
};

// Writes a checkpoint atomically (see above) and removes all but the
// `keep` newest ones. `artifact` writes the adapter into the folder it is given.
void write_checkpoint(const std::string& output_dir, const TrainerState& state, const nlohmann::json& job,
                      int64_t world_size, const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                      const std::function<void(const std::string&)>& artifact, int64_t keep);

Checkpoint read_checkpoint(const std::string& dir);

// Replaces folder `dir` by a new one written by `write` (into a temporary
// sibling, then renamed), e.g. OUTPUT/best. The old folder stays until the
// new one is complete.
void replace_dir(const std::string& dir, const std::function<void(const std::string&)>& write);

}  // namespace mixpeft::train
