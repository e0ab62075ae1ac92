#include "mixpeft/nn.h"

#include <cmath>
#include <limits>
#include <mutex>
#include <unordered_map>

#include <ATen/autocast_mode.h>
#include <ATen/record_function.h>
#include <torch/torch.h>

#include "core/dnnl_matmul.h"
#include "core/gemm.h"
#include "mixpeft/error.h"

namespace mixpeft::nn {

LinearImpl::LinearImpl(int64_t in, int64_t out, bool with_bias, bool conv1d_layout)
    : in_features(in), out_features(out), conv1d(conv1d_layout) {
  // Rows of 4 KiB get padding (gemm_layout_empty): the loaders copy into it.
  weight = register_parameter("weight", conv1d ? gemm_layout_empty(in, out) : gemm_layout_empty(out, in));
  if (with_bias) bias = register_parameter("bias", torch::zeros({out}));
}

at::Tensor LinearImpl::weight_out_in() const { return conv1d ? weight.t() : weight; }

at::Tensor LinearImpl::base_forward(const at::Tensor& x) const {
  if (at::Tensor y = frozen_matmul(x, conv1d ? weight : weight.t(), bias); y.defined()) return y;
  if (conv1d) {
    // HF Conv1D: addmm(bias, x.view(-1, in), weight).
    auto sizes = x.sizes().vec();
    sizes.back() = out_features;
    auto flat = x.reshape({-1, in_features});
    auto y = bias.defined() ? torch::addmm(bias, flat, weight) : torch::mm(flat, weight);
    return y.view(sizes);
  }
  return torch::nn::functional::linear(x, weight, bias);
}

at::Tensor LinearImpl::forward(const at::Tensor& x) {
  auto y = base_forward(x);
  return adapter ? adapter->forward(x, y) : y;
}

namespace {

bool autocasting() { return at::autocast::is_cpu_enabled() || at::autocast::is_enabled(); }

thread_local int bf16_matmul_depth = 0;

// bf16 copies of frozen fp32 weights for Bf16MatmulGuard, made on first use
// and kept until the last guard on any thread ends. An entry is used only
// while it still describes the weight: the same storage (alive), offset,
// shape, strides and version counter (an in-place change bumps it).
class Bf16WeightCache {
 public:
  at::Tensor get(const at::Tensor& w) {
    std::lock_guard<std::mutex> lock(mu_);
    Entry& e = entries_[w.data_ptr()];
    if (!e.describes(w)) {
      at::NoGradGuard no_grad;
      e.storage = w.storage().getWeakStorageImpl();
      e.sizes = w.sizes().vec();
      e.strides = w.strides().vec();
      e.version = w._version();
      e.copy = at::empty_strided(w.sizes(), w.strides(), w.options().dtype(at::kBFloat16));
      e.copy.copy_(w);
    }
    return e.copy;
  }
  void enter() {
    std::lock_guard<std::mutex> lock(mu_);
    ++scopes_;
  }
  void leave() {
    std::lock_guard<std::mutex> lock(mu_);
    if (--scopes_ == 0) entries_.clear();
  }
  size_t size() {
    std::lock_guard<std::mutex> lock(mu_);
    return entries_.size();
  }

