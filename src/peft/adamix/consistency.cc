// AdaMix's consistency regulariser (include/mixpeft/adamix.h).
//
// With p = softmax(a), q = softmax(b) per row and both targets detached:
//   loss = 0.5 (KL(q || p) + KL(p || q)) / n = 0.5 sum (q - p) (log q - log p) / n
//   d loss / d a = 0.5 (p - q) / n,   d loss / d b = 0.5 (q - p) / n
// where n = logits.size(0) ("batchmean"). On the CPU this is computed a
// block of rows at a time (the [N, V] softmaxes and log-softmaxes of the
// composite, four of each with their backward, were most of the cost of a
// consistency step on a 50k vocabulary), keeping p - q for the backward.
// Each row pair is one call of vocab::symmetric_kl: one read of the two
// rows from memory, one exponential per logit, vectorised.
#include <torch/csrc/autograd/custom_function.h>
#include <torch/torch.h>

#include <vector>

#include "core/row_blocks.h"
#include "core/vocab_math.h"
#include "mixpeft/adamix.h"
#include "mixpeft/error.h"

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

struct SymmetricKl : torch::autograd::Function<SymmetricKl> {
  // a, b: [N, V] float32 contiguous; `n` the batchmean divisor. The forward
  // keeps p - q, which is all the backward needs (times the incoming
  // gradient), instead of the logits and a second pass of exponentials.
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& a, const at::Tensor& b,
                            int64_t n) {
    const int64_t N = a.size(0), V = a.size(1);
    at::Tensor p_minus_q = at::empty_like(a);
    std::vector<double> row_sums(static_cast<size_t>(N));
    const float* pa = a.data_ptr<float>();
    const float* pb = b.data_ptr<float>();
    float* pd = p_minus_q.data_ptr<float>();
    for_each_row_block(N, [&](int64_t r, int64_t k) {
      for (int64_t i = r; i < r + k; ++i)
        row_sums[static_cast<size_t>(i)] = vocab::symmetric_kl(pa + i * V, pb + i * V, V, pd + i * V);
    });
    double total = 0;
    for (double v : row_sums) total += v;
    ctx->save_for_backward({p_minus_q});
    ctx->saved_data["n"] = n;
    return at::scalar_tensor(total * 0.5 / static_cast<double>(n), a.options());
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad) {
    const at::Tensor d = ctx->get_saved_variables()[0];
    const double scale = grad[0].item<double>() * 0.5 / static_cast<double>(ctx->saved_data["n"].toInt());
    at::Tensor ga = at::empty_like(d), gb = at::empty_like(d);
    const int64_t V = d.size(1);
    const float* pd = d.data_ptr<float>();
    float *pa = ga.data_ptr<float>(), *pb = gb.data_ptr<float>();
    for_each_row_block(d.size(0), [&](int64_t r, int64_t k) {
      vocab::scale_and_negate(pd + r * V, k * V, static_cast<float>(scale), pa + r * V, pb + r * V);
    });
    return {ga, gb, at::Tensor()};
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
  return SymmetricKl::apply(a.reshape({-1, V}).contiguous(), b.reshape({-1, V}).contiguous(), a.size(0));
}

}  // namespace mixpeft::peft
