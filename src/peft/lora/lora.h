// LoRA (Hu et al., 2021): y = W0 x + b0 + s * B A dropout(x), s = alpha / r
// (alpha / sqrt(r) with rsLoRA). Parameters lora_A [r, in] and lora_B [out, r]
// sit on the adapted Linear, so their names are HF PEFT's
// (".../q_proj.lora_A.weight").
#pragma once

#include <memory>
#include <string>

#include <nlohmann/json.hpp>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/linear.h>

#include "mixpeft/nn.h"
#include "mixpeft/peft.h"
#include "peft/config_util.h"

namespace mixpeft::peft {

struct LoraConfig {
  int64_t r = 8;                 // rank; cost: r * (in + out) parameters per target
  double alpha = 8;              // scaling numerator (HF PEFT default 8)
  double dropout = 0.0;          // on the adapter's input, training only
  bool use_rslora = false;       // scaling alpha / sqrt(r) instead of alpha / r
  std::string bias = "none";     // none | all (every bias trains) | lora_only (targets' biases train)
  std::string init = "kaiming";  // kaiming: A Kaiming-uniform(a = sqrt 5), B = 0; gaussian: A ~ N(0, 1/r), B = 0
  uint64_t seed = 0;             // initialisation seed
  Targets targets;               // empty = the architecture's defaults

  // Reads the LoRA keys (HF PEFT's names) and leaves the reader to the caller.
  static LoraConfig read(ConfigReader& reader, const nlohmann::json& json);
  void write(nlohmann::json& out) const;  // HF PEFT's keys
  double scaling() const;
};

// Kaiming-uniform with a = sqrt(5), as torch.nn.Linear (and HF PEFT for lora_A) initialise.
void kaiming_uniform_(at::Tensor& weight, at::Generator& gen);

// What LoraFamilyMethod (lora_method.h) needs of a LoRA config.
inline const LoraConfig& lora_part(const LoraConfig& c) { return c; }

// The adapter one Linear carries. Variants (MoSLoRA) derive from it and
// override forward, delta_weight, exported_A and unload; merge and unmerge
// go through delta_weight.
class LoraLayer : public nn::LinearAdapter {
 public:
  LoraLayer(nn::LinearImpl& base, const LoraConfig& config, at::Generator& gen);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& base_out) override;
  // s * B A as [out, in].
  virtual at::Tensor delta_weight() const;
  // The lora_A of the equivalent plain LoRA adapter: lora_A itself, detached.
  virtual at::Tensor exported_A() const;
  void merge(nn::LinearImpl& base);
  void unmerge(nn::LinearImpl& base);
  // Removes the modules this layer registered on `base`.
  virtual void unload(nn::LinearImpl& base);

  torch::nn::Linear lora_A{nullptr}, lora_B{nullptr};
  double scaling;
  bool merged = false;

 protected:
  torch::nn::Dropout dropout_{nullptr};  // "lora_dropout" on the base layer, when lora_dropout > 0

 private:
  nn::LinearImpl* base_;
};

// Adds `delta` ([out, in]) to the Linear's stored weight, in its layout.
void add_to_weight(nn::LinearImpl& linear, const at::Tensor& delta, double sign);

}  // namespace mixpeft::peft
