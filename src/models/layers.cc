#include "mixpeft/nn.h"

#include <cmath>
#include <limits>

#include <torch/torch.h>

#include "mixpeft/error.h"

namespace mixpeft::nn {

LinearImpl::LinearImpl(int64_t in, int64_t out, bool with_bias, bool conv1d_layout)
    : in_features(in), out_features(out), conv1d(conv1d_layout) {
  weight = register_parameter("weight", conv1d ? torch::empty({in, out}) : torch::empty({out, in}));
  if (with_bias) bias = register_parameter("bias", torch::zeros({out}));
}

at::Tensor LinearImpl::weight_out_in() const { return conv1d ? weight.t() : weight; }

at::Tensor LinearImpl::base_forward(const at::Tensor& x) const {
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

RMSNormImpl::RMSNormImpl(int64_t dim, double eps_) : eps(eps_) {
  weight = register_parameter("weight", torch::ones({dim}));
}

at::Tensor RMSNormImpl::forward(const at::Tensor& x) {
  auto h = x.to(torch::kFloat);
  auto variance = h.pow(2).mean(-1, /*keepdim=*/true);
  h = h * torch::rsqrt(variance + eps);
  return weight * h.to(x.scalar_type());
}

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
  if (name == "gelu_new" || name == "gelu_pytorch_tanh") {
    if (name == "gelu_pytorch_tanh") return torch::gelu(x, "tanh");
    // HF NewGELUActivation, written out as transformers computes it.
    const double c = std::sqrt(2.0 / M_PI);
    return 0.5 * x * (1.0 + torch::tanh(c * (x + 0.044715 * torch::pow(x, 3.0))));
  }
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
  auto scores = torch::matmul(q, key.transpose(-1, -2)) * scale;
  if (bias.defined()) scores = scores + bias;
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
