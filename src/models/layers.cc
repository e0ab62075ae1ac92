#include "mixpeft/nn.h"

#include <cmath>
#include <cstring>
#include <limits>

#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>
#include <ATen/record_function.h>
#include <torch/torch.h>

#include "core/gemm.h"
#include "mixpeft/error.h"

namespace mixpeft::nn {

LinearImpl::LinearImpl(int64_t in, int64_t out, bool with_bias, bool conv1d_layout)
    : in_features(in), out_features(out), conv1d(conv1d_layout) {
  weight = register_parameter("weight", conv1d ? torch::empty({in, out}) : torch::empty({out, in}));
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

// x w + bias for a frozen w: oneDNN's product forward, and only x's gradient
// (grad w^T) backward. Autograd's own addmm would do the same work; this
// saves its dispatch through OpenBLAS.
struct FrozenMatmul : torch::autograd::Function<FrozenMatmul> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x2d, const at::Tensor& w,
                            const at::Tensor& bias_or_empty) {
    ctx->save_for_backward({w});
    return mm_cpu(x2d, w, bias_or_empty.numel() == 0 ? at::Tensor() : bias_or_empty);
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad) {
    return {mm_cpu(grad[0], ctx->get_saved_variables()[0].t()), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

at::Tensor frozen_matmul(const at::Tensor& x, const at::Tensor& w, const at::Tensor& bias) {
  const bool grad_mode = at::GradMode::is_enabled();
  if (x.dim() < 1 || w.dim() != 2 || x.size(-1) != w.size(0) || x.scalar_type() != at::kFloat ||
      !x.device().is_cpu() || autocasting() || (grad_mode && w.requires_grad()))
    return at::Tensor();
  if (bias.defined() && (bias.scalar_type() != at::kFloat || bias.dim() != 1 || bias.size(0) != w.size(1) ||
                         (grad_mode && bias.requires_grad())))
    return at::Tensor();
  const at::Tensor flat = x.reshape({-1, x.size(-1)});
  if (!mm_cpu_applies(flat, w)) return at::Tensor();
  at::Tensor y = grad_mode && x.requires_grad()
                     ? FrozenMatmul::apply(flat, w, bias.defined() ? bias : at::empty({0}, x.options()))
                     : mm_cpu(flat, w, bias);
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

at::Tensor add_low_rank(const at::Tensor& base_out, const at::Tensor& down, const at::Tensor& B, double scaling) {
  const int64_t out = base_out.size(-1), r = down.size(-1);
  if (base_out.scalar_type() != B.scalar_type() && !autocasting())
    return base_out + (torch::matmul(down, B.t()) * scaling).to(base_out.scalar_type());
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

// HF's NewGELUActivation, 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))):
// the forward is the same ATen ops in the same order as transformers, so the
// values are HF's to the bit, but run without autograd recording its seven
// intermediates; the backward is ATen's fused derivative of the same tanh
// approximation (one pass over x instead of the chain rule through seven ops).
struct NewGelu : torch::autograd::Function<NewGelu> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x) {
    ctx->save_for_backward({x});
    return composite(x);
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

// Attention on the CPU, one (batch, head) block at a time in parallel: 1.13's
// batched matmul multiplies the B x H small matrices one after another, each
// with every thread (slow for 128 x 128 blocks), and its autograd keeps the
// scores as well. Here each thread takes whole blocks and multiplies them with
// single-threaded GEMMs on the blocks' memory (mixpeft::sgemm: oneDNN, about
// a third faster than OpenBLAS at this size); the softmax and its backward run
// once over all blocks. The values are the composite's below: scores =
// scale q k^T + bias (scale folded into the GEMM), probs = softmax(scores),
// out = probs v. Only the softmax output is kept for the backward.
struct BlockAttention : torch::autograd::Function<BlockAttention> {
  // Row pointer arithmetic for a [B, H, rows, D] operand whose last dimension
  // is contiguous (heads() views of a [B, T, H, D] projection are).
  struct Blocks {
    at::Tensor t;
    int64_t H;
    explicit Blocks(const at::Tensor& x) : t(x.stride(3) == 1 ? x : x.contiguous()), H(x.size(1)) {}
    const float* at(int64_t i) const {
      return t.data_ptr<float>() + (i / H) * t.stride(0) + (i % H) * t.stride(1);
    }
    int64_t ld() const { return t.stride(2); }
  };

  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& q, const at::Tensor& k,
                            const at::Tensor& v, const at::Tensor& bias_or_empty, double scale) {
    // An undefined tensor cannot be a Function input: no bias comes as an empty one.
    RECORD_FUNCTION("mixpeft::attention", std::vector<c10::IValue>{});  // visible to LibTorch's profiler
    const int64_t B = q.size(0), H = q.size(1), T = q.size(2), S = k.size(2), D = v.size(3);
    // The bias broadcasts over batch and heads when those are 1, and over
    // queries ([B, 1, 1, S] key masks): each block gets a [T, S] copy.
    at::Tensor bias;
    if (bias_or_empty.numel() != 0)
      bias = bias_or_empty.expand({bias_or_empty.size(0), bias_or_empty.size(1), T, S}).contiguous();
    const Blocks qb(q), kb(k), vb(v);
    at::Tensor scores = at::empty({B, H, T, S}, q.options());
    float* sp = scores.data_ptr<float>();
    at::parallel_for(0, B * H, 1, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) {
        float* s = sp + i * T * S;
        if (bias.defined()) {  // [B or 1, H or 1, T, S]
          const int64_t b = bias.size(0) == 1 ? 0 : i / H, h = bias.size(1) == 1 ? 0 : i % H;
          std::memcpy(s, bias.data_ptr<float>() + (b * bias.size(1) + h) * T * S, T * S * sizeof(float));
        }
        sgemm(false, true, T, S, D, static_cast<float>(scale), qb.at(i), qb.ld(), kb.at(i), kb.ld(),
              bias.defined() ? 1.0f : 0.0f, s, S);
      }
    });
    at::Tensor probs = at::_softmax(scores, -1, false);
    scores.reset();
    at::Tensor out = at::empty({B, H, T, D}, q.options());
    const float* pp = probs.data_ptr<float>();
    float* op = out.data_ptr<float>();
    at::parallel_for(0, B * H, 1, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i)
        sgemm(false, false, T, D, S, 1.0f, pp + i * T * S, S, vb.at(i), vb.ld(), 0.0f, op + i * T * D, D);
    });
    ctx->save_for_backward({qb.t, kb.t, vb.t, probs});
    ctx->saved_data["scale"] = scale;
    return out;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const Blocks qb(saved[0]), kb(saved[1]), vb(saved[2]);
    const at::Tensor& probs = saved[3];
    const float scale = static_cast<float>(ctx->saved_data["scale"].toDouble());
    const at::Tensor grad = grads[0].contiguous();
    const int64_t B = probs.size(0), H = probs.size(1), T = probs.size(2), S = probs.size(3),
                  D = grad.size(3);
    const bool want_q = ctx->needs_input_grad(0), want_k = ctx->needs_input_grad(1),
               want_v = ctx->needs_input_grad(2);
    const auto opts = grad.options();
    at::Tensor dq, dk, dv, dprobs;
    if (want_q) dq = at::empty({B, H, T, D}, opts);
    if (want_k) dk = at::empty({B, H, S, D}, opts);
    if (want_v) dv = at::empty({B, H, S, D}, opts);
    if (want_q || want_k) dprobs = at::empty({B, H, T, S}, opts);
    const float *pp = probs.data_ptr<float>(), *gp = grad.data_ptr<float>();
    at::parallel_for(0, B * H, 1, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) {
        const float *p = pp + i * T * S, *g = gp + i * T * D;
        if (want_v) sgemm(true, false, S, D, T, 1.0f, p, S, g, D, 0.0f, dv.data_ptr<float>() + i * S * D, D);
        if (dprobs.defined())
          sgemm(false, true, T, S, D, 1.0f, g, D, vb.at(i), vb.ld(), 0.0f, dprobs.data_ptr<float>() + i * T * S, S);
      }
    });
    if (dprobs.defined()) {
      // d scores (the scale is applied in the products below).
      const at::Tensor ds = at::_softmax_backward_data(dprobs, probs, -1, at::kFloat);
      dprobs.reset();
      const float* dsp = ds.data_ptr<float>();
      at::parallel_for(0, B * H, 1, [&](int64_t lo, int64_t hi) {
        for (int64_t i = lo; i < hi; ++i) {
          const float* d = dsp + i * T * S;
          if (want_q) sgemm(false, false, T, D, S, scale, d, S, kb.at(i), kb.ld(), 0.0f, dq.data_ptr<float>() + i * T * D, D);
          if (want_k) sgemm(true, false, S, D, T, scale, d, S, qb.at(i), qb.ld(), 0.0f, dk.data_ptr<float>() + i * S * D, D);
        }
      });
    }
    return {dq, dk, dv, at::Tensor(), at::Tensor()};
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
  // The blocks need oneDNN's sgemm; without it (MIXPEFT_GEMM=aten) ATen's mm
  // block by block was slower than the composite's batched matmul
  // (attention_bench).
  if (q.device().is_cpu() && q.scalar_type() == at::kFloat && same_dtype && !autocasting() &&
      onednn_gemm_available() &&
      (!bias.defined() || !bias.requires_grad()))
    return BlockAttention::apply(q, key, value, bias.defined() ? bias : at::empty({0}, q.options()), scale);
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
