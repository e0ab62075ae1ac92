#include "train/loss.h"

#include <algorithm>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include "core/row_blocks.h"
#include "core/vocab_math.h"
#include "mixpeft/adamix.h"
#include "mixpeft/error.h"
#include "peft/adamix/consistency.h"

namespace mixpeft::train {
namespace {

// labels as int64, contiguous; a label outside [0, V) other than ignore_index is kInvalidArgument.
at::Tensor checked_labels(const at::Tensor& labels, int64_t V, int64_t ignore_index, const char* who) {
  at::Tensor l = labels.to(at::kLong).contiguous();
  const at::Tensor bad = (l != ignore_index).logical_and((l < 0).logical_or(l >= V));
  MIXPEFT_CHECK(!bad.any().item<bool>(), ErrorKind::kInvalidArgument, who, ": label ",
                l.masked_select(bad)[0].item<int64_t>(), " is outside the vocabulary [0, ", V, ")");
  return l;
}

// [B, T] labels -> [B T]: position t is scored against labels[:, t + 1]; the
// last position of each row predicts nothing.
at::Tensor shifted_labels(const at::Tensor& labels, int64_t ignore_index) {
  const int64_t B = labels.size(0), T = labels.size(1);
  at::Tensor shifted = at::full({B, T}, ignore_index, labels.options().dtype(at::kLong));
  shifted.narrow(1, 0, T - 1).copy_(labels.narrow(1, 1, T - 1));
  return shifted.view({-1});
}

void check_causal_lm_shapes(const at::Tensor& logits, const at::Tensor& labels, const char* who) {
  MIXPEFT_CHECK(logits.dim() == 3 && labels.dim() == 2 && labels.size(0) == logits.size(0) &&
                    labels.size(1) == logits.size(1),
                ErrorKind::kInvalidArgument, who, ": logits ", logits.sizes(), " and labels ", labels.sizes(),
                " (expected [B, T, V] and [B, T])");
}

struct CrossEntropySum : torch::autograd::Function<CrossEntropySum> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& logits_in,
                            const at::Tensor& labels, int64_t ignore_index) {
    const at::Tensor logits = logits_in.to(at::kFloat).contiguous();
    const int64_t N = logits.size(0);
    at::Tensor lse = at::empty({N}, logits.options());
    at::Tensor picked = at::zeros({N}, logits.options().dtype(at::kDouble));
    const int64_t* label = labels.data_ptr<int64_t>();
    const int64_t V = logits.size(1);
    const float* rows = logits.data_ptr<float>();
    float* lse_rows = lse.data_ptr<float>();
    double* out = picked.data_ptr<double>();
    for_each_row_block(N, [&](int64_t b, int64_t n) {
      for (int64_t i = b; i < b + n; ++i) {
        lse_rows[i] = vocab::logsumexp(rows + i * V, V);
        if (label[i] != ignore_index) out[i] = static_cast<double>(lse_rows[i]) - rows[i * V + label[i]];
      }
    });
    ctx->save_for_backward({logits, lse, labels});
    ctx->saved_data["ignore_index"] = ignore_index;
    ctx->saved_data["dtype"] = static_cast<int64_t>(logits_in.scalar_type());
    return picked.sum().to(at::kFloat);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad) {
    auto saved = ctx->get_saved_variables();
    const at::Tensor& logits = saved[0];
    const at::Tensor& lse = saved[1];
    const int64_t* label = saved[2].data_ptr<int64_t>();
    const int64_t ignore_index = ctx->saved_data["ignore_index"].toInt();
    const float g = grad[0].item<float>();
    const int64_t N = logits.size(0), V = logits.size(1);
    at::Tensor out = at::empty_like(logits);
    const float* rows = logits.data_ptr<float>();
    const float* lse_rows = lse.data_ptr<float>();
    float* grad_rows = out.data_ptr<float>();
    for_each_row_block(N, [&](int64_t b, int64_t n) {
      for (int64_t i = b; i < b + n; ++i) {
        float* o = grad_rows + i * V;
        if (label[i] == ignore_index) {
          std::fill(o, o + V, 0.f);
        } else {
          vocab::scaled_exp(rows + i * V, V, lse_rows[i], g, o);  // g softmax(row)
          o[label[i]] -= g;
        }
      }
    });
    const auto dtype = static_cast<at::ScalarType>(ctx->saved_data["dtype"].toInt());
    return {dtype == at::kFloat ? out : out.to(dtype), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

at::Tensor cross_entropy_sum(const at::Tensor& logits, const at::Tensor& labels, int64_t ignore_index) {
  MIXPEFT_CHECK(logits.dim() == 2 && labels.dim() == 1 && labels.size(0) == logits.size(0), ErrorKind::kInvalidArgument,
                "cross_entropy_sum: logits ", logits.sizes(), " and labels ", labels.sizes(),
                " (expected [N, V] and [N])");
  const at::Tensor l = checked_labels(labels, logits.size(1), ignore_index, "cross_entropy_sum");
  // Elsewhere (CUDA) ATen's own loss, whose kernels fuse there.
  if (!logits.device().is_cpu())
    return at::cross_entropy_loss(logits.to(at::kFloat), l, {}, at::Reduction::Sum, ignore_index, 0.0);
  return CrossEntropySum::apply(logits, l, ignore_index);
}

at::Tensor causal_lm_loss_sum(const at::Tensor& logits, const at::Tensor& labels, int64_t ignore_index) {
  check_causal_lm_shapes(logits, labels, "causal_lm_loss_sum");
  return cross_entropy_sum(logits.reshape({-1, logits.size(2)}), shifted_labels(labels, ignore_index), ignore_index);
}

std::pair<at::Tensor, at::Tensor> causal_lm_loss_sum_and_consistency(const at::Tensor& logits1,
                                                                     const at::Tensor& logits2,
                                                                     const at::Tensor& labels, int64_t ignore_index) {
  const char* who = "causal_lm_loss_sum_and_consistency";
  check_causal_lm_shapes(logits1, labels, who);
  MIXPEFT_CHECK(logits2.sizes() == logits1.sizes(), ErrorKind::kInvalidArgument, who, ": logits ", logits1.sizes(),
                " and ", logits2.sizes(), " differ");
  if (!logits1.device().is_cpu() || logits1.numel() == 0)
    return {causal_lm_loss_sum(logits1, labels, ignore_index), peft::adamix_consistency_loss(logits1, logits2)};
  const int64_t V = logits1.size(2);
  const at::Tensor l = checked_labels(shifted_labels(labels, ignore_index), V, ignore_index, who);
  // Float32 conversions (of bf16 logits) stay outside the function, in autograd's hands.
  return peft::cpu_cross_entropy_and_consistency(logits1.to(at::kFloat).reshape({-1, V}).contiguous(),
                                                 logits2.to(at::kFloat).reshape({-1, V}).contiguous(), l,
                                                 ignore_index, logits1.size(0));
}

}  // namespace mixpeft::train