 private:
  struct Entry {
    c10::weak_intrusive_ptr<c10::StorageImpl> storage{c10::intrusive_ptr<c10::StorageImpl>()};
    std::vector<int64_t> sizes, strides;
    uint32_t version = 0;
    at::Tensor copy;
    bool describes(const at::Tensor& w) const {
      return copy.defined() && storage.lock().get() == w.storage().unsafeGetStorageImpl() &&
             w.sizes().vec() == sizes && w.strides().vec() == strides && w._version() == version;
    }
  };
  std::mutex mu_;
  std::unordered_map<const void*, Entry> entries_;
  int scopes_ = 0;
};

Bf16WeightCache& bf16_weights() {
  static Bf16WeightCache* cache = new Bf16WeightCache();  // never destroyed: guards may outlive statics
  return *cache;
}

// x w + bias for a frozen w: oneDNN's product forward, and only x's gradient
// (grad w^T) backward. `w` is what the product uses (the weight, or its bf16
// copy); an fp32 input multiplies a bf16 w as bf16 with an fp32 result, and
// its gradient the same way. Autograd's own addmm would do the same work;
// this saves its dispatch through OpenBLAS.
struct FrozenMatmul : torch::autograd::Function<FrozenMatmul> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x2d, const at::Tensor& w,
                            const at::Tensor& bias_or_empty) {
    ctx->save_for_backward({w});
    return product(x2d, w, bias_or_empty.numel() == 0 ? at::Tensor() : bias_or_empty);
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad) {
    // The gradient comes in the output's dtype, x's; product() keeps it.
    return {product(grad[0], ctx->get_saved_variables()[0].t()), at::Tensor(), at::Tensor()};
  }
  // x [M, K] @ w [K, N] (+ bias) in x's dtype; in bf16 with an fp32 sum
  // when w is bf16.
  static at::Tensor product(const at::Tensor& x, const at::Tensor& w, const at::Tensor& bias = at::Tensor()) {
    if (w.scalar_type() != at::kBFloat16) return mm_cpu(x, w, bias);
    const at::Tensor y = mm_cpu(x.to(at::kBFloat16), w, bias);  // fp32
    return y.to(x.scalar_type());
  }
};

}  // namespace

Bf16MatmulGuard::Bf16MatmulGuard(bool enabled) : enabled_(enabled && onednn_bf16_gemm_available()) {
  if (!enabled_) return;
  ++bf16_matmul_depth;
  bf16_weights().enter();
}

Bf16MatmulGuard::~Bf16MatmulGuard() {
  if (!enabled_) return;
  --bf16_matmul_depth;
  bf16_weights().leave();
}

bool Bf16MatmulGuard::active() { return bf16_matmul_depth > 0; }

size_t Bf16MatmulGuard::cached_weights() { return bf16_weights().size(); }

at::Tensor frozen_matmul(const at::Tensor& x, const at::Tensor& w_in, const at::Tensor& bias) {
  const bool grad_mode = at::GradMode::is_enabled();
  const auto dtype = x.scalar_type();
  if (x.dim() < 1 || w_in.dim() != 2 || x.size(-1) != w_in.size(0) || !x.device().is_cpu() || autocasting() ||
      (grad_mode && w_in.requires_grad()) || w_in.scalar_type() != dtype ||
      (dtype != at::kFloat && dtype != at::kBFloat16))
    return at::Tensor();
  if (bias.defined() && ((bias.scalar_type() != at::kFloat && bias.scalar_type() != dtype) || bias.dim() != 1 ||
                         bias.size(0) != w_in.size(1) || (grad_mode && bias.requires_grad())))
    return at::Tensor();
  // fp32 weights multiply in bf16 under Bf16MatmulGuard (a copy made once),
  // bf16 ones always.
  const bool bf16 = dtype == at::kBFloat16 || Bf16MatmulGuard::active();
  if (!(bf16 ? onednn_bf16_gemm_available() : onednn_gemm_available()) || x.is_sparse() || w_in.is_sparse())
    return at::Tensor();
  const at::Tensor w = dtype == at::kFloat && bf16 ? bf16_weights().get(w_in) : w_in;
  const at::Tensor flat = x.reshape({-1, x.size(-1)});
  at::Tensor y = grad_mode && x.requires_grad()
                     ? FrozenMatmul::apply(flat, w, bias.defined() ? bias : at::empty({0}, x.options()))
                     : FrozenMatmul::product(flat, w, bias);
  auto sizes = x.sizes().vec();
  sizes.back() = w.size(1);
  return y.view(sizes);
}

at::Tensor in_dtype_of(const at::Tensor& x, const at::Tensor& w) {
  return x.scalar_type() == w.scalar_type() || autocasting() ? x : x.to(w.scalar_type());
}

at::Tensor tied_lm_head(const at::Tensor& x, const at::Tensor& embeddings) {
  if (at::Tensor y = frozen_matmul(x, embeddings.t()); y.defined()) return y;
  return torch::matmul(x, embeddings.t());
}

