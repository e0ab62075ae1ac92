// What `train` and `pretrain` share: their options and the run itself
// (cmd_train.cc).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace mixpeft::cli {

struct TrainArgs {
  std::string job;
  std::vector<std::string> sets;
  bool resume = false;
  std::string resume_from;
  int nproc = 1;
  std::string progress;
  int64_t stop_after = 0;
  bool pretrain = false;  // `pretrain`: [peft] defaults to FULL, model.config is required
};

void add_train_options(CLI::App* cmd, TrainArgs& args);
void run_train(const TrainArgs& args);

}  // namespace mixpeft::cli
