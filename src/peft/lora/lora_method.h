// The Method of LoRA and of the methods built on LoraLayer (MoSLoRA): one
// layer per target Linear, merged, unmerged, unloaded and exported to plain
// LoRA the same way. Each method gives only what differs: its config type,
// its layer type, its peft_type and the name segments of its parameters.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "mixpeft/model.h"
#include "mixpeft/peft.h"
#include "peft/config_util.h"
#include "peft/lora/lora.h"

namespace mixpeft::peft {

// Config: `static Config read(ConfigReader&, const nlohmann::json&)`,
// `void write(nlohmann::json&) const`, and `lora_part(config)` found for it
// (its LoraConfig: targets, seed, bias). Layer: a LoraLayer constructed as
// Layer(LinearImpl&, const Config&, at::Generator&).
template <typename Config, typename Layer>
class LoraFamilyMethod : public Method {
 public:
  // `segments`: what the names of the method's parameters contain (".lora_A.", ...).
  LoraFamilyMethod(std::string peft_type, std::vector<std::string> segments, const nlohmann::json& json,
                   const std::string& where)
      : peft_type_(std::move(peft_type)), segments_(std::move(segments)) {
    ConfigReader rd(json, where);
    config_ = Config::read(rd, json);
    rd.finish();
  }

  std::string peft_type() const override { return peft_type_; }

  nlohmann::json config() const override {
    nlohmann::json j{{"peft_type", peft_type_}};
    config_.write(j);
    write_targets(j);
    return j;
  }

  void attach(Model& model) override {
    const LoraConfig& lora = lora_part(config_);
    auto gen = at::make_generator<at::CPUGeneratorImpl>(lora.seed);
    auto targets = find_linear_targets(model, lora.targets, peft_type_);
    if (lora.targets.empty()) resolved_ = model.default_lora_targets();
    for (auto& t : targets) {
      auto layer = std::make_shared<Layer>(*t.linear, config_, gen);
      t.linear->adapter = layer;
      fan_in_fan_out_ = fan_in_fan_out_ || t.linear->conv1d;
      layers_.push_back({t.linear, layer});
      target_names_.push_back(t.name);
    }
  }

  bool owns(const std::string& name) const override {
    for (const auto& s : segments_)
      if (name.find(s) != std::string::npos) return true;
    // bias = all: every bias trains; lora_only: the targets' biases.
    const LoraConfig& lora = lora_part(config_);
    const bool is_bias = name.size() > 5 && name.compare(name.size() - 5, 5, ".bias") == 0;
    if (!is_bias || lora.bias == "none") return false;
    if (lora.bias == "all") return true;
    const std::string module = name.substr(0, name.size() - 5);
    for (const auto& t : target_names_)
      if (t == module) return true;
    return false;
  }

  bool mergeable() const override { return true; }
  void merge(Model&) override {
    for (auto& [linear, layer] : layers_) layer->merge(*linear);
  }
  void unmerge(Model&) override {
    for (auto& [linear, layer] : layers_) layer->unmerge(*linear);
  }
  void unload(Model&) override {
    for (auto& [linear, layer] : layers_) {
      layer->unload(*linear);
      linear->adapter.reset();
    }
    layers_.clear();
  }

  // A plain LoRA adapter with the same delta weight: lora_A is the layer's
  // exported_A(), lora_B its own. The config is LoRA's (peft_type LORA,
  // without the method's own keys).
  std::pair<nlohmann::json, std::vector<std::pair<std::string, at::Tensor>>> export_lora(Model&) override {
    nlohmann::json j{{"peft_type", "LORA"}};
    lora_part(config_).write(j);
    write_targets(j);
    std::vector<std::pair<std::string, at::Tensor>> tensors;
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < layers_.size(); ++i) {
      tensors.emplace_back(target_names_[i] + ".lora_A.weight", layers_[i].second->exported_A());
      tensors.emplace_back(target_names_[i] + ".lora_B.weight", layers_[i].second->lora_B->weight.detach());
    }
    return {j, tensors};
  }

 private:
  // The targets as resolved on the model (when the config named none) and
  // fan_in_fan_out, over what Config::write put.
  void write_targets(nlohmann::json& j) const {
    const LoraConfig& lora = lora_part(config_);
    j["target_modules"] = resolved_.empty() ? lora.targets.to_json() : nlohmann::json(resolved_);
    j["fan_in_fan_out"] = fan_in_fan_out_;
  }

  std::string peft_type_;
  std::vector<std::string> segments_;
  Config config_;
  std::vector<std::pair<nn::LinearImpl*, std::shared_ptr<Layer>>> layers_;
  std::vector<std::string> target_names_;
  std::vector<std::string> resolved_;
  bool fan_in_fan_out_ = false;
};

}  // namespace mixpeft::peft
