// AdaMix's consistency regulariser (include/mixpeft/adamix.h).
#include <torch/torch.h>

#include "mixpeft/adamix.h"
#include "mixpeft/error.h"

namespace mixpeft::peft {

at::Tensor adamix_consistency_loss(const at::Tensor& logits1, const at::Tensor& logits2) {
  MIXPEFT_CHECK(logits1.defined() && logits2.defined(), ErrorKind::kInvalidArgument,
                "adamix_consistency_loss: logits are undefined");
  MIXPEFT_CHECK(logits1.sizes() == logits2.sizes() && logits1.dim() >= 1, ErrorKind::kInvalidArgument,
                "adamix_consistency_loss: logits shapes differ or are scalars: ", logits1.sizes(), " vs ",
                logits2.sizes());
  namespace F = torch::nn::functional;
  const auto batchmean = F::KLDivFuncOptions().reduction(torch::kBatchMean);
  auto a = logits1.to(torch::kFloat), b = logits2.to(torch::kFloat);
  // F.kl_div(log q, p) = KL(p || q); the target p is detached in each term.
  auto kl_2_1 = F::kl_div(torch::log_softmax(a, -1), torch::softmax(b.detach(), -1), batchmean);
  auto kl_1_2 = F::kl_div(torch::log_softmax(b, -1), torch::softmax(a.detach(), -1), batchmean);
  return 0.5 * (kl_2_1 + kl_1_2);
}

}  // namespace mixpeft::peft
