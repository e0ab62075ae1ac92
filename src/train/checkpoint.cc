#include "train/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <regex>

#include "mixpeft/checkpoint.h"
#include "mixpeft/error.h"
#include "mixpeft/safetensors.h"
#include "mixpeft/train.h"

namespace fs = std::filesystem;

namespace mixpeft::train {
namespace {

void fsync_dir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

std::string step_name(int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "step-%08lld", static_cast<long long>(step));
  return buf;
}

void remove_all_quietly(const fs::path& p) {
  std::error_code ec;
  fs::remove_all(p, ec);
}

// Test hook (docs/TRAINING.md): MIXPEFT_TEST_CRASH_IN_SAVE=N makes the
// process exit abruptly in the middle of writing the checkpoint of step N.
void maybe_crash(int64_t step) {
  const char* v = std::getenv("MIXPEFT_TEST_CRASH_IN_SAVE");
  if (v != nullptr && std::atoll(v) == step) std::_Exit(86);
}

}  // namespace

nlohmann::json TrainerState::to_json() const {
  return {{"step", step},           {"epoch", epoch},         {"batch_in_epoch", batch_in_epoch},
          {"best_value", best_value}, {"best_step", best_step}, {"bad_evals", bad_evals},
          {"best_metrics", best_metrics}, {"last_loss", last_loss}};
}

TrainerState TrainerState::from_json(const nlohmann::json& j, const std::string& where) {
  TrainerState s;
  try {
    s.step = j.at("step").get<int64_t>();
    s.epoch = j.at("epoch").get<int64_t>();
    s.batch_in_epoch = j.at("batch_in_epoch").get<int64_t>();
    s.best_value = j.at("best_value").is_null() ? 0.0 : j.at("best_value").get<double>();
    s.best_step = j.at("best_step").get<int64_t>();
    s.bad_evals = j.at("bad_evals").get<int64_t>();
    s.best_metrics = j.at("best_metrics");
    s.last_loss = j.at("last_loss").is_null() ? 0.0 : j.at("last_loss").get<double>();
  } catch (const nlohmann::json::exception& e) {
    fail(ErrorKind::kCorrupt, where, ": bad trainer state: ", e.what());
  }
  MIXPEFT_CHECK(s.step >= 0 && s.epoch >= 0 && s.batch_in_epoch >= 0, ErrorKind::kCorrupt, where,
                ": bad trainer state (negative step or position)");
  return s;
}

void replace_dir(const std::string& dir, const std::function<void(const std::string&)>& write) {
  const fs::path target(dir);
  const fs::path parent = target.parent_path().empty() ? fs::path(".") : target.parent_path();
  fs::create_directories(parent);
  const std::string stem = target.filename().string();
  const fs::path tmp = parent / (".tmp-" + stem + "-" + std::to_string(::getpid()));
  const fs::path old = parent / (".old-" + stem + "-" + std::to_string(::getpid()));
  remove_all_quietly(tmp);
  fs::create_directories(tmp);
  write(tmp.string());
  fsync_dir(tmp.string());
  std::error_code ec;
  if (fs::exists(target)) {
    remove_all_quietly(old);
    fs::rename(target, old, ec);
    MIXPEFT_CHECK(!ec, ErrorKind::kIO, dir, ": cannot move aside: ", ec.message());
  }
  fs::rename(tmp, target, ec);
  MIXPEFT_CHECK(!ec, ErrorKind::kIO, dir, ": cannot rename ", tmp.string(), " into place: ", ec.message());
  fsync_dir(parent.string());
  remove_all_quietly(old);
}

void write_checkpoint(const std::string& output_dir, const TrainerState& state, const nlohmann::json& job,
                      int64_t world_size, const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                      const std::function<void(const std::string&)>& artifact, int64_t keep) {
  const fs::path root = fs::path(output_dir) / "checkpoints";
  fs::create_directories(root);
  // Leftovers of a save that was killed.
  for (const auto& entry : fs::directory_iterator(root))
    if (entry.path().filename().string().rfind(".tmp-", 0) == 0) remove_all_quietly(entry.path());
  replace_dir((root / step_name(state.step)).string(), [&](const std::string& tmp) {
    io::save_tensors((fs::path(tmp) / "trainer_state.safetensors").string(), tensors, {{"format", "mixpeft"}});
    maybe_crash(state.step);
    artifact((fs::path(tmp) / "artifact").string());
    nlohmann::json meta = {{"state", state.to_json()}, {"job", job}, {"world_size", world_size},
                           {"format", "mixpeft-trainer-checkpoint-1"}};
    io::write_file_atomic((fs::path(tmp) / "trainer_state.json").string(), meta.dump(2) + "\n");
  });
  auto all = list_checkpoints(output_dir);
  for (size_t i = 0; i + static_cast<size_t>(keep) < all.size(); ++i) remove_all_quietly(all[i]);
}

Checkpoint read_checkpoint(const std::string& dir) {
  Checkpoint c;
  c.dir = dir;
  const std::string meta_path = (fs::path(dir) / "trainer_state.json").string();
  MIXPEFT_CHECK(fs::exists(meta_path), ErrorKind::kNotFound, dir, ": not a checkpoint (no trainer_state.json)");
  nlohmann::json meta;
  try {
    meta = nlohmann::json::parse(io::read_file(meta_path));
    c.job = meta.at("job");
    c.world_size = meta.at("world_size").get<int64_t>();
    c.state = TrainerState::from_json(meta.at("state"), meta_path);
  } catch (const nlohmann::json::exception& e) {
    fail(ErrorKind::kCorrupt, meta_path, ": ", e.what());
  }
  c.tensors = io::load_tensors((fs::path(dir) / "trainer_state.safetensors").string());
  return c;
}

std::vector<std::string> list_checkpoints(const std::string& output_dir) {
  const fs::path root = fs::path(output_dir) / "checkpoints";
  std::vector<std::pair<int64_t, std::string>> found;
  std::error_code ec;
  if (!fs::is_directory(root, ec)) return {};
  static const std::regex kName("step-([0-9]+)");
  for (const auto& entry : fs::directory_iterator(root)) {
    std::smatch m;
    const std::string name = entry.path().filename().string();
    if (!std::regex_match(name, m, kName)) continue;
    if (!fs::exists(entry.path() / "trainer_state.json")) continue;
    found.emplace_back(std::stoll(m[1].str()), entry.path().string());
  }
  std::sort(found.begin(), found.end());
  std::vector<std::string> out;
  for (auto& f : found) out.push_back(f.second);
  return out;
}

}  // namespace mixpeft::train
