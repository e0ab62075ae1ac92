#include "train/loss.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

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

}  // namespace
}  // namespace mixpeft::train
