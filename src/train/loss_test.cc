#include "train/loss.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "mixpeft/adamix.h"
#include "mixpeft/data.h"
#include "mixpeft/error.h"
#include "models/test_util.h"
#include "train/internal.h"

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

// A causal-LM batch runs its LM head only on the positions that predict a
// token (to_tensors sets inputs.logits_rows): prompt and padding positions
// and each row's last are left out, and the loss and the gradients reaching
// the model are those of the whole logits, within rounding.
TEST(CausalLmLoss, TheLmHeadOnLabelledPositionsOnlyGivesTheSameLossAndGradients) {
  auto model = load_model(testing::fixture_dir("gpt2"));
  for (auto& p : model->parameters()) p.requires_grad_(true);
  data::Batch b;
  b.rows = 2;
  b.cols = 6;
  b.input_ids = {5, 9, 13, 2, 7, 11, /**/ 4, 8, 3, 0, 0, 0};
  b.attention_mask = {1, 1, 1, 1, 1, 1, /**/ 1, 1, 1, 0, 0, 0};
  b.labels = {-100, -100, 13, 2, 7, 11, /**/ -100, 8, 3, -100, -100, -100};  // prompts, then padding
  const TensorBatch tb = to_tensors(b, data::Task::kCausalLm, c10::Device(c10::kCPU));
  EXPECT_TRUE(torch::equal(tb.inputs.logits_rows, torch::tensor({1, 2, 3, 4, 6, 7}, torch::kLong)));
  EXPECT_TRUE(torch::equal(tb.lm_targets, torch::tensor({13, 2, 7, 11, 8, 3}, torch::kLong)));

  model->zero_grad();
  const at::Tensor part = loss_sum(data::Task::kCausalLm, model->forward(tb.inputs).logits, tb, 0.0);
  part.backward();
  std::vector<at::Tensor> grads_part;
  for (const auto& p : model->parameters()) grads_part.push_back(p.grad().defined() ? p.grad().clone() : at::Tensor());
  ModelInputs all = tb.inputs;
  all.logits_rows = at::Tensor();
  model->zero_grad();
  const at::Tensor logits = model->forward(all).logits;
  ASSERT_EQ(logits.dim(), 3);
  const at::Tensor whole = loss_sum(data::Task::kCausalLm, logits, tb, 0.0);
  whole.backward();
  EXPECT_NEAR(part.item<double>(), whole.item<double>(), 1e-5 * whole.item<double>());
  EXPECT_GT(whole.item<double>(), 0.0);
  size_t i = 0, compared = 0;
  for (const auto& p : model->parameters()) {
    const at::Tensor& g = grads_part[i++];
    ASSERT_EQ(g.defined(), p.grad().defined());
    if (!g.defined()) continue;
    EXPECT_LT((g - p.grad()).abs().max().item<double>(), 1e-5);
    ++compared;
  }
  EXPECT_GT(compared, 10u);
}

