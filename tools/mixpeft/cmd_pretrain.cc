// mixpeft pretrain JOB: train a model from scratch (model.config, every
// weight trains) and save it as a Hugging Face folder with its tokenizer.
//
//   $ mixpeft pretrain configs/pretrain-base.toml
//   $ mixpeft pretrain configs/pretrain-base.toml --resume
//
// The job is a train job (docs/TRAINING.md) whose [model] names a config.json
// and a tokenizer instead of a checkpoint; [peft] may be left out (FULL).
#include <CLI/CLI.hpp>

#include "commands.h"
#include "train_command.h"

namespace mixpeft::cli {

void add_pretrain_command(CLI::App& app) {
  static TrainArgs a;
  a.pretrain = true;
  auto* cmd = app.add_subcommand("pretrain", "Train a model from scratch (model.config + tokenizer) as a job file says");
  add_train_options(cmd, a);
  cmd->callback([] { run_train(a); });
}

}  // namespace mixpeft::cli
