// The method-independent part of PEFT: target selection, freezing, saving
// and loading adapters, merging.
#include "mixpeft/peft.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <regex>

#include <torch/torch.h>

#include "mixpeft/checkpoint.h"
#include "mixpeft/error.h"
#include "mixpeft/nn.h"
#include "mixpeft/safetensors.h"
#include "peft/registry.h"

namespace mixpeft::peft {
namespace {

namespace fs = std::filesystem;
constexpr const char* kSavedPrefix = "base_model.model.";

std::string upper(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

std::string shape_str(at::IntArrayRef s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

bool name_matches_module(const std::string& param, const std::string& module) {
  // "classifier" matches "classifier.weight" and "x.classifier.out_proj.bias".
  const std::string dotted = module + ".";
  return param.rfind(dotted, 0) == 0 || param.find("." + dotted) != std::string::npos;
}

}  // namespace

bool Targets::matches(const std::string& name) const {
  if (!regex.empty()) return std::regex_match(name, std::regex(regex));
  for (const auto& m : modules) {
    if (name == m) return true;
    if (name.size() > m.size() && name.compare(name.size() - m.size(), m.size(), m) == 0 &&
        name[name.size() - m.size() - 1] == '.')
      return true;
  }
  return false;
}

Targets Targets::from_json(const nlohmann::json& config, const std::string& where) {
  Targets t;
  auto it = config.find("target_modules");
  if (it == config.end() || it->is_null()) return t;
  if (it->is_string()) {
    t.regex = it->get<std::string>();
    try {
      std::regex check(t.regex);
    } catch (const std::regex_error& e) {
      fail(ErrorKind::kInvalidArgument, where, ": target_modules regex \"", t.regex, "\" is invalid: ", e.what());
    }
    return t;
  }
  MIXPEFT_CHECK(it->is_array(), ErrorKind::kInvalidArgument, where,
                ": target_modules must be a list of names or a regex string");
  for (const auto& e : *it) {
    MIXPEFT_CHECK(e.is_string(), ErrorKind::kInvalidArgument, where, ": target_modules entries must be strings");
    t.modules.push_back(e.get<std::string>());
  }
  return t;
}

nlohmann::json Targets::to_json() const {
  if (!regex.empty()) return regex;
  return modules;
}

std::vector<LinearTarget> find_linear_targets(Model& model, const Targets& requested, const std::string& where) {
  Targets targets = requested;
  if (targets.empty()) targets.modules = model.default_lora_targets();
  std::vector<LinearTarget> found;
  std::vector<std::string> all;
  for (auto& item : model.named_modules("", /*include_self=*/false)) {
    auto* linear = dynamic_cast<nn::LinearImpl*>(item.value().get());
    if (!linear) continue;
    all.push_back(item.key());
    if (targets.matches(item.key())) found.push_back({item.key(), linear});
  }
  if (found.empty()) {
    std::string names;
    for (size_t i = 0; i < all.size() && i < 12; ++i) names += (i ? ", " : "") + all[i];
    fail(ErrorKind::kInvalidArgument, where, ": target_modules ", targets.to_json().dump(),
         " matched no Linear layer of ", model.architecture(), " (its Linear layers include: ", names, ")");
  }
  return found;
}

void Method::merge(Model&) { fail(ErrorKind::kUnsupported, peft_type(), " adapters cannot be merged"); }
void Method::unmerge(Model&) { fail(ErrorKind::kUnsupported, peft_type(), " adapters cannot be merged"); }
std::pair<nlohmann::json, std::vector<std::pair<std::string, at::Tensor>>> Method::export_lora(Model&) {
  fail(ErrorKind::kUnsupported, peft_type(),
       " adapters have no exact plain-LoRA form (export works for LORA, MOSLORA and merged ADAMIX with LoRA experts)");
}

std::vector<std::pair<std::string, at::Tensor>> Method::saved_tensors(Model& model) {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (auto& p : model.named_parameters())
    if (owns(p.key())) out.emplace_back(p.key(), p.value().detach());
  return out;
}

void Method::load_saved(Model& model, const std::map<std::string, at::Tensor>& tensors) {
  torch::NoGradGuard no_grad;
  auto params = model.named_parameters();
  for (const auto& [name, t] : tensors) {
    auto* p = params.find(name);
    MIXPEFT_CHECK(p != nullptr, ErrorKind::kInternal, peft_type(), ": no parameter ", name, " to load into");
    p->copy_(t);
  }
}

std::unique_ptr<Method> create_method(const nlohmann::json& config, const std::string& where) {
  MIXPEFT_CHECK(config.is_object(), ErrorKind::kInvalidArgument, where, ": expected a JSON object");
  auto it = config.find("peft_type");
  MIXPEFT_CHECK(it != config.end() && it->is_string(), ErrorKind::kInvalidArgument, where,
                ": \"peft_type\" is missing (one of: ", [] {
                  std::string s;
                  for (const auto& m : supported_methods()) s += (s.empty() ? "" : ", ") + m;
                  return s;
                }(), ")");
  const std::string type = upper(it->get<std::string>());
  for (const auto& entry : method_registry())
    if (type == entry.peft_type) return entry.create(config, where);
  std::string s;
  for (const auto& m : supported_methods()) s += (s.empty() ? "" : ", ") + m;
  fail(ErrorKind::kUnsupported, where, ": peft_type \"", it->get<std::string>(), "\" is not supported (supported: ", s, ")");
}

std::vector<std::string> supported_methods() {
  std::vector<std::string> v;
  for (const auto& e : method_registry()) v.push_back(e.peft_type);
  return v;
}

PeftModel::PeftModel(std::shared_ptr<Model> model, std::unique_ptr<Method> method,
                     std::vector<std::string> modules_to_save)
    : model_(std::move(model)), method_(std::move(method)), modules_to_save_(std::move(modules_to_save)) {}

std::shared_ptr<PeftModel> PeftModel::create(std::shared_ptr<Model> base, const nlohmann::json& config) {
  MIXPEFT_CHECK(base != nullptr, ErrorKind::kInvalidArgument, "PeftModel::create: no base model");
  auto method = create_method(config, "adapter config");
  std::vector<std::string> to_save;
  if (auto it = config.find("modules_to_save"); it != config.end() && !it->is_null()) {
    MIXPEFT_CHECK(it->is_array(), ErrorKind::kInvalidArgument, "adapter config: modules_to_save must be a list");
    for (const auto& e : *it) to_save.push_back(e.get<std::string>());
  }
  std::shared_ptr<PeftModel> peft(new PeftModel(base, std::move(method), to_save));
  if (auto it = config.find("task_type"); it != config.end() && !it->is_null()) {
    MIXPEFT_CHECK(it->is_string(), ErrorKind::kInvalidArgument, "adapter config: task_type must be a string");
    peft->task_type_ = it->get<std::string>();
  }
  peft->method_->attach(*base);
  for (const auto& m : to_save) {
    bool found = false;
    for (auto& p : base->named_parameters()) found = found || name_matches_module(p.key(), m);
    MIXPEFT_CHECK(found, ErrorKind::kInvalidArgument, "adapter config: modules_to_save entry \"", m,
                  "\" matches no module of ", base->architecture());
  }
  peft->freeze();
  return peft;
}

bool PeftModel::in_modules_to_save(const std::string& name) const {
  for (const auto& m : modules_to_save_)
    if (name_matches_module(name, m)) return true;
  return false;
}

void PeftModel::freeze() {
  for (auto& p : model_->named_parameters())
    p.value().set_requires_grad(method_->owns(p.key()) || in_modules_to_save(p.key()));
}

std::vector<std::pair<std::string, at::Tensor>> PeftModel::trainable_parameters() {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (auto& p : model_->named_parameters())
    if (method_->owns(p.key()) || in_modules_to_save(p.key())) out.emplace_back(p.key(), p.value());
  return out;
}

int64_t PeftModel::num_trainable() {
  int64_t n = 0;
  for (auto& [name, t] : trainable_parameters()) n += t.numel();
  return n;
}

int64_t PeftModel::num_parameters() {
  int64_t n = 0;
  for (auto& p : model_->parameters()) n += p.numel();
  return n;
}

// Base models (BertModel, LlamaModel, ...) store names without their base
// prefix, as their checkpoints do; task models keep it.
std::string PeftModel::saved_name(const std::string& name) const {
  const std::string base = model_->base_prefix() + ".";
  if (model_->task() == Task::kBase && name.rfind(base, 0) == 0) return kSavedPrefix + name.substr(base.size());
  return kSavedPrefix + name;
}

std::string PeftModel::parameter_name(const std::string& saved) const {
  const std::string prefix = kSavedPrefix;
  std::string name = saved.rfind(prefix, 0) == 0 ? saved.substr(prefix.size()) : saved;
  if (model_->task() == Task::kBase) name = model_->base_prefix() + "." + name;
  return name;
}

std::vector<std::pair<std::string, at::Tensor>> PeftModel::saved_tensors() {
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (auto& [name, t] : method_->saved_tensors(*model_)) tensors.emplace_back(saved_name(name), t.detach());
  for (auto& [name, t] : trainable_parameters())
    if (!method_->owns(name)) tensors.emplace_back(saved_name(name), t.detach());
  return tensors;
}

void PeftModel::save(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  MIXPEFT_CHECK(!ec, ErrorKind::kIO, dir, ": cannot create folder: ", ec.message());
  auto tensors = saved_tensors();
  auto config = method_->config();
  config["modules_to_save"] = modules_to_save_.empty() ? nlohmann::json(nullptr) : nlohmann::json(modules_to_save_);
  if (!task_type_.empty()) config["task_type"] = task_type_;
  io::save_tensors((fs::path(dir) / "adapter_model.safetensors").string(), tensors, {{"format", "pt"}});
  io::write_file_atomic((fs::path(dir) / "adapter_config.json").string(), config.dump(2) + "\n");
}

std::shared_ptr<PeftModel> PeftModel::load(std::shared_ptr<Model> base, const std::string& dir) {
  const std::string config_path = (fs::path(dir) / "adapter_config.json").string();
  const std::string weights_path = (fs::path(dir) / "adapter_model.safetensors").string();
  nlohmann::json config;
  try {
    config = nlohmann::json::parse(io::read_file(config_path));
  } catch (const nlohmann::json::parse_error& e) {
    fail(ErrorKind::kCorrupt, config_path, ": malformed JSON: ", e.what());
  }
  std::shared_ptr<PeftModel> peft;
  try {
    peft = create(std::move(base), config);
  } catch (const Error& e) {
    // Name the file the bad config came from.
    throw Error(e.kind(), config_path + ": " + e.what());
  }
  auto file = io::SafetensorsFile::open(weights_path);
  // What the file must hold: the method's saved form and the modules_to_save
  // parameters (copied in place); the method's tensors go to load_saved().
  std::map<std::string, at::Tensor> params;
  std::set<std::string> from_method;
  for (auto& [name, t] : peft->method_->saved_tensors(*peft->model_)) {
    params.emplace(name, t);
    from_method.insert(name);
  }
  for (auto& [name, t] : peft->trainable_parameters())
    if (!peft->method_->owns(name)) params.emplace(name, t);
  std::map<std::string, at::Tensor> method_tensors;
  std::vector<std::string> problems;
  std::set<std::string> seen;
  torch::NoGradGuard no_grad;
  for (const auto& info : file->tensors()) {
    const std::string name = peft->parameter_name(info.name);
    auto it = params.find(name);
    if (it == params.end()) {
      problems.push_back("unexpected tensor " + info.name);
      continue;
    }
    seen.insert(name);
    if (at::IntArrayRef(info.shape) != it->second.sizes()) {
      problems.push_back(info.name + ": file has " + shape_str(info.shape) + ", model expects " +
                         shape_str(it->second.sizes()));
      continue;
    }
    if (from_method.count(name)) {
      method_tensors[name] = io::read_tensor(*file, info);
    } else {
      it->second.copy_(io::read_tensor(*file, info));
    }
  }
  for (const auto& [name, t] : params)
    if (!seen.count(name)) problems.push_back("missing tensor " + peft->saved_name(name) + " " + shape_str(t.sizes()));
  if (!problems.empty()) {
    std::string list;
    for (size_t i = 0; i < problems.size() && i < 10; ++i) list += "\n  " + problems[i];
    if (problems.size() > 10) list += "\n  ... and " + std::to_string(problems.size() - 10) + " more";
    fail(ErrorKind::kCorrupt, weights_path, ": does not match its adapter_config.json on ",
         peft->model().architecture(), ":", list);
  }
  try {
    peft->method_->load_saved(*peft->model_, method_tensors);
  } catch (const Error& e) {
    throw Error(e.kind(), weights_path + ": " + e.what());
  }
  return peft;
}

void PeftModel::export_lora(const std::string& dir) {
  auto [config, tensors] = method_->export_lora(*model_);
  std::error_code ec;
  fs::create_directories(dir, ec);
  MIXPEFT_CHECK(!ec, ErrorKind::kIO, dir, ": cannot create folder: ", ec.message());
  for (auto& [name, t] : tensors) name = saved_name(name);
  // A task head trained beside the adapter travels with it, as HF PEFT saves
  // modules_to_save ("base_model.model.score.weight").
  for (auto& [name, t] : trainable_parameters())
    if (!method_->owns(name)) tensors.emplace_back(saved_name(name), t.detach());
  config["modules_to_save"] = modules_to_save_.empty() ? nlohmann::json(nullptr) : nlohmann::json(modules_to_save_);
  if (!task_type_.empty()) config["task_type"] = task_type_;
  io::save_tensors((fs::path(dir) / "adapter_model.safetensors").string(), tensors, {{"format", "pt"}});
  io::write_file_atomic((fs::path(dir) / "adapter_config.json").string(), config.dump(2) + "\n");
}

void PeftModel::merge() {
  MIXPEFT_CHECK(!merged_, ErrorKind::kInvalidArgument, "merge: the adapter is already merged");
  method_->merge(*model_);
  merged_ = true;
}

void PeftModel::unmerge() {
  MIXPEFT_CHECK(merged_, ErrorKind::kInvalidArgument, "unmerge: the adapter is not merged");
  method_->unmerge(*model_);
  merged_ = false;
}

std::shared_ptr<Model> PeftModel::merge_and_unload() {
  if (!merged_) merge();
  method_->unload(*model_);
  for (auto& p : model_->parameters()) p.set_requires_grad(false);
  return model_;
}

}  // namespace mixpeft::peft
