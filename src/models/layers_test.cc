// nn::attention and nn::frozen_matmul against LibTorch's composite ops in
// float64: the fast CPU paths (per-block GEMMs, oneDNN) must give the same
// values and gradients for every layout the models hand them.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/gemm.h"
#include "mixpeft/nn.h"

namespace mixpeft::nn {
namespace {

at::Tensor reference_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                               const at::Tensor& bias, double scale) {
  auto s = torch::matmul(q, k.transpose(-1, -2)) * scale;
  if (bias.defined()) s = s + bias;
  return torch::matmul(torch::softmax(s, -1), v);
}

double max_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(torch::kDouble) - b.to(torch::kDouble)).abs().max().item<double>();
}

struct AttentionCase {
  const char* name;
  int64_t B, H, T, S, D;
  bool causal, key_mask, strided_q;
};

class AttentionTest : public ::testing::TestWithParam<AttentionCase> {};

TEST_P(AttentionTest, EqualsTheCompositeWithGradients) {
  const AttentionCase c = GetParam();
  torch::manual_seed(1);
  // q as the models make it: a [B, T, H, D] projection viewed as [B, H, T, D].
  at::Tensor q = c.strided_q ? torch::randn({c.B, c.T, c.H, c.D}).transpose(1, 2) : torch::randn({c.B, c.H, c.T, c.D});
  at::Tensor k = torch::randn({c.B, c.H, c.S, c.D}), v = torch::randn({c.B, c.H, c.S, c.D});
  q = q.detach().requires_grad_(true);
  k.requires_grad_(true);
  v.requires_grad_(true);
  at::Tensor mask;
  if (c.key_mask) {
    mask = torch::ones({c.B, c.S}, torch::kLong);
    mask[0][0] = 0;  // a left-padded first row
  }
  at::Tensor bias = attention_bias(mask, c.T, c.S, c.causal, torch::kFloat, torch::kCPU);
  const double scale = 1.0 / std::sqrt(static_cast<double>(c.D));
  at::Tensor out = attention(q, k, v, bias, scale);
  at::Tensor grad = torch::randn(out.sizes());
  auto grads = torch::autograd::grad({out}, {q, k, v}, {grad});

  auto q64 = q.detach().to(torch::kDouble).requires_grad_(true);
  auto k64 = k.detach().to(torch::kDouble).requires_grad_(true);
  auto v64 = v.detach().to(torch::kDouble).requires_grad_(true);
  at::Tensor ref = reference_attention(q64, k64, v64, bias.defined() ? bias.to(torch::kDouble) : bias, scale);
  auto ref_grads = torch::autograd::grad({ref}, {q64, k64, v64}, {grad.to(torch::kDouble)});
  EXPECT_LT(max_diff(out, ref), 1e-5) << c.name;
  const char* names[] = {"dq", "dk", "dv"};
  for (int i = 0; i < 3; ++i) EXPECT_LT(max_diff(grads[i], ref_grads[i]), 1e-4) << c.name << " " << names[i];
}

INSTANTIATE_TEST_SUITE_P(
    Layouts, AttentionTest,
    ::testing::Values(AttentionCase{"causal", 2, 3, 16, 16, 8, true, false, true},
                      AttentionCase{"causal_contiguous", 2, 3, 16, 16, 8, true, false, false},
                      AttentionCase{"key_mask_only", 2, 3, 7, 7, 8, false, true, true},
                      AttentionCase{"causal_and_mask", 2, 2, 9, 9, 4, true, true, true},
                      AttentionCase{"decode_step", 2, 3, 1, 6, 8, true, true, true},
                      AttentionCase{"no_bias", 1, 2, 5, 5, 8, false, false, false},
                      AttentionCase{"gpt2_blocks", 2, 4, 128, 128, 64, true, false, true}),
    [](const ::testing::TestParamInfo<AttentionCase>& info) { return std::string(info.param.name); });

