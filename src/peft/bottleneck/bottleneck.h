// Bottleneck adapters (Houlsby et al., 2019; Pfeiffer et al., 2020):
// h -> h + up(act(down(h))) at a block's adapter slots (nn::AdapterSlots):
// "houlsby" after the attention output projection and after the feed-forward
// output, "pfeiffer" after the feed-forward output only; in both cases before
// the residual LayerNorm (BERT, RoBERTa) or the residual add (GPT-2, LLaMA,
// Qwen2). Not mergeable: the activation makes the adapter nonlinear.
//
// Parameter names (registered on the block, so they follow the base model's):
//   <block>.adapter_attn.down.weight [m, d]   (houlsby only)
//   <block>.adapter_attn.down.bias   [m]
//   <block>.adapter_attn.up.weight   [d, m]
//   <block>.adapter_attn.up.bias     [d]
//   <block>.adapter_ffn.{down,up}.{weight,bias}   (both placements)
// e.g. "bert.encoder.layer.0.adapter_ffn.down.weight"; saved with HF PEFT's
// "base_model.model." prefix like every mixpeft adapter.
// Trainable parameters: per adapter 2 * d * m + m + d.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/nn/modules/linear.h>

#include "mixpeft/model.h"
#include "mixpeft/nn.h"
#include "mixpeft/peft.h"
#include "peft/config_util.h"

namespace mixpeft::peft {

// The keys BOTTLENECK shares with ADAMIX's adapter variant.
struct AdapterShape {
  std::string placement = "pfeiffer";  // houlsby (2 adapters per block) | pfeiffer (1, after the FFN)
  int64_t bottleneck_size = 64;        // m; cost 2 * d * m + m + d parameters per adapter
  std::string activation = "relu";     // any nn::activation name
  // Standard deviation of the up projection's N(0, s^2) init; 0 = zeros,
  // which makes the adapter exactly the identity at step 0.
  double init_scale = 1e-3;

  // Reads placement, bottleneck_size, activation, init_scale; the fallbacks
  // are this object's current values.
  void read(ConfigReader& reader);
  void write(nlohmann::json& out) const;
  bool houlsby() const { return placement == "houlsby"; }
};

// Near-identity init, shared by BOTTLENECK and ADAMIX: down.weight
// Kaiming-uniform (a = sqrt 5, as torch.nn.Linear), down.bias = 0,
// up.weight ~ N(0, init_scale^2), up.bias = 0. With small init_scale the
// adapter starts within O(init_scale) of the identity; the down projection
// stays non-degenerate so gradients reach it from step 1.
void init_bottleneck(torch::nn::LinearImpl& down, torch::nn::LinearImpl& up, double init_scale, at::Generator& gen);

// Moves `module` to the dtype and device of the block's parameters.
void match_block(torch::nn::Module& module, torch::nn::Module& block);

// One adapter: h + up(act(down(h))).
class BottleneckAdapterImpl : public torch::nn::Module {
 public:
  BottleneckAdapterImpl(int64_t hidden, int64_t bottleneck, std::string activation);
  at::Tensor forward(const at::Tensor& h);
  torch::nn::Linear down{nullptr}, up{nullptr};
  std::string activation;
};
TORCH_MODULE(BottleneckAdapter);

// The slot object that forwards to a module registered on the block.
template <typename ModuleHolder>
class ModuleSite : public nn::SiteAdapter {
 public:
  explicit ModuleSite(ModuleHolder module) : module_(std::move(module)) {}
  at::Tensor forward(const at::Tensor& h) override { return module_->forward(h); }

 private:
  ModuleHolder module_;
};

// Module names of the two sites on a block.
constexpr const char* kAttnSite = "attn";
constexpr const char* kFfnSite = "ffn";

// Fails naming `where` when a block's slot is already taken (another method attached).
void check_slot_free(const std::shared_ptr<nn::SiteAdapter>& slot, const BlockRef& block, const char* site,
                     const std::string& where);

}  // namespace mixpeft::peft
