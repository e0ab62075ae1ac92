// Parameter-efficient fine-tuning: methods that attach to a frozen Model.
//
//   auto model = mixpeft::load_model("tests/data/fixtures/llama");
//   auto peft = mixpeft::peft::PeftModel::create(model, {{"peft_type", "LORA"}, {"r", 8}});
//   peft->save("out/adapter");   // adapter_config.json + adapter_model.safetensors
//
// Every method lives in src/peft/<method>/ (config, layer, method, test) and
// has one line in src/peft/registry.cc. The specification of each method is
// docs/METHODS.md; adapter files are described in docs/ADAPTER_FORMAT.md.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "mixpeft/model.h"

namespace mixpeft::nn {
class LinearImpl;
}

namespace mixpeft::peft {

// Which Linear layers a method adapts, like HF PEFT's target_modules: a list
// of name suffixes (a module matches when its name equals an entry or ends
// with "." + entry) or one regex (full match on the module name).
struct Targets {
  std::vector<std::string> modules;
  std::string regex;
  bool empty() const { return modules.empty() && regex.empty(); }
  bool matches(const std::string& module_name) const;
  // From "target_modules": ["q_proj", "v_proj"] | "regex" | absent (= empty).
  static Targets from_json(const nlohmann::json& config, const std::string& where);
  nlohmann::json to_json() const;
};

struct LinearTarget {
  std::string name;  // module name, e.g. "model.layers.0.self_attn.q_proj"
  nn::LinearImpl* linear;
};

// Every Linear of `model` that `targets` selects (the architecture's default
// targets when `targets` is empty). Throws kInvalidArgument naming the
// targets and listing the model's Linear layers when nothing matches.
std::vector<LinearTarget> find_linear_targets(Model& model, const Targets& targets, const std::string& where);

// A PEFT method attached to one model. Created from its config by
// create_method(); attach() adds its modules under the layers it adapts.
class Method {
 public:
  virtual ~Method() = default;
  // The adapter_config.json "peft_type": "LORA", "MOSLORA", "ADAMIX", "BOTTLENECK", "XPEFT".
  virtual std::string peft_type() const = 0;
  // The complete, validated config (what adapter_config.json stores).
  virtual nlohmann::json config() const = 0;
  // Adds the method's modules and parameters to `model` (called once).
  virtual void attach(Model& model) = 0;
  // True for the parameters this method owns (they train and are saved).
  virtual bool owns(const std::string& parameter_name) const = 0;
  // Merging folds the method into the base weights (exactly the same outputs
  // in eval mode); unmerge restores them. Methods that cannot merge throw kUnsupported.
  virtual bool mergeable() const { return false; }
  virtual void merge(Model& model);
  virtual void unmerge(Model& model);
  // Removes the method's modules; after merge() this leaves a plain model
  // with the adapted weights (HF PEFT's merge_and_unload).
  virtual void unload(Model& model) = 0;
  // Tensors to write in the HF PEFT LoRA format (base_model.model.<module>.lora_A.weight ...)
  // and its adapter_config.json, for methods that convert exactly to plain LoRA.
  // Default: kUnsupported.
  virtual std::pair<nlohmann::json, std::vector<std::pair<std::string, at::Tensor>>> export_lora(Model& model);
  // What PeftModel::save stores for the method, by parameter-style name (the
  // file gets saved_name() of each). PeftModel::load checks a file against
  // this list (names and shapes, strictly) and hands the tensors it read,
  // by the same names, to load_saved(). Default: every parameter the method
  // owns, as it is, copied back on load. X-PEFT overrides both to store
  // hard masks as packed bits.
  virtual std::vector<std::pair<std::string, at::Tensor>> saved_tensors(Model& model);
  virtual void load_saved(Model& model, const std::map<std::string, at::Tensor>& tensors);
};

// Builds a method from an adapter_config.json-style object; "peft_type" picks
// the method (case-insensitive). Unknown keys are errors listing valid ones.
std::unique_ptr<Method> create_method(const nlohmann::json& config, const std::string& where = "adapter config");

// peft_type values create_method accepts, in registry order.
std::vector<std::string> supported_methods();

// A base model with one method attached. Base weights are frozen; only the
// method's parameters and those of modules_to_save require gradients.
class PeftModel {
 public:
  // `config` as create_method takes it; "modules_to_save": ["classifier"] optional.
  static std::shared_ptr<PeftModel> create(std::shared_ptr<Model> base, const nlohmann::json& config);
  // Loads adapter_config.json + adapter_model.safetensors (HF PEFT names).
  // Strict: missing, unexpected or misshaped tensors are kCorrupt naming them.
  static std::shared_ptr<PeftModel> load(std::shared_ptr<Model> base, const std::string& dir);

  Model& model() { return *model_; }
  std::shared_ptr<Model> model_ptr() { return model_; }
  Method& method() { return *method_; }
  const std::vector<std::string>& modules_to_save() const { return modules_to_save_; }
  // HF PEFT's "task_type" ("SEQ_CLS", "CAUSAL_LM", ...; "" = none): kept
  // from the config and written back by save().
  const std::string& task_type() const { return task_type_; }

  ModelOutputs forward(const ModelInputs& inputs) { return model_->forward(inputs); }
  // The trainable parameters by model name (method's + modules_to_save).
  std::vector<std::pair<std::string, at::Tensor>> trainable_parameters();
  int64_t num_trainable();
  int64_t num_parameters();
  // What save() writes into adapter_model.safetensors, by saved name: the
  // method's saved_tensors() and the modules_to_save parameters.
  std::vector<std::pair<std::string, at::Tensor>> saved_tensors();

  // Writes adapter_config.json + adapter_model.safetensors atomically.
  void save(const std::string& dir);
  // Writes the method as a plain HF PEFT LoRA adapter (LoRA, MoSLoRA, merged AdaMix-LoRA).
  void export_lora(const std::string& dir);

  void merge();
  void unmerge();
  // merge(), then drop the method's modules: the model is a plain model again.
  std::shared_ptr<Model> merge_and_unload();

  // The name a parameter has in adapter_model.safetensors ("base_model.model."
  // + its checkpoint name), and back.
  std::string saved_name(const std::string& parameter_name) const;
  std::string parameter_name(const std::string& saved_name) const;

 private:
  PeftModel(std::shared_ptr<Model> model, std::unique_ptr<Method> method, std::vector<std::string> modules_to_save);
  void freeze();
  bool in_modules_to_save(const std::string& parameter_name) const;

  std::shared_ptr<Model> model_;
  std::unique_ptr<Method> method_;
  std::vector<std::string> modules_to_save_;
  std::string task_type_;
  bool merged_ = false;
};

}  // namespace mixpeft::peft
