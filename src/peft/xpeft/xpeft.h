// X-PEFT (Kwak & Kim, 2024, arXiv 2401.16137; no public code): many profiles
// on one frozen model and one frozen bank of N bottleneck adapters per layer
// (bank.h). A profile learns only two L x N mask-logit tensors, M_A and M_B,
// that combine the bank's down and up projections of each layer:
//   down_l = sum_i m_A[l, i] down_{l,i},   up_l = sum_i m_B[l, i] up_{l,i}
// (weights and biases), applied after the feed-forward output as
// h -> h + up_l(act(down_l(h))) (Pfeiffer placement: nn::AdapterSlots::after_ffn).
//
// Mask weights m from logits z, row by row (one row = one layer):
//   softmax (default)  m = softmax(z)
//   sigmoid            m = sigmoid(z) / sum_j sigmoid(z_j)   (independent gates, normalised)
//   hard, top_k = k    forward m = topk_k(z) / k (binary mask, normalised), backward
//                      the gradient of the soft weighting above (straight-through).
// Every row of m sums to 1, so a profile is a point in the convex hull of its
// layer's adapters and the adapter's scale does not depend on N or k.
//
// Parameters (trainable, float32): <base>.xpeft.mask_A and <base>.xpeft.mask_B,
// [L, N] each, where <base> is the model's base prefix ("bert", "model",
// "transformer"). The bank is registered as buffers <base>.xpeft.bank_*:
// frozen, never trained, never part of a profile file.
//
// Profile file (adapter_model.safetensors): hard masks as one U8 tensor
// <base>.xpeft.mask_bits of ceil(2 L N / 8) bytes (bit j of the stream
// [M_A rows; M_B rows] is bit j % 8, least significant first, of byte j / 8);
// soft masks as mask_A / mask_B logits in float32 (or float16 with
// mask_dtype). Plus the modules_to_save parameters, if any.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include "mixpeft/nn.h"
#include "mixpeft/peft.h"
#include "peft/config_util.h"
#include "peft/xpeft/bank.h"

namespace mixpeft::peft::xpeft {

struct MaskSpec {
  std::string type = "softmax";  // softmax | sigmoid
  bool hard = false;
  int64_t top_k = 0;             // hard masks: adapters kept per row
};

struct XpeftConfig {
  // The bank: random from bank_seed (default), or bank_path, or bank_adapters.
  int64_t num_adapters = 16;     // N: cost of the bank L N (2 d m + m + d); of a profile 2 L N logits
  int64_t bottleneck_size = 64;  // m (random banks; as BOTTLENECK's default)
  std::string activation = "relu";
  uint64_t bank_seed = 0;
  double bank_init_scale = 1.0;  // random banks: RMS of one adapter's residual relative to its input
  std::string bank_path;         // a folder written by XpeftMethod::save_bank (absolute, or relative to the working directory)
  std::vector<std::string> bank_adapters;  // BOTTLENECK adapter folders, one per bank adapter
  std::string bank_checksum;     // when set, the bank must hash to it (profiles always record it)
  MaskSpec mask;
  std::string mask_dtype = "float32";  // soft masks in the profile file: float32 | float16 (half the bytes, rounded logits)

  // Which of num_adapters, bottleneck_size, activation the config set: next
  // to bank_path / bank_adapters they must agree with the bank.
  bool num_adapters_given = false, bottleneck_size_given = false, activation_given = false;

  static XpeftConfig read(const nlohmann::json& json, const std::string& where);
  bool random_bank() const { return bank_path.empty() && bank_adapters.empty(); }
};

// Row-wise (last dimension) soft weights of `logits`; each row sums to 1.
at::Tensor soft_weights(const at::Tensor& logits, const std::string& type);
// Binary top-k of each row (1.0 for the k largest logits; ties go to the lower index).
at::Tensor top_k_mask(const at::Tensor& logits, int64_t k);
// The weights the forward pass uses (see the header comment).
at::Tensor mask_weights(const at::Tensor& logits, const MaskSpec& spec);
// Bits (any shape, values 0/1) -> U8 [ceil(n / 8)], least significant bit first; and back to float 0/1 [n].
at::Tensor pack_bits(const at::Tensor& bits);
at::Tensor unpack_bits(const at::Tensor& packed, int64_t n);

// The masks, the bank (as buffers) and the cache of combined adapters.
class XpeftModuleImpl : public torch::nn::Module {
 public:
  XpeftModuleImpl(const Bank& bank, MaskSpec spec, const torch::TensorOptions& bank_options);