namespace {

// The fp32 CPU products of trainable layers on oneDNN's sgemm: LibTorch 1.13
// sends them to OpenBLAS, which runs the skinny products of low-rank
// adapters ([1024, 2304] x [2304, 8] and the like) about five times slower
// (bench/gemm_bench).
bool cpu_fp32_products(std::initializer_list<at::Tensor> ts) {
  if (!onednn_gemm_available() || autocasting()) return false;
  for (const at::Tensor& t : ts)
    if (t.defined() && (!t.device().is_cpu() || t.scalar_type() != at::kFloat || t.is_sparse())) return false;
  return true;
}

// x [M, in] w^T (+ bias): forward and every wanted gradient through mm_cpu.
struct CpuLinear : torch::autograd::Function<CpuLinear> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x2d, const at::Tensor& w,
                            const at::Tensor& bias_or_empty) {
    ctx->save_for_backward({x2d, w});
    return mm_cpu(x2d, w.t(), bias_or_empty.numel() == 0 ? at::Tensor() : bias_or_empty);
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor& dy = grad[0];
    at::Tensor dx, dw, db;
    if (ctx->needs_input_grad(0)) dx = mm_cpu(dy, saved[1]);
    if (ctx->needs_input_grad(1)) dw = mm_cpu(dy.t(), saved[0]);
    if (ctx->needs_input_grad(2)) db = dy.sum(0);  // never for the empty no-bias input
    return {dx, dw, db};
  }
};

// base + scaling down B^T, one copy of base and one product forward; the
// gradients of down and B backward (base's is the output's).
struct LowRankAdd : torch::autograd::Function<LowRankAdd> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& base2d, const at::Tensor& down2d,
                            const at::Tensor& B, double scaling) {
    ctx->save_for_backward({down2d, B});
    ctx->saved_data["scaling"] = scaling;
    at::Tensor y = base2d.clone(at::MemoryFormat::Contiguous);
    const at::Tensor d = down2d.contiguous(), b = B.contiguous();
    // y [M, out] += scaling d [M, r] (b [out, r])^T
    sgemm(false, true, y.size(0), y.size(1), d.size(1), static_cast<float>(scaling), d.data_ptr<float>(),
          d.size(1), b.data_ptr<float>(), b.size(1), 1.0f, y.data_ptr<float>(), y.size(1));
    return y;
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad) {
    const auto saved = ctx->get_saved_variables();
    const double s = ctx->saved_data["scaling"].toDouble();
    const at::Tensor& dy = grad[0];
    at::Tensor d_down, dB;
    if (ctx->needs_input_grad(1)) d_down = mm_cpu(dy, saved[1]).mul_(s);
    if (ctx->needs_input_grad(2)) dB = mm_cpu(dy.t(), saved[0]).mul_(s);
    return {ctx->needs_input_grad(0) ? dy : at::Tensor(), d_down, dB, at::Tensor()};
  }
};

}  // namespace

at::Tensor linear(const at::Tensor& x, const at::Tensor& w, const at::Tensor& bias) {
  if (x.dim() < 1 || w.dim() != 2 || !cpu_fp32_products({x, w, bias}) || (bias.defined() && bias.dim() != 1))
    return torch::nn::functional::linear(x, w, bias);
  const at::Tensor flat = x.reshape({-1, x.size(-1)});
  const bool grad = at::GradMode::is_enabled() &&
                    (x.requires_grad() || w.requires_grad() || (bias.defined() && bias.requires_grad()));
  at::Tensor y = grad ? CpuLinear::apply(flat, w, bias.defined() ? bias : at::empty({0}, x.options()))
                      : mm_cpu(flat, w.t(), bias);
  auto sizes = x.sizes().vec();
  sizes.back() = w.size(0);
  return y.view(sizes);
}

