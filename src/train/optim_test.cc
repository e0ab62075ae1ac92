#include "train/optim.h"

#include <cmath>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "mixpeft/error.h"

namespace mixpeft::train {
namespace {

TEST(AdamW, MatchesTheFormulaStepByStep) {
  // Two parameters, one decayed, one not; three steps with known gradients,
  // computed again here in double precision from the formula.
  at::Tensor w = torch::tensor({1.0f, -2.0f, 0.5f}).set_requires_grad(true);
  at::Tensor b = torch::tensor({0.25f}).set_requires_grad(true);
  AdamWOptions o;
  o.weight_decay = 0.1;
  AdamW opt({{"w", w}, {"bias", b}}, {true, false}, o);
  double wr[3] = {1.0, -2.0, 0.5}, br = 0.25, mw[3] = {}, vw[3] = {}, mb = 0, vb = 0;
  const double lr = 0.01;
  for (int step = 1; step <= 3; ++step) {
    const double gw[3] = {0.1 * step, -0.2, 0.3 / step}, gb = 0.05 * step;
    w.mutable_grad() = torch::tensor({static_cast<float>(gw[0]), static_cast<float>(gw[1]), static_cast<float>(gw[2])});
    b.mutable_grad() = torch::tensor({static_cast<float>(gb)});
    opt.step(lr);
    const double bc1 = 1 - std::pow(0.9, step), bc2 = 1 - std::pow(0.999, step);
    for (int i = 0; i < 3; ++i) {
      wr[i] *= 1 - lr * 0.1;
      mw[i] = 0.9 * mw[i] + 0.1 * gw[i];
      vw[i] = 0.999 * vw[i] + 0.001 * gw[i] * gw[i];
      wr[i] -= lr / bc1 * mw[i] / (std::sqrt(vw[i]) / std::sqrt(bc2) + 1e-8);
      EXPECT_NEAR(w[i].item<double>(), wr[i], 1e-6) << "step " << step << " element " << i;
    }
    mb = 0.9 * mb + 0.1 * gb;
    vb = 0.999 * vb + 0.001 * gb * gb;
    br -= lr / bc1 * mb / (std::sqrt(vb) / std::sqrt(bc2) + 1e-8);  // no decay on a bias
    EXPECT_NEAR(b[0].item<double>(), br, 1e-6) << "step " << step;
  }
  EXPECT_EQ(opt.steps(), 3);
}

TEST(AdamW, StateRoundTripContinuesIdentically) {
  auto make = [] { return torch::tensor({0.5f, 1.5f}).set_requires_grad(true); };
  at::Tensor a = make(), c = make();
  AdamW oa({{"p", a}}, {true}, {}), oc({{"p", c}}, {true}, {});
  for (int s = 0; s < 2; ++s) {
    a.mutable_grad() = torch::tensor({0.3f, -0.1f});
    oa.step(1e-2);
  }
  // c gets a's parameter and state, then both take the same step.
  {
    torch::NoGradGuard g;
    c.copy_(a);
  }
  oc.load_state(oa.state(), oa.steps(), "test");
  a.mutable_grad() = torch::tensor({0.7f, 0.2f});
  c.mutable_grad() = torch::tensor({0.7f, 0.2f});
  oa.step(1e-2);
  oc.step(1e-2);
  EXPECT_TRUE(torch::equal(a, c));
}

TEST(AdamW, LoadStateRejectsAWrongShape) {
  at::Tensor p = torch::zeros({3}).set_requires_grad(true);
  AdamW opt({{"p", p}}, {true}, {});
  std::vector<std::pair<std::string, at::Tensor>> bad = {{"exp_avg.p", torch::zeros({2})}, {"exp_avg_sq.p", torch::zeros({2})}};
  EXPECT_THROW(opt.load_state(bad, 1, "ckpt"), Error);
}

TEST(Schedule, LinearAndCosineWithWarmupAsHuggingFace) {
  // HF get_linear_schedule_with_warmup(warmup=2, total=10).
  EXPECT_DOUBLE_EQ(lr_multiplier("linear", 0, 2, 10), 0.0);
  EXPECT_DOUBLE_EQ(lr_multiplier("linear", 1, 2, 10), 0.5);
  EXPECT_DOUBLE_EQ(lr_multiplier("linear", 2, 2, 10), 1.0);
  EXPECT_DOUBLE_EQ(lr_multiplier("linear", 6, 2, 10), 0.5);
  EXPECT_DOUBLE_EQ(lr_multiplier("linear", 10, 2, 10), 0.0);
  EXPECT_DOUBLE_EQ(lr_multiplier("linear", 12, 2, 10), 0.0);  // never negative
  // get_cosine_schedule_with_warmup: halfway through the decay it is 0.5.
  EXPECT_NEAR(lr_multiplier("cosine", 6, 2, 10), 0.5, 1e-12);
  EXPECT_NEAR(lr_multiplier("cosine", 2, 2, 10), 1.0, 1e-12);
  EXPECT_NEAR(lr_multiplier("cosine", 10, 2, 10), 0.0, 1e-12);
  EXPECT_DOUBLE_EQ(lr_multiplier("constant", 7, 2, 10), 1.0);
  EXPECT_DOUBLE_EQ(lr_multiplier("linear", 0, 0, 4), 1.0);  // no warm-up: full rate at once
}

TEST(ClipGradNorm, ScalesToTheMaximumAndReportsTheNorm) {
  at::Tensor a = torch::zeros({2}).set_requires_grad(true), b = torch::zeros({1}).set_requires_grad(true);
  a.mutable_grad() = torch::tensor({3.0f, 0.0f});
  b.mutable_grad() = torch::tensor({4.0f});
  const double norm = clip_grad_norm({{"a", a}, {"b", b}}, 1.0);
  EXPECT_NEAR(norm, 5.0, 1e-6);
  EXPECT_NEAR(a.grad()[0].item<double>(), 3.0 / (5.0 + 1e-6), 1e-6);
  EXPECT_NEAR(b.grad()[0].item<double>(), 4.0 / (5.0 + 1e-6), 1e-6);
  // Below the maximum nothing changes.
  EXPECT_NEAR(clip_grad_norm({{"a", a}, {"b", b}}, 10.0), 1.0, 1e-5);
  EXPECT_NEAR(a.grad()[0].item<double>(), 0.6, 1e-5);
}

TEST(WeightDecay, BiasesAndNormsAreExempt) {
  EXPECT_TRUE(no_weight_decay("bert.encoder.layer.0.attention.output.dense.bias"));
  EXPECT_TRUE(no_weight_decay("bert.encoder.layer.0.output.LayerNorm.weight"));
  EXPECT_TRUE(no_weight_decay("model.layers.1.input_layernorm.weight"));
  EXPECT_TRUE(no_weight_decay("transformer.h.0.ln_1.weight"));
  EXPECT_FALSE(no_weight_decay("model.layers.0.self_attn.q_proj.lora_A.weight"));
  EXPECT_FALSE(no_weight_decay("score.weight"));
}

}  // namespace
}  // namespace mixpeft::train