  struct Combined {
    at::Tensor down_weight, down_bias, up_weight, up_bias;  // [m, d], [m], [d, m], [d]
  };
  // Layer l's combined adapter, from the cache when no gradient is needed
  // (grad mode off, or masks frozen); recomputed with the autograd graph
  // otherwise. The cache holds every layer, is filled once per mask state
  // (the masks' storage and version counters) and refilled after any change.
  Combined combined(int64_t layer);
  // Always computed now, never cached.
  Combined compute(int64_t layer);
  // Fills the cache now (e.g. right after a profile is loaded, before serving).
  void materialize();
  // How many times the cache was filled (each fill computes all L layers).
  int64_t materializations() const { return materializations_; }
  // h + up_l(act(down_l(h))).
  at::Tensor forward(int64_t layer, const at::Tensor& h);

  at::Tensor mask_A, mask_B;  // [L, N] logits, float32
  at::Tensor bank_down_weight, bank_down_bias, bank_up_weight, bank_up_bias;
  MaskSpec spec;
  std::string activation;
  int64_t num_layers, num_adapters;

 private:
  struct Key {
    const void* a = nullptr;
    const void* b = nullptr;
    const void* bank = nullptr;
    int64_t version_a = -1, version_b = -1;
    bool operator==(const Key& o) const {
      return a == o.a && b == o.b && bank == o.bank && version_a == o.version_a && version_b == o.version_b;
    }
  };
  Key key() const;
  void fill_cache_locked();

  std::mutex mutex_;
  Key cached_key_;
  std::vector<Combined> cache_;
  int64_t materializations_ = 0;
};
TORCH_MODULE(XpeftModule);

class XpeftMethod : public Method {
 public:
  XpeftMethod(const nlohmann::json& json, const std::string& where);
  std::string peft_type() const override { return "XPEFT"; }
  nlohmann::json config() const override;
  void attach(Model& model) override;
  bool owns(const std::string& parameter_name) const override;
  void unload(Model& model) override;
  std::vector<std::pair<std::string, at::Tensor>> saved_tensors(Model& model) override;
  void load_saved(Model& model, const std::map<std::string, at::Tensor>& tensors) override;

  const XpeftConfig& settings() const { return config_; }
  const Bank& bank() const { return bank_; }
  XpeftModule& module() { return module_; }
  // Writes the bank (bank.safetensors + bank_config.json) for use as bank_path.
  void save_bank(const std::string& dir) const { xpeft::save_bank(bank_, dir); }
  // Bytes of the masks in a profile file: ceil(2 L N / 8) for hard masks,
  // 2 L N * (4 or 2) for soft ones.
  int64_t mask_bytes() const;
  // How the masks are read and stored (activate_profile switches it).
  void set_mask_format(const MaskSpec& spec, const std::string& mask_dtype);

 private:
  XpeftConfig config_;
  std::string where_;
  Bank bank_;
  XpeftModule module_{nullptr};
  torch::nn::Module* base_ = nullptr;
  std::vector<nn::AdapterSlots*> slots_;
  std::string prefix_;  // "<base>.xpeft."
};

// Switches an X-PEFT model to the profile saved in `dir` without rebuilding
// the bank: the profile must record this bank's checksum and the same
// modules_to_save. Its masks (soft or hard, any mask_type) and head replace
// the current ones, and the combined adapters are materialised once, so the
// next eval forward runs at the cost of one plain adapter. Strict like
// PeftModel::load; on any error the model keeps its current profile.
void activate_profile(PeftModel& peft, const std::string& dir);

// What a profile costs on disk: the tensor bytes PeftModel::save writes
// (masks + modules_to_save), without the safetensors header and the JSON config.
int64_t profile_bytes(PeftModel& peft);

}  // namespace mixpeft::peft::xpeft