at::Tensor add_low_rank(const at::Tensor& base_out, const at::Tensor& down, const at::Tensor& B, double scaling) {
  const int64_t out = base_out.size(-1), r = down.size(-1);
  if (base_out.scalar_type() != B.scalar_type() && !autocasting())
    return base_out + (torch::matmul(down, B.t()) * scaling).to(base_out.scalar_type());
  if (cpu_fp32_products({base_out, down, B}) && base_out.numel() / out == down.numel() / r) {
    const at::Tensor y = LowRankAdd::apply(base_out.reshape({-1, out}), down.reshape({-1, r}), B, scaling);
    return y.view(base_out.sizes());
  }
  auto y = torch::addmm(base_out.reshape({-1, out}), down.reshape({-1, r}), B.t(), 1.0, scaling);
  return y.view(base_out.sizes());
}

RMSNormImpl::RMSNormImpl(int64_t dim, double eps_) : eps(eps_) {
  weight = register_parameter("weight", torch::ones({dim}));
}

at::Tensor RMSNormImpl::forward(const at::Tensor& x) {
  auto h = x.to(torch::kFloat);
  auto variance = h.pow(2).mean(-1, /*keepdim=*/true);
  h = h * torch::rsqrt(variance + eps);
  return weight * h.to(x.scalar_type());
}

namespace {

// HF's NewGELUActivation, 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
// Without autograd (inference, evaluation, frozen inputs) it is the same
// ATen ops in the same order as transformers, so the values are HF's to the
// bit. While autograd records (training), the forward is ATen's fused
// tanh-GELU: the same formula in one pass instead of eight, within 5e-7 of
// the composite on 0.5% of the elements (layers_test.cc checks the bound),
// far below the rounding of the products around it; a LoRA step on the
// GPT-2-small workload spends 30 ms on it instead of about 100
// (docs/PERFORMANCE.md). The backward is ATen's fused derivative of the
// same approximation (one pass over x instead of the chain rule through
// seven ops).
struct NewGelu : torch::autograd::Function<NewGelu> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x) {
    ctx->save_for_backward({x});
    return at::gelu(x, "tanh");
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad) {
    return {at::gelu_backward(grad[0], ctx->get_saved_variables()[0], "tanh")};
  }
  static at::Tensor composite(const at::Tensor& x) {
    const double c = std::sqrt(2.0 / M_PI);
    return 0.5 * x * (1.0 + torch::tanh(c * (x + 0.044715 * torch::pow(x, 3.0))));
  }
  static at::Tensor apply(const at::Tensor& x) {
    // Without autograd (inference, frozen inputs) the composite is all there is.
    if (!x.requires_grad() || !at::GradMode::is_enabled()) return composite(x);
    return torch::autograd::Function<NewGelu>::apply(x);
  }
};

}  // namespace

void check_activation(const std::string& name, const std::string& where) {
  static const char* kKnown[] = {"gelu", "gelu_new", "gelu_pytorch_tanh", "relu", "silu", "swish", "tanh"};
  for (const char* k : kKnown)
    if (name == k) return;
  fail(ErrorKind::kUnsupported, where, ": activation \"", name,
       "\" is not supported (supported: gelu, gelu_new, gelu_pytorch_tanh, relu, silu, swish, tanh)");
}

at::Tensor activation(const std::string& name, const at::Tensor& x) {
  namespace F = torch::nn::functional;
  if (name == "gelu") return torch::gelu(x);
  if (name == "gelu_new") return NewGelu::apply(x);
  if (name == "gelu_pytorch_tanh") return torch::gelu(x, "tanh");
  if (name == "relu") return torch::relu(x);
  if (name == "silu" || name == "swish") return torch::silu(x);
  if (name == "tanh") return torch::tanh(x);
  fail(ErrorKind::kUnsupported, "activation \"", name, "\" is not supported");
}

