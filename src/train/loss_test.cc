#include "train/loss.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "mixpeft/error.h"

namespace mixpeft::train {
namespace {

// Loss and gradient against ATen's cross_entropy_loss computed in float64 on
// the same logits: rows spanning several blocks and threads, ignored rows,
// and a vocabulary that is not a multiple of the vector width.
TEST(CrossEntropySum, MatchesATenInFloat64ValueAndGradient) {
  at::manual_seed(7);
  const int64_t N = 53, V = 1003;
  at::Tensor logits = (torch::randn({N, V}) * 4).set_requires_grad(true);
  at::Tensor labels = torch::randint(V, {N}, torch::kLong);
  labels[3] = -100;
  labels[40] = -100;
  at::Tensor loss = cross_entropy_sum(logits, labels, -100);
  (loss * 0.5).backward();

  at::Tensor ref_logits = logits.detach().to(torch::kDouble).set_requires_grad(true);
  at::Tensor ref = at::cross_entropy_loss(ref_logits, labels, {}, at::Reduction::Sum, -100, 0.0);
  (ref * 0.5).backward();
  EXPECT_NEAR(loss.item<double>(), ref.item<double>(), 1e-5 * ref.item<double>());
  const double grad_err = (logits.grad().to(torch::kDouble) - ref_logits.grad()).abs().max().item<double>();
  EXPECT_LT(grad_err, 1e-6);
  EXPECT_EQ(logits.grad()[3].abs().sum().item<double>(), 0.0);  // ignored rows get no gradient
}

TEST(CrossEntropySum, Bf16LogitsGetABf16Gradient) {
  at::manual_seed(8);
  at::Tensor logits = torch::randn({9, 70}).to(torch::kBFloat16).set_requires_grad(true);
  at::Tensor labels = torch::randint(70, {9}, torch::kLong);
  at::Tensor loss = cross_entropy_sum(logits, labels, -100);
  loss.backward();
  ASSERT_EQ(logits.grad().scalar_type(), torch::kBFloat16);
  at::Tensor f = logits.detach().to(torch::kFloat).set_requires_grad(true);
  at::Tensor ref = at::cross_entropy_loss(f, labels, {}, at::Reduction::Sum, -100, 0.0);
  ref.backward();
  EXPECT_NEAR(loss.item<double>(), ref.item<double>(), 1e-4 * ref.item<double>());
  EXPECT_LT((logits.grad().to(torch::kFloat) - f.grad().to(torch::kBFloat16).to(torch::kFloat)).abs().max().item<double>(),
            1e-2);
}

TEST(CrossEntropySum, RefusesLabelsOutsideTheVocabularyNamingThem) {
  at::Tensor logits = torch::zeros({2, 5});
  try {
    cross_entropy_sum(logits, torch::tensor({1, 7}, torch::kLong), -100);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("label 7 is outside the vocabulary [0, 5)"), std::string::npos) << e.what();
  }
  EXPECT_THROW(cross_entropy_sum(logits, torch::tensor({-1, 0}, torch::kLong), -100), Error);
  // Every row ignored: a zero loss, not a NaN.
  EXPECT_EQ(cross_entropy_sum(logits, torch::tensor({-100, -100}, torch::kLong), -100).item<double>(), 0.0);
}

}  // namespace
}  // namespace mixpeft::train
