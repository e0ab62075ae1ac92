// load_model / create_model / save_model: config.json -> architecture, and a
// strict match between the model's parameters and the checkpoint's tensors.
#include <filesystem>
#include <regex>
#include <set>

#include <torch/torch.h>

#include "mixpeft/checkpoint.h"
#include "mixpeft/error.h"
#include "mixpeft/model.h"
#include "mixpeft/nn.h"
#include "mixpeft/safetensors.h"
#include "models/config.h"

namespace mixpeft {
namespace {

namespace fs = std::filesystem;

nlohmann::json read_config(const std::string& path) {
  std::string text = io::read_file(path);
  try {
    auto j = nlohmann::json::parse(text);
    MIXPEFT_CHECK(j.is_object(), ErrorKind::kCorrupt, path, ": expected a JSON object");
    return j;
  } catch (const nlohmann::json::parse_error& e) {
    fail(ErrorKind::kCorrupt, path, ": malformed JSON: ", e.what());
  }
}

std::string supported_list() {
  std::string s;
  for (const auto& e : models::model_registry()) s += (s.empty() ? "" : ", ") + std::string(e.model_type);
  return s;
}

std::string shape_str(at::IntArrayRef shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

std::string shape_str(const std::vector<int64_t>& shape) { return shape_str(at::IntArrayRef(shape)); }

// Checkpoint key of a parameter: base models (BertModel, LlamaModel, ...) are
// stored without their base prefix, task models with it.
std::string checkpoint_key(const Model& model, const std::string& param) {
  if (model.task() == Task::kBase) {
    const std::string p = model.base_prefix() + ".";
    if (param.rfind(p, 0) == 0) return param.substr(p.size());
  }
  return param;
}

void init_fresh(Model& model, double std, uint64_t seed) {
  torch::NoGradGuard no_grad;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  for (auto& item : model.named_modules()) {
    auto* m = item.value().get();
    if (auto* lin = dynamic_cast<nn::LinearImpl*>(m)) {
      lin->weight.normal_(0.0, std, gen);
      if (lin->bias.defined()) lin->bias.zero_();
    } else if (auto* emb = dynamic_cast<torch::nn::EmbeddingImpl*>(m)) {
      emb->weight.normal_(0.0, std, gen);
    } else if (auto* ln = dynamic_cast<torch::nn::LayerNormImpl*>(m)) {
      ln->weight.fill_(1.0);
      ln->bias.zero_();
    } else if (auto* rms = dynamic_cast<nn::RMSNormImpl*>(m)) {
      rms->weight.fill_(1.0);
    }
  }
}

std::shared_ptr<Model> build(nlohmann::json config, const std::string& where, const LoadOptions& options) {
  models::ConfigView view(config, where);
  std::string model_type = view.get_string("model_type");
  std::string architecture = options.architecture;
  if (architecture.empty()) {
    auto it = config.find("architectures");
    if (it != config.end() && it->is_array() && !it->empty() && (*it)[0].is_string())
      architecture = (*it)[0].get<std::string>();
    else
      view.bad("architectures", "is missing: pass an architecture explicitly");
  }
  if (options.num_labels > 0) {
    config["num_labels"] = options.num_labels;
    nlohmann::json id2label = nlohmann::json::object(), label2id = nlohmann::json::object();
    for (int64_t i = 0; i < options.num_labels; ++i) {
      id2label[std::to_string(i)] = "LABEL_" + std::to_string(i);
      label2id["LABEL_" + std::to_string(i)] = i;
    }
    config["id2label"] = id2label;
    config["label2id"] = label2id;
  } else if (!config.contains("num_labels") && config.contains("id2label") && config["id2label"].is_object()) {
    config["num_labels"] = config["id2label"].size();
  }
  config["architectures"] = nlohmann::json::array({architecture});
  for (const auto& entry : models::model_registry()) {
    if (model_type != entry.model_type) continue;
    auto model = entry.factory(view, architecture);
    model->mutable_config() = config;
    init_fresh(*model, view.get_double("initializer_range", 0.02), options.init_seed);
    return model;
  }
  fail(ErrorKind::kUnsupported, where, ": model_type \"", model_type, "\" is not supported (supported: ",
       supported_list(), ")");
}

void finish(Model& model, const LoadOptions& options) {
  MIXPEFT_CHECK(options.dtype == torch::kFloat || options.dtype == torch::kBFloat16 ||
                    options.dtype == torch::kHalf,
                ErrorKind::kInvalidArgument, "compute dtype must be float32, bfloat16 or float16");
  model.to(options.device, options.dtype);
  model.eval();
}

}  // namespace

std::shared_ptr<Model> create_model(const nlohmann::json& config, const LoadOptions& options) {
  auto model = build(config, "config", options);
  finish(*model, options);
  return model;
}

std::shared_ptr<Model> load_model(const std::string& dir, const LoadOptions& options) {
  MIXPEFT_CHECK(fs::is_directory(dir), ErrorKind::kNotFound, dir, ": not a model folder (expected config.json and model.safetensors)");
  const std::string config_path = (fs::path(dir) / "config.json").string();
  auto model = build(read_config(config_path), config_path, options);
  auto ckpt = io::ShardedCheckpoint::open(dir);

  std::set<std::string> wanted;  // checkpoint keys the model needs
  std::vector<std::string> missing, mismatched;
  std::vector<std::regex> allowed;
  for (const auto& pattern : options.allow_missing) allowed.emplace_back(pattern);
  torch::NoGradGuard no_grad;
  for (auto& item : model->named_parameters()) {
    std::string key = checkpoint_key(*model, item.key());
    // Accept checkpoints that store a task model's base without its prefix
    // (e.g. GPT-2's "h.0.attn..." for "transformer.h.0.attn...") and the reverse.
    std::string found;
    const std::string prefix = model->base_prefix() + ".";
    if (ckpt.contains(key)) {
      found = key;
    } else if (key.rfind(prefix, 0) == 0 && ckpt.contains(key.substr(prefix.size()))) {
      found = key.substr(prefix.size());
    } else if (ckpt.contains(prefix + key)) {
      found = prefix + key;
    }
    if (found.empty()) {
      bool ok = false;
      for (const auto& re : allowed) ok = ok || std::regex_match(item.key(), re);
      if (!ok) missing.push_back(key + " " + shape_str(item.value().sizes()));
      continue;
    }
    wanted.insert(found);
    auto [file, info] = ckpt.locate(found);
    if (at::IntArrayRef(info->shape) != item.value().sizes()) {
      mismatched.push_back(found + ": checkpoint has " + shape_str(info->shape) + ", model expects " +
                           shape_str(item.value().sizes()));
      continue;
    }
    item.value().copy_(io::read_tensor(*file, *info));
  }
  std::vector<std::string> unexpected;
  std::vector<std::regex> ignored;
  for (const auto& pattern : options.ignore_unexpected) ignored.emplace_back(pattern);
  for (const auto& name : ckpt.names()) {
    if (wanted.count(name) || model->ignorable_key(name)) continue;
    bool ok = false;
    for (const auto& re : ignored) ok = ok || std::regex_match(name, re);
    if (!ok) unexpected.push_back(name);
  }

  auto list = [](const std::vector<std::string>& v) {
    std::string s;
    for (size_t i = 0; i < v.size() && i < 10; ++i) s += "\n  " + v[i];
    if (v.size() > 10) s += "\n  ... and " + std::to_string(v.size() - 10) + " more";
    return s;
  };
  const std::string what = ckpt.location() + " (" + model->architecture() + ")";
  MIXPEFT_CHECK(mismatched.empty(), ErrorKind::kCorrupt, what, ": ", mismatched.size(),
                " tensor(s) with the wrong shape:", list(mismatched));
  MIXPEFT_CHECK(missing.empty(), ErrorKind::kCorrupt, what, ": ", missing.size(),
                " tensor(s) missing from the checkpoint:", list(missing),
                "\n(to start them fresh, e.g. a new classification head, allow them as missing)");
  MIXPEFT_CHECK(unexpected.empty(), ErrorKind::kCorrupt, what, ": ", unexpected.size(),
                " unexpected tensor(s) in the checkpoint:", list(unexpected),
                "\n(is config.json's model_type / architectures right for these weights?)");
  finish(*model, options);
  return model;
}

void save_model(Model& model, const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  MIXPEFT_CHECK(!ec, ErrorKind::kIO, dir, ": cannot create folder: ", ec.message());
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  c10::ScalarType dtype = torch::kFloat;
  for (auto& item : model.named_parameters()) {
    tensors.emplace_back(checkpoint_key(model, item.key()), item.value().detach());
    dtype = item.value().scalar_type();
  }
  io::save_tensors((fs::path(dir) / "model.safetensors").string(), tensors, {{"format", "pt"}});
  auto config = model.config();
  config["torch_dtype"] = dtype == torch::kBFloat16 ? "bfloat16" : dtype == torch::kHalf ? "float16" : "float32";
  io::write_file_atomic((fs::path(dir) / "config.json").string(), config.dump(2) + "\n");
}

std::vector<std::string> supported_model_types() {
  std::vector<std::string> v;
  for (const auto& e : models::model_registry()) v.push_back(e.model_type);
  return v;
}

}  // namespace mixpeft