at::Tensor attention_bias(const at::Tensor& key_mask, int64_t T, int64_t S, bool causal,
                          c10::ScalarType dtype, c10::Device device) {
  auto opts = torch::TensorOptions().device(device);
  at::Tensor allowed;  // bool, broadcastable to [B, 1, T, S]
  if (causal) {
    auto q_pos = torch::arange(S - T, S, opts.dtype(torch::kLong)).unsqueeze(1);  // [T, 1]
    auto k_pos = torch::arange(0, S, opts.dtype(torch::kLong)).unsqueeze(0);      // [1, S]
    allowed = (k_pos <= q_pos).view({1, 1, T, S});
  }
  if (key_mask.defined()) {
    MIXPEFT_CHECK(key_mask.dim() == 2 && key_mask.size(1) == S, ErrorKind::kInvalidArgument,
                  "attention_mask has shape ", key_mask.sizes(), " but ", S,
                  " key positions are attended (cached + new tokens)");
    auto km = key_mask.to(device).to(torch::kBool).view({key_mask.size(0), 1, 1, S});
    allowed = allowed.defined() ? allowed.logical_and(km) : km;
  }
  if (!allowed.defined()) return at::Tensor();
  double lowest = dtype == torch::kBFloat16 ? -3.3895313892515355e38
                  : dtype == torch::kHalf   ? -65504.0
                  : dtype == torch::kDouble ? std::numeric_limits<double>::lowest()
                                            : std::numeric_limits<float>::lowest();
  auto zero = torch::zeros({}, opts.dtype(dtype));
  auto low = torch::full({}, lowest, opts.dtype(dtype));
  return torch::where(allowed, zero, low);
}