TEST(FrozenMatmul, EqualsAddmmForEveryWeightLayoutWithTheInputGradientOnly) {
  torch::manual_seed(2);
  const at::Tensor w_out_in = torch::randn({6, 5});  // torch.nn.Linear [out, in]
  const at::Tensor w_in_out = torch::randn({5, 6});  // GPT-2 Conv1D [in, out]
  const at::Tensor bias = torch::randn({6});
  for (const at::Tensor& w : {w_out_in.t(), w_in_out}) {
    for (bool with_bias : {false, true}) {
      at::Tensor x = torch::randn({2, 3, 5}).requires_grad_(true);
      at::Tensor y = frozen_matmul(x, w, with_bias ? bias : at::Tensor());
      if (!onednn_gemm_available()) {
        EXPECT_FALSE(y.defined());  // callers keep their ATen expression
        continue;
      }
      ASSERT_TRUE(y.defined());
      EXPECT_EQ(y.sizes(), (std::vector<int64_t>{2, 3, 6}));
      at::Tensor x64 = x.detach().to(torch::kDouble).requires_grad_(true);
      at::Tensor ref = torch::matmul(x64, w.to(torch::kDouble));
      if (with_bias) ref = ref + bias.to(torch::kDouble);
      EXPECT_LT(max_diff(y, ref), 1e-5);
      at::Tensor g = torch::randn(y.sizes());
      auto dx = torch::autograd::grad({y}, {x}, {g})[0];
      auto dx_ref = torch::autograd::grad({ref}, {x64}, {g.to(torch::kDouble)})[0];
      EXPECT_LT(max_diff(dx, dx_ref), 1e-5);
    }
  }
  // One row (a decoding step): the output starts as a copy of the bias, and
  // the bias stays what it was (expand().contiguous() of one row would alias it).
  {
    torch::NoGradGuard no_grad;
    const at::Tensor before = bias.clone();
    at::Tensor x = torch::randn({1, 1, 5});
    for (int i = 0; i < 2; ++i) {
      at::Tensor y = frozen_matmul(x, w_in_out, bias);
      if (!y.defined()) break;
      EXPECT_LT(max_diff(y, torch::matmul(x, w_in_out) + before), 1e-5);
    }
    EXPECT_TRUE(torch::equal(bias, before));
  }
  // Trainable weights keep autograd's own path (their gradient is needed).
  at::Tensor trainable = torch::randn({5, 6}).requires_grad_(true);
  EXPECT_FALSE(frozen_matmul(torch::randn({2, 5}), trainable).defined());
  {
    torch::NoGradGuard no_grad;  // ... unless nothing is recorded
    EXPECT_EQ(frozen_matmul(torch::randn({2, 5}), trainable).defined(), onednn_gemm_available());
  }
  EXPECT_FALSE(frozen_matmul(torch::randn({2, 5}, torch::kDouble), w_in_out.to(torch::kDouble)).defined());
}

TEST(Sgemm, EveryTransposeAndStrideMatchesMm) {
  if (!onednn_gemm_available()) GTEST_SKIP() << "sgemm needs oneDNN: " << cpu_gemm_backend();
  torch::manual_seed(3);
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (float beta : {0.0f, 1.0f}) {
        const int64_t M = 7, N = 5, K = 9;
        // Stored with padded rows (ld > the row length) to check the strides.
        at::Tensor a_store = torch::randn(ta ? std::vector<int64_t>{K, M + 3} : std::vector<int64_t>{M, K + 3});
        at::Tensor b_store = torch::randn(tb ? std::vector<int64_t>{N, K + 2} : std::vector<int64_t>{K, N + 2});
        at::Tensor a = ta ? a_store.narrow(1, 0, M).t() : a_store.narrow(1, 0, K);
        at::Tensor b = tb ? b_store.narrow(1, 0, K).t() : b_store.narrow(1, 0, N);
        at::Tensor c_store = torch::randn({M, N + 1});
        at::Tensor expected = 0.5 * torch::mm(a.to(torch::kDouble), b.to(torch::kDouble)) +
                              beta * c_store.narrow(1, 0, N).to(torch::kDouble);
        sgemm(ta, tb, M, N, K, 0.5f, a_store.data_ptr<float>(), a_store.size(1), b_store.data_ptr<float>(),
              b_store.size(1), beta, c_store.data_ptr<float>(), c_store.size(1));
        EXPECT_LT(max_diff(c_store.narrow(1, 0, N), expected), 1e-5) << ta << tb << beta;
      }
}

}  // namespace
}  // namespace mixpeft::nn
