// mixpeft inspect PATH: what a model folder or a .safetensors file holds.
//
//   $ mixpeft inspect tests/data/fixtures/llama
//   path          tests/data/fixtures/llama
//   model_type    llama (LlamaForCausalLM)
//   layers        2, hidden 64, vocab 256
//   parameters    107,584 (all float32)
//   on disk       429,408 bytes (model.safetensors)
//
// --tensors lists every tensor (name, dtype, shape). For an adapter folder,
// --model BASE adds the architecture and the trainable parameters and %.
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>

#include <CLI/CLI.hpp>

#include "commands.h"
#include "mixpeft/error.h"
#include "mixpeft/model.h"
#include "mixpeft/peft.h"
#include "mixpeft/safetensors.h"
#include "mixpeft/train.h"

#include <nlohmann/json.hpp>

namespace mixpeft::cli {
namespace {

namespace fs = std::filesystem;

std::string with_commas(int64_t n) {
  std::string s = std::to_string(n), out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i && (s.size() - i) % 3 == 0) out += ',';
    out += s[i];
  }
  return out;
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// Sums the safetensors files of a folder (or one file).
int64_t bytes_on_disk(const std::string& path, std::vector<std::string>* files) {
  if (fs::is_regular_file(path)) {
    files->push_back(fs::path(path).filename().string());
    return static_cast<int64_t>(fs::file_size(path));
  }
  int64_t total = 0;
  for (const auto& entry : fs::directory_iterator(path)) {
    if (entry.path().extension() == ".safetensors") {
      files->push_back(entry.path().filename().string());
      total += static_cast<int64_t>(entry.file_size());
    }
  }
  return total;
}

void print_tensors(const io::ShardedCheckpoint& ckpt) {
  for (const auto& name : ckpt.names()) {
    auto [file, info] = ckpt.locate(name);
    std::cout << "  " << name << "  " << io::dtype_name(info->dtype) << "  " << shape_str(info->shape) << "\n";
  }
}

void run(const std::string& path, bool list_tensors, const std::string& base) {
  MIXPEFT_CHECK(fs::exists(path), ErrorKind::kNotFound, path, ": no such file or folder");
  std::vector<std::string> files;
  const int64_t disk = bytes_on_disk(path, &files);
  const bool adapter = fs::is_directory(path) && fs::exists(fs::path(path) / "adapter_config.json");
  auto ckpt = io::ShardedCheckpoint::open(adapter ? (fs::path(path) / "adapter_model.safetensors").string() : path);
  std::map<std::string, int64_t> by_dtype;
  int64_t total = 0;
  for (const auto& name : ckpt.names()) {
    auto [file, info] = ckpt.locate(name);
    by_dtype[io::dtype_name(info->dtype)] += info->numel();
    total += info->numel();
  }
  std::cout << "path          " << path << "\n";
  if (adapter) {
    auto config = nlohmann::json::parse(io::read_file((fs::path(path) / "adapter_config.json").string()));
    std::cout << "adapter       " << config.value("peft_type", std::string("?"));
    for (const char* key : {"r", "lora_alpha", "num_experts", "bottleneck_size", "variant", "placement"})
      if (config.contains(key) && !config[key].is_null()) std::cout << ", " << key << " " << config[key].dump();
    if (config.contains("target_modules") && !config["target_modules"].is_null())
      std::cout << ", targets " << config["target_modules"].dump();
    std::cout << "\n";
    if (!config.value("task_type", std::string()).empty())
      std::cout << "task          " << config["task_type"].get<std::string>() << "\n";
    if (!base.empty()) {
      // On its base model: what the adapter costs relative to the whole.
      auto peft = train::load_adapter(base, path);
      const int64_t trainable = peft->num_trainable(), all = peft->num_parameters();
      char pct[32];
      std::snprintf(pct, sizeof pct, "%.4f%%", 100.0 * static_cast<double>(trainable) / static_cast<double>(all));
      std::cout << "base          " << base << " (" << peft->model().architecture() << ", "
                << with_commas(all - trainable) << " frozen parameters)\n"
                << "trainable     " << with_commas(trainable) << " of " << with_commas(all) << " (" << pct << ")\n";
    }
  } else {
    MIXPEFT_CHECK(base.empty(), ErrorKind::kInvalidArgument, "--model: only for an adapter folder");
  }
  if (fs::is_directory(path) && fs::exists(fs::path(path) / "config.json")) {
    auto model = load_model(path);
    std::cout << "model_type    " << model->model_type() << " (" << model->architecture() << ")\n"
              << "layers        " << model->num_layers() << ", hidden " << model->hidden_size() << ", vocab "
              << model->vocab_size() << "\n";
  }
  std::cout << "tensors       " << ckpt.names().size() << "\n"
            << "parameters    " << with_commas(total) << " (";
  bool first = true;
  for (const auto& [dtype, n] : by_dtype) {
    std::cout << (first ? "" : ", ") << with_commas(n) << " " << dtype;
    first = false;
  }
  std::cout << ")\non disk       " << with_commas(disk) << " bytes (";
  for (size_t i = 0; i < files.size(); ++i) std::cout << (i ? ", " : "") << files[i];
  std::cout << ")\n";
  if (list_tensors) print_tensors(ckpt);
}

}  // namespace

void add_inspect_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("inspect", "Summarise a model folder, an adapter folder or a .safetensors file");
  static std::string path;
  static bool list_tensors = false;
  cmd->add_option("path", path, "Model folder (config.json + weights) or .safetensors file")->required();
  static std::string base;
  cmd->add_flag("--tensors", list_tensors, "List every tensor with its dtype and shape");
  cmd->add_option("--model", base, "For an adapter: its base model folder, to report trainable parameters and %")
      ->type_name("DIR");
  cmd->callback([] { run(path, list_tensors, base); });
}

}  // namespace mixpeft::cli
