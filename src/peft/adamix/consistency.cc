// AdaMix's consistency regulariser (include/mixpeft/adamix.h).
//
// With p = softmax(a), q = softmax(b) per row and both targets detached:
//   loss = 0.5 (KL(q || p) + KL(p || q)) / n = 0.5 sum (q - p) (log q - log p) / n
//   d loss / d a = 0.5 (p - q) / n,   d loss / d b = 0.5 (q - p) / n
// where n = logits.size(0) ("batchmean"). On the CPU this is computed a
// block of rows at a time (the [N, V] softmaxes and log-softmaxes of the
// composite, four of each with their backward, were most of the cost of a
// consistency step on a 50k vocabulary), by the same function that adds the
// cross-entropy of the first logits for the trainer (consistency.h).
#include <torch/csrc/autograd/custom_function.h>
#include <torch/torch.h>

#include <vector>

#include "core/row_blocks.h"
#include "core/vocab_math.h"
#include "mixpeft/adamix.h"
#include "mixpeft/error.h"
#include "peft/adamix/consistency.h"

namespace mixpeft::peft {
namespace {

at::Tensor composite(const at::Tensor& a, const at::Tensor& b) {
  namespace F = torch::nn::functional;
  const auto batchmean = F::KLDivFuncOptions().reduction(torch::kBatchMean);
  // F.kl_div(log q, p) = KL(p || q); the target p is detached in each term.
  auto kl_2_1 = F::kl_div(torch::log_softmax(a, -1), torch::softmax(b.detach(), -1), batchmean);
  auto kl_1_2 = F::kl_div(torch::log_softmax(b, -1), torch::softmax(a.detach(), -1), batchmean);
  return 0.5 * (kl_2_1 + kl_1_2);
}

// {sum of the cross-entropies of a's labelled rows, 0.5 (KL(p || q) +
// KL(q || p)) / n}. The forward keeps p - q, which is all the KL's backward
// needs (times the incoming gradient), instead of the logits and a second
// pass of exponentials; with labels it also keeps a and each row's
// logsumexp for the cross-entropy's softmax. Each row pair is one call of
// vocab::symmetric_kl: one read of the two rows from memory, one
// exponential per logit, vectorised.
struct CrossEntropyAndKl : torch::autograd::Function<CrossEntropyAndKl> {
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx, const at::Tensor& a,
                                                const at::Tensor& b, const at::Tensor& labels, int64_t ignore_index,
                                                int64_t n) {
    const int64_t N = a.size(0), V = a.size(1);
    const bool ce = labels.numel() > 0;
    at::Tensor p_minus_q = at::empty_like(a), lse = ce ? at::empty({N}, a.options()) : at::Tensor();
    std::vector<double> ce_rows(static_cast<size_t>(N), 0.0), kl_rows(static_cast<size_t>(N));
    const int64_t* label = ce ? labels.data_ptr<int64_t>() : nullptr;
    const float *pa = a.data_ptr<float>(), *pb = b.data_ptr<float>();
    float *pd = p_minus_q.data_ptr<float>(), *plse = ce ? lse.data_ptr<float>() : nullptr;
    for_each_row_block(N, [&](int64_t r, int64_t k) {
      for (int64_t i = r; i < r + k; ++i) {
        const auto row = static_cast<size_t>(i);
        kl_rows[row] = vocab::symmetric_kl(pa + i * V, pb + i * V, V, pd + i * V, ce ? plse + i : nullptr);
        if (ce && label[i] != ignore_index) ce_rows[row] = static_cast<double>(plse[i]) - pa[i * V + label[i]];
      }
    });
    double ce_sum = 0, kl_sum = 0;
    for (size_t i = 0; i < ce_rows.size(); ++i) {
      ce_sum += ce_rows[i];
      kl_sum += kl_rows[i];
    }
    ctx->save_for_backward({p_minus_q, ce ? a : at::Tensor(), lse, labels});
    ctx->saved_data["ignore_index"] = ignore_index;
    ctx->saved_data["n"] = n;
    return {at::scalar_tensor(ce_sum, a.options()),
            at::scalar_tensor(kl_sum * 0.5 / static_cast<double>(n), a.options())};
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad) {
    auto saved = ctx->get_saved_variables();
    const at::Tensor &d = saved[0], &a = saved[1], &lse = saved[2], &labels = saved[3];
    const int64_t ignore_index = ctx->saved_data["ignore_index"].toInt();
    const auto scalar = [](const at::Tensor& g) { return g.defined() ? g.item<double>() : 0.0; };
    const auto s_ce = static_cast<float>(scalar(grad[0]));
    const auto s_kl = static_cast<float>(scalar(grad[1]) * 0.5 / static_cast<double>(ctx->saved_data["n"].toInt()));
    const int64_t N = d.size(0), V = d.size(1);
    at::Tensor ga = at::empty_like(d), gb = at::empty_like(d);
    const int64_t* label = labels.numel() > 0 ? labels.data_ptr<int64_t>() : nullptr;
    const float* pd = d.data_ptr<float>();
    const float *pa = label ? a.data_ptr<float>() : nullptr, *plse = label ? lse.data_ptr<float>() : nullptr;
    float *pga = ga.data_ptr<float>(), *pgb = gb.data_ptr<float>();
    for_each_row_block(N, [&](int64_t r, int64_t k) {
      for (int64_t i = r; i < r + k; ++i) {
        const int64_t o = i * V;
        if (label == nullptr || label[i] == ignore_index) {
          vocab::scale_and_negate(pd + o, V, s_kl, pga + o, pgb + o);
        } else {
          vocab::softmax_plus_scaled(pa + o, pd + o, V, plse[i], s_ce, s_kl, pga + o, pgb + o);
          pga[o + label[i]] -= s_ce;
        }
      }
    });
    return {ga, gb, at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

at::Tensor adamix_consistency_loss(const at::Tensor& logits1, const at::Tensor& logits2) {
  MIXPEFT_CHECK(logits1.defined() && logits2.defined(), ErrorKind::kInvalidArgument,
                "adamix_consistency_loss: logits are undefined");
  MIXPEFT_CHECK(logits1.sizes() == logits2.sizes() && logits1.dim() >= 1, ErrorKind::kInvalidArgument,
                "adamix_consistency_loss: logits shapes differ or are scalars: ", logits1.sizes(), " vs ",
                logits2.sizes());
  auto a = logits1.to(torch::kFloat), b = logits2.to(torch::kFloat);
  if (!a.device().is_cpu() || a.dim() < 2 || a.numel() == 0) return composite(a, b);
  const int64_t V = a.size(-1);
  return cpu_cross_entropy_and_consistency(a.reshape({-1, V}).contiguous(), b.reshape({-1, V}).contiguous(),
                                           at::empty({0}, at::kLong), 0, a.size(0))
      .second;
}

std::pair<at::Tensor, at::Tensor> cpu_cross_entropy_and_consistency(const at::Tensor& a, const at::Tensor& b,
                                                                    const at::Tensor& labels, int64_t ignore_index,
                                                                    int64_t n) {
  auto out = CrossEntropyAndKl::apply(a, b, labels, ignore_index, n);
  return {out[0], out[1]};
}

}  // namespace mixpeft::peft
