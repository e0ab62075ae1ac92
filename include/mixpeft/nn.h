// Building blocks shared by the architectures, and the hooks PEFT methods use.
#pragma once

#include <cstdint>
#include <memory>

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

namespace mixpeft::nn {

// What a PEFT method plugs into a Linear. It sees the layer's input and the
// frozen layer's output and returns the adapted output. The adapter's own
// parameters are registered on the Linear module under the method's prefix
// (e.g. "lora_A"), so their names follow the base model's.
class LinearAdapter {
 public:
  virtual ~LinearAdapter() = default;
  virtual at::Tensor forward(const at::Tensor& x, const at::Tensor& base_out) = 0;
};

// y = x W^T + b. Stores the weight as the checkpoint does: [out, in] for
// torch.nn.Linear, [in, out] for GPT-2's Conv1D (conv1d = true), so names and
// shapes round-trip. `adapter`, when set, changes the output.
class LinearImpl : public torch::nn::Module {
 public:
  LinearImpl(int64_t in_features, int64_t out_features, bool bias, bool conv1d = false);
  at::Tensor forward(const at::Tensor& x);
  // The frozen layer alone.
  at::Tensor base_forward(const at::Tensor& x) const;
  // The weight as [out, in] (a view for conv1d layers).
  at::Tensor weight_out_in() const;

  int64_t in_features, out_features;
  bool conv1d;
  at::Tensor weight, bias;  // bias undefined when absent
  std::shared_ptr<LinearAdapter> adapter;
};
TORCH_MODULE(Linear);

// x [..., K] @ w [K, N] (+ bias [N]) for a frozen w and bias (neither
// requires grad, or grad mode is off), on the CPU in float32 or bfloat16:
// oneDNN's GEMM (src/core/gemm.h) forward and, when x requires grad, a
// backward that computes x's gradient only. w may be a transposed view
// ([out, in].t()). bf16 operands are summed in fp32 and rounded once. Under
// Bf16MatmulGuard, fp32 x and w multiply as bf16 (x rounded per call, w
// through a bf16 copy made once) with an fp32 result. Returns an undefined
// tensor where it does not apply (CUDA, mixed dtypes, autocast, trainable
// weights, no oneDNN for the dtype), so that callers keep their own ATen
// expression there.
at::Tensor frozen_matmul(const at::Tensor& x, const at::Tensor& w, const at::Tensor& bias = at::Tensor());

// While one is alive on this thread, frozen fp32 products on the CPU
// (frozen_matmul: Linear / Conv1D layers, tied LM heads; forward and the
// input's gradient) run in bfloat16 with fp32 accumulation and fp32 results,
// through oneDNN's bf16 GEMM: about twice fp32's rate on CPUs with AVX-512
// BF16. Everything else (norms, activations, attention, softmax, losses,
// adapters and trainable weights) stays fp32. Each frozen weight is copied
// to bf16 once and kept until the last guard ends (in-place changes to a
// weight make a new copy). A no-op, with active() false, when disabled or
// where oneDNN's bf16 GEMM is not available (onednn_bf16_gemm_available()).
class Bf16MatmulGuard {
 public:
  explicit Bf16MatmulGuard(bool enabled = true);
  ~Bf16MatmulGuard();
  Bf16MatmulGuard(const Bf16MatmulGuard&) = delete;
  Bf16MatmulGuard& operator=(const Bf16MatmulGuard&) = delete;
  bool enabled() const { return enabled_; }
  // Whether a guard is alive on this thread.
  static bool active();
  // bf16 weight copies held now (all threads).
  static size_t cached_weights();

 private:
  bool enabled_;
};

// Logits of a head tied to the input embeddings [V, d]: x @ embeddings^T
// (frozen_matmul's path when it applies, else ATen's matmul).
at::Tensor tied_lm_head(const at::Tensor& x, const at::Tensor& embeddings);

// x [..., in] w^T (+ bias), w [out, in], for trainable or frozen w: on the
// CPU in fp32 every product (forward and the wanted gradients) runs on
// oneDNN's sgemm, elsewhere torch::nn::functional::linear. For the small
// trainable layers of adapters (LoRA's A, AdaMix's experts, bottlenecks).
at::Tensor linear(const at::Tensor& x, const at::Tensor& w, const at::Tensor& bias = at::Tensor());

// base_out + scaling * down B^T, where down = h A^T [..., r] is a low-rank
// adapter's first product and B is [out, r]: the update is accumulated by one
// GEMM (addmm) into a copy of base_out, not as a product, a scaled copy and
// a sum. Adapters whose dtype differs from base_out's (fp32 adapters on bf16
// weights) compute the update in their dtype and add it rounded to base_out's.
at::Tensor add_low_rank(const at::Tensor& base_out, const at::Tensor& down, const at::Tensor& B, double scaling);
// x in the dtype of an adapter's weight w (unchanged under autocast, which
// casts both itself, and when they already match).
at::Tensor in_dtype_of(const at::Tensor& x, const at::Tensor& w);

// A bottleneck adapter site: h -> adapted h (e.g. h + up(act(down(h)))).
class SiteAdapter {
 public:
  virtual ~SiteAdapter() = default;
  virtual at::Tensor forward(const at::Tensor& h) = 0;
};

// Where bottleneck adapters attach in a block: after the attention output
// projection and after the feed-forward output, before the residual
// LayerNorm in post-LN models (BERT, RoBERTa) and before the residual add in
// pre-LN models (GPT-2, LLaMA, Qwen2).
class AdapterSlots {
 public:
  std::shared_ptr<SiteAdapter> after_attention;
  std::shared_ptr<SiteAdapter> after_ffn;
  at::Tensor apply_after_attention(const at::Tensor& h) const {
    return after_attention ? after_attention->forward(h) : h;
  }
  at::Tensor apply_after_ffn(const at::Tensor& h) const {
    return after_ffn ? after_ffn->forward(h) : h;
  }
};

// LLaMA's RMSNorm: x / sqrt(mean(x^2) + eps) * weight, computed in float32.
class RMSNormImpl : public torch::nn::Module {
 public:
  RMSNormImpl(int64_t dim, double eps);
  at::Tensor forward(const at::Tensor& x);
  at::Tensor weight;
  double eps;
};
TORCH_MODULE(RMSNorm);

// Activations by their HF config names: gelu (erf), gelu_new / gelu_pytorch_tanh
// (tanh approximation), relu, silu / swish, tanh. Unknown → kUnsupported.
at::Tensor activation(const std::string& name, const at::Tensor& x);
void check_activation(const std::string& name, const std::string& where);

// Additive attention bias [B or 1, 1, T, S] in `dtype`: 0 where a query may
// attend to a key, the dtype's lowest value elsewhere. `key_mask` [B, S]
// (1 = real) may be undefined; `causal` masks keys after the query, given
// that the T queries are the last T of the S positions.
at::Tensor attention_bias(const at::Tensor& key_mask, int64_t T, int64_t S, bool causal,
                          c10::ScalarType dtype, c10::Device device);

// softmax(q k^T * scale + bias) v with q [B, H, T, D], k/v [B, Hkv, S, D];
// Hkv divides H (grouped-query attention). Softmax in float32.
at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                     const at::Tensor& bias, double scale);

// Position ids for T new tokens after `past` cached ones: from the mask's
// running count of real tokens when a mask is given, else past..past+T-1.
at::Tensor default_position_ids(const at::Tensor& attention_mask, int64_t past, int64_t T,
                                int64_t batch, c10::Device device);

}  // namespace mixpeft::nn