// AdaMix's consistency step in one function: the causal-LM loss of the first
// logits and the symmetric KL between both, against ATen's composite in
// float64, with weights that tell the two terms' gradients apart.
TEST(CausalLmLossAndConsistency, MatchesATenInFloat64ValuesAndGradients) {
  at::manual_seed(9);
  const int64_t B = 3, T = 7, V = 1003;
  at::Tensor a = (torch::randn({B, T, V}) * 3).set_requires_grad(true);
  at::Tensor b = (torch::randn({B, T, V}) * 3 + 1).set_requires_grad(true);
  at::Tensor labels = torch::randint(V, {B, T}, torch::kLong);
  labels[0][2] = -100;
  labels[2].narrow(0, 4, 3).fill_(-100);  // padding
  auto [ce, kl] = causal_lm_loss_sum_and_consistency(a, b, labels, -100);
  (0.3 * ce + 1.7 * kl).backward();

  at::Tensor ra = a.detach().to(torch::kDouble).set_requires_grad(true);
  at::Tensor rb = b.detach().to(torch::kDouble).set_requires_grad(true);
  at::Tensor shifted = torch::full({B, T}, -100, torch::kLong);
  shifted.narrow(1, 0, T - 1).copy_(labels.narrow(1, 1, T - 1));
  at::Tensor ref_ce =
      at::cross_entropy_loss(ra.reshape({-1, V}), shifted.view({-1}), {}, at::Reduction::Sum, -100, 0.0);
  namespace F = torch::nn::functional;
  const auto batchmean = F::KLDivFuncOptions().reduction(torch::kBatchMean);
  at::Tensor ref_kl = 0.5 * (F::kl_div(torch::log_softmax(ra, -1), torch::softmax(rb.detach(), -1), batchmean) +
                             F::kl_div(torch::log_softmax(rb, -1), torch::softmax(ra.detach(), -1), batchmean));
  (0.3 * ref_ce + 1.7 * ref_kl).backward();
  EXPECT_NEAR(ce.item<double>(), ref_ce.item<double>(), 1e-5 * ref_ce.item<double>());
  EXPECT_NEAR(kl.item<double>(), ref_kl.item<double>(), 1e-5 * ref_kl.item<double>());
  EXPECT_GT(kl.item<double>(), 0.1);
  EXPECT_LT((a.grad().to(torch::kDouble) - ra.grad()).abs().max().item<double>(), 1e-6);
  EXPECT_LT((b.grad().to(torch::kDouble) - rb.grad()).abs().max().item<double>(), 1e-6);
  EXPECT_GT(b.grad().abs().max().item<double>(), 1e-3);

  // The same as the two losses apart (what the trainer ran before), gradients included.
  at::Tensor a2 = a.detach().clone().set_requires_grad(true), b2 = b.detach().clone().set_requires_grad(true);
  (0.3 * causal_lm_loss_sum(a2, labels, -100) + 1.7 * peft::adamix_consistency_loss(a2, b2)).backward();
  EXPECT_LT((a.grad() - a2.grad()).abs().max().item<double>(), 1e-6);
  EXPECT_LT((b.grad() - b2.grad()).abs().max().item<double>(), 1e-7);
}

TEST(CausalLmLossAndConsistency, Bf16LogitsAndBadInput) {
  at::manual_seed(10);
  at::Tensor a = torch::randn({2, 5, 70}).to(torch::kBFloat16).set_requires_grad(true);
  at::Tensor b = torch::randn({2, 5, 70}).to(torch::kBFloat16).set_requires_grad(true);
  at::Tensor labels = torch::randint(70, {2, 5}, torch::kLong);
  auto [ce, kl] = causal_lm_loss_sum_and_consistency(a, b, labels, -100);
  (ce + kl).backward();
  ASSERT_EQ(a.grad().scalar_type(), torch::kBFloat16);
  ASSERT_EQ(b.grad().scalar_type(), torch::kBFloat16);
  at::Tensor fa = a.detach().to(torch::kFloat).set_requires_grad(true);
  at::Tensor fb = b.detach().to(torch::kFloat).set_requires_grad(true);
  (causal_lm_loss_sum(fa, labels, -100) + peft::adamix_consistency_loss(fa, fb)).backward();
  EXPECT_LT((a.grad().to(torch::kFloat) - fa.grad()).abs().max().item<double>(), 1e-2);
  EXPECT_LT((b.grad().to(torch::kFloat) - fb.grad()).abs().max().item<double>(), 1e-2);

  const auto message = [&](const at::Tensor& x, const at::Tensor& y, const at::Tensor& l) {
    try {
      causal_lm_loss_sum_and_consistency(x, y, l, -100);
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kInvalidArgument);
      return std::string(e.what());
    }
    return std::string("no error");
  };
  at::Tensor bad = labels.clone();
  bad[1][3] = 70;
  EXPECT_NE(message(a, b, bad).find("label 70 is outside the vocabulary [0, 70)"), std::string::npos);
  EXPECT_NE(message(a, b.narrow(1, 0, 4), labels).find("differ"), std::string::npos);
  EXPECT_NE(message(a, b, labels.narrow(1, 0, 4)).find("expected [B, T, V] and [B, T]"), std::string::npos);
}

}  // namespace
}  // namespace mixpeft::train