namespace {

// Attention on the CPU with oneDNN's batched matmul (src/core/dnnl_matmul.h):
// each product multiplies every (batch, head) block in one call, where
// LibTorch 1.13's batched matmul multiplies the small blocks one after
// another, each with every thread (bench/attention_bench). The values
// are the composite's below: scores = scale q k^T + bias (the scale folded
// into the product, the bias added by it), probs = softmax(scores), out =
// probs v; only the softmax output is kept for the backward, whose products
// also run batched.
//
// With `bf16` (under Bf16MatmulGuard) the products take bf16 copies of their
// operands (q, k, v, the probabilities and the gradients, each rounded once)
// and sum in fp32; the scores, the softmax, the outputs and the gradients
// stay fp32.
struct BatchedAttention : torch::autograd::Function<BatchedAttention> {
  // An operand as the products take it: itself, or a bf16 copy.
  static at::Tensor operand(const at::Tensor& x, bool bf16) { return bf16 ? x.to(at::kBFloat16) : x; }

  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& q, const at::Tensor& k,
                            const at::Tensor& v, const at::Tensor& bias_or_empty, double scale, bool bf16) {
    // An undefined tensor cannot be a Function input: no bias comes as an empty one.
    RECORD_FUNCTION("mixpeft::attention", std::vector<c10::IValue>{});  // visible to LibTorch's profiler
    const int64_t B = q.size(0), H = q.size(1), T = q.size(2), S = k.size(2), D = v.size(3);
    at::Tensor scores = at::empty({B, H, T, S}, q.options());
    // The bias broadcasts over batch and heads when those are 1, and over
    // queries ([B, 1, 1, S] key masks); a copy, never the bias itself.
    const bool with_bias = bias_or_empty.numel() != 0;
    if (with_bias) scores.copy_(bias_or_empty.expand({B, H, T, S}));
    const at::Tensor qo = operand(q, bf16), ko = operand(k, bf16), vo = operand(v, bf16);
    dnnl_matmul(qo, ko.transpose(-1, -2), scores, static_cast<float>(scale), with_bias ? 1.0f : 0.0f);
    at::Tensor probs = at::_softmax(scores, -1, false);
    scores.reset();
    // [B, H, T, D] as a view of [B, T, H, D] memory: the models' next step,
    // out.transpose(1, 2).reshape({B, T, H * D}), is then a view, not a copy.
    at::Tensor out = at::empty({B, T, H, D}, q.options()).transpose(1, 2);
    const at::Tensor po = operand(probs, bf16);
    dnnl_matmul(po, vo, out, 1.0f, 0.0f);
    ctx->save_for_backward({qo, ko, vo, probs, po});
    ctx->saved_data["scale"] = scale;
    return out;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &qo = saved[0], &ko = saved[1], &vo = saved[2], &probs = saved[3], &po = saved[4];
    const bool bf16 = qo.scalar_type() == at::kBFloat16;  // q itself is fp32
    const float scale = static_cast<float>(ctx->saved_data["scale"].toDouble());
    const at::Tensor go = operand(grads[0], bf16);
    const int64_t B = probs.size(0), H = probs.size(1), T = probs.size(2), S = probs.size(3), D = go.size(3);
    const auto opts = probs.options();
    at::Tensor dq, dk, dv;
    if (ctx->needs_input_grad(2)) {
      dv = at::empty({B, H, S, D}, opts);
      dnnl_matmul(po.transpose(-1, -2), go, dv, 1.0f, 0.0f);
    }
    if (ctx->needs_input_grad(0) || ctx->needs_input_grad(1)) {
      at::Tensor dprobs = at::empty({B, H, T, S}, opts);
      dnnl_matmul(go, vo.transpose(-1, -2), dprobs, 1.0f, 0.0f);
      // d scores (the scale is applied in the products below).
      const at::Tensor ds = operand(at::_softmax_backward_data(dprobs, probs, -1, at::kFloat), bf16);
      dprobs.reset();
      if (ctx->needs_input_grad(0)) {
        dq = at::empty({B, H, T, D}, opts);
        dnnl_matmul(ds, ko, dq, scale, 0.0f);
      }
      if (ctx->needs_input_grad(1)) {
        dk = at::empty({B, H, S, D}, opts);
        dnnl_matmul(ds.transpose(-1, -2), qo, dk, scale, 0.0f);
      }
    }
    return {dq, dk, dv, at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                     const at::Tensor& bias, double scale) {
  auto key = k, value = v;
  const int64_t heads = q.size(1), kv_heads = k.size(1);
  if (kv_heads != heads) {
    MIXPEFT_CHECK(heads % kv_heads == 0, ErrorKind::kInvalidArgument, "attention: ", heads,
                  " query heads are not a multiple of ", kv_heads, " key/value heads");
    key = k.repeat_interleave(heads / kv_heads, 1);
    value = v.repeat_interleave(heads / kv_heads, 1);
  }
  const bool same_dtype = key.scalar_type() == q.scalar_type() && value.scalar_type() == q.scalar_type() &&
                          (!bias.defined() || bias.scalar_type() == q.scalar_type());
  if (q.device().is_cpu() && q.scalar_type() == at::kFloat && same_dtype && !autocasting() &&
      dnnl_matmul_available() && (!bias.defined() || !bias.requires_grad()))
    return BatchedAttention::apply(q, key, value, bias.defined() ? bias : at::empty({0}, q.options()), scale,
                                   Bf16MatmulGuard::active());
  // Elsewhere (CUDA, bf16, autocast, no oneDNN) the composite. In place: the same values
  // as (q k^T) * scale + bias, without two more [B, H, T, S] tensors
  // (matmul's backward needs q and k, not its output). Under autocast the
  // scores are bf16 and the bias float: that sum promotes.
  auto scores = torch::matmul(q, key.transpose(-1, -2));
  if (scale != 1.0) scores.mul_(scale);
  if (bias.defined()) scores = bias.scalar_type() == scores.scalar_type() ? scores.add_(bias) : scores + bias;
  auto probs = torch::softmax(scores, -1, torch::kFloat).to(q.scalar_type());
  return torch::matmul(probs, value);
}

at::Tensor default_position_ids(const at::Tensor& attention_mask, int64_t past, int64_t T,
                                int64_t batch, c10::Device device) {
  if (attention_mask.defined()) {
    auto pos = attention_mask.to(device).to(torch::kLong).cumsum(-1) - 1;
    pos = pos.clamp_min(0);
    return pos.narrow(1, pos.size(1) - T, T);
  }
  return torch::arange(past, past + T, torch::TensorOptions().dtype(torch::kLong).device(device))
      .unsqueeze(0)
      .expand({batch, T});
}

}  // namespace mixpeft::nn
