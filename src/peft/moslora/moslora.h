// MoSLoRA (Wu et al., 2024; official code wutaiqiang/MoSLoRA): LoRA whose r
// rank-one subspaces are mixed by a learnable r x r mixer M,
//   y = W0 x + b0 + s * B M A dropout(x),   s = alpha / r (alpha / sqrt(r) with rsLoRA).
// Parameters on the adapted Linear: lora_A.weight [r, in] and lora_B.weight
// [out, r] (HF PEFT's names, as LoRA) and moslora_mixer.weight [r, r]. The
// official code calls the mixer lora_AB; mixpeft gives it the method's own
// prefix so that a MoSLoRA file is never mistaken for a plain LoRA one.
// Exact export to plain LoRA: A' = M A, B' = B.
#pragma once

#include <memory>
#include <string>

#include <nlohmann/json.hpp>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/linear.h>

#include "mixpeft/nn.h"
#include "mixpeft/peft.h"
#include "peft/config_util.h"
#include "peft/lora/lora.h"

namespace mixpeft::peft {

struct MosloraConfig {
  LoraConfig lora;  // every LoRA key (r, lora_alpha, lora_dropout, use_rslora, bias, target_modules, ...)
  // Initialisation of M: "kaiming" (default; Kaiming-uniform a = sqrt 5, as the
  // official code), "orthogonal" (M M^T = I, a random rotation of the
  // subspaces) or "identity" (M = I: starts exactly as LoRA with the same A).
  std::string mixer_init = "kaiming";

  static MosloraConfig read(ConfigReader& reader, const nlohmann::json& json);
  void write(nlohmann::json& out) const;
};

// What LoraFamilyMethod (lora_method.h) needs of a MoSLoRA config.
inline const LoraConfig& lora_part(const MosloraConfig& c) { return c.lora; }

// The adapter one Linear carries: LoRA's A, B, dropout and scaling (from
// LoraLayer) with the mixer between A and B. merge and unmerge are
// LoraLayer's, with this delta weight.
class MosloraLayer : public LoraLayer {
 public:
  MosloraLayer(nn::LinearImpl& base, const MosloraConfig& config, at::Generator& gen);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& base_out) override;
  // s * B M A as [out, in].
  at::Tensor delta_weight() const override;
  // M A [r, in]: the lora_A of the equivalent plain LoRA adapter.
  at::Tensor exported_A() const override;
  void unload(nn::LinearImpl& base) override;

  torch::nn::Linear moslora_mixer{nullptr};
};

// Fills `mixer` ([r, r]) as MosloraConfig::mixer_init says.
void init_mixer_(at::Tensor& mixer, const std::string& how, at::Generator& gen);

}  // namespace mixpeft::peft
