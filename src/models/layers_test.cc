// nn::attention, nn::frozen_matmul, nn::linear and nn::add_low_rank against
// LibTorch's composite ops in float64: the fast CPU paths (per-block GEMMs,
// oneDNN) must give the same values and gradients for every layout the
// models hand them; under Bf16MatmulGuard, the values of bf16-rounded
// operands summed in fp32.
#include <cmath>

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

TEST(GemmBf16, EveryTransposeAndStrideMatchesTheRoundedOperandsProduct) {
  if (!onednn_bf16_gemm_available()) GTEST_SKIP() << "no bf16 GEMM here: " << cpu_bf16_gemm_backend();
  torch::manual_seed(3);
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (float beta : {0.0f, 1.0f}) {
        const int64_t M = 7, N = 5, K = 9;
        at::Tensor a_store = torch::randn(ta ? std::vector<int64_t>{K, M + 3} : std::vector<int64_t>{M, K + 3})
                                 .to(torch::kBFloat16);
        at::Tensor b_store = torch::randn(tb ? std::vector<int64_t>{N, K + 2} : std::vector<int64_t>{K, N + 2})
                                 .to(torch::kBFloat16);
        at::Tensor a = ta ? a_store.narrow(1, 0, M).t() : a_store.narrow(1, 0, K);
        at::Tensor b = tb ? b_store.narrow(1, 0, K).t() : b_store.narrow(1, 0, N);
        at::Tensor c_store = torch::randn({M, N + 1});
        // bf16 products are exact in fp32: only the fp32 sums round.
        at::Tensor expected = 0.5 * torch::mm(a.to(torch::kDouble), b.to(torch::kDouble)) +
                              beta * c_store.narrow(1, 0, N).to(torch::kDouble);
        gemm_bf16(ta, tb, M, N, K, 0.5f, a_store.data_ptr<c10::BFloat16>(), a_store.size(1),
                  b_store.data_ptr<c10::BFloat16>(), b_store.size(1), beta, c_store.data_ptr<float>(),
                  c_store.size(1));
        EXPECT_LT(max_diff(c_store.narrow(1, 0, N), expected), 1e-5) << ta << tb << beta;
      }
}

at::Tensor bf16_rounded(const at::Tensor& t) { return t.detach().to(torch::kBFloat16).to(torch::kDouble); }

TEST(Bf16MatmulGuard, FrozenProductsRoundTheirOperandsToBf16AndSumInFp32) {
  Bf16MatmulGuard probe;
  if (!probe.enabled()) GTEST_SKIP() << "no bf16 GEMM here: " << cpu_bf16_gemm_backend();
  torch::manual_seed(4);
  const at::Tensor w = torch::randn({5, 6}), bias = torch::randn({6});
  at::Tensor x = torch::randn({2, 3, 5}).requires_grad_(true);
  at::Tensor y = frozen_matmul(x, w, bias);
  ASSERT_TRUE(y.defined());
  EXPECT_EQ(y.scalar_type(), torch::kFloat);
  // The reference rounds x and w to bf16 and sums in float64: only the fp32 sum differs.
  EXPECT_LT(max_diff(y, torch::matmul(bf16_rounded(x), bf16_rounded(w)) + bias.to(torch::kDouble)), 1e-5);
  // ... and it is not the fp32 product (the rounding is really there).
  EXPECT_GT(max_diff(y, torch::matmul(x.detach().to(torch::kDouble), w.to(torch::kDouble)) + bias.to(torch::kDouble)),
            1e-4);
  at::Tensor g = torch::randn(y.sizes());
  at::Tensor dx = torch::autograd::grad({y}, {x}, {g})[0];
  EXPECT_EQ(dx.scalar_type(), torch::kFloat);
  EXPECT_LT(max_diff(dx, torch::matmul(bf16_rounded(g), bf16_rounded(w).t())), 1e-5);
  // The bf16 copy follows an in-place change of the weight (a merge, say).
  EXPECT_GE(Bf16MatmulGuard::cached_weights(), 1u);
  at::Tensor w2 = w.clone();
  at::Tensor before = frozen_matmul(x.detach(), w2);
  {
    torch::NoGradGuard no_grad;
    w2.mul_(2.0);
  }
  EXPECT_LT(max_diff(frozen_matmul(x.detach(), w2), 2.0 * before), 1e-5);
}

TEST(Bf16MatmulGuard, OffOutsideTheGuardAndItsCacheEndsWithTheLastGuard) {
  if (!onednn_bf16_gemm_available()) GTEST_SKIP() << "no bf16 GEMM here: " << cpu_bf16_gemm_backend();
  EXPECT_FALSE(Bf16MatmulGuard::active());
  const at::Tensor x = torch::randn({4, 5}), w = torch::randn({5, 3});
  {
    Bf16MatmulGuard outer;
    {
      Bf16MatmulGuard inner;
      EXPECT_TRUE(Bf16MatmulGuard::active());
      frozen_matmul(x, w);
    }
    EXPECT_TRUE(Bf16MatmulGuard::active());
    EXPECT_GE(Bf16MatmulGuard::cached_weights(), 1u);
    Bf16MatmulGuard off(false);
    EXPECT_FALSE(off.enabled());
  }
  EXPECT_FALSE(Bf16MatmulGuard::active());
  EXPECT_EQ(Bf16MatmulGuard::cached_weights(), 0u);
  const at::Tensor y = frozen_matmul(x, w);
  if (y.defined()) {
    EXPECT_LT(max_diff(y, torch::mm(x.to(torch::kDouble), w.to(torch::kDouble))), 1e-5);
  }
}

TEST(Bf16MatmulGuard, AttentionProductsInBf16StayCloseToTheComposite) {
  Bf16MatmulGuard guard;
  if (!guard.enabled()) GTEST_SKIP() << "no bf16 GEMM here: " << cpu_bf16_gemm_backend();
  torch::manual_seed(5);
  const int64_t B = 2, H = 3, T = 16, D = 8;
  at::Tensor q = torch::randn({B, T, H, D}).transpose(1, 2).detach().requires_grad_(true);
  at::Tensor k = torch::randn({B, H, T, D}).requires_grad_(true), v = torch::randn({B, H, T, D}).requires_grad_(true);
  at::Tensor bias = attention_bias(at::Tensor(), T, T, /*causal=*/true, torch::kFloat, torch::kCPU);
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  at::Tensor out = attention(q, k, v, bias, scale);
  EXPECT_EQ(out.scalar_type(), torch::kFloat);
  at::Tensor grad = torch::randn(out.sizes());
  auto grads = torch::autograd::grad({out}, {q, k, v}, {grad});
  auto q64 = q.detach().to(torch::kDouble).requires_grad_(true);
  auto k64 = k.detach().to(torch::kDouble).requires_grad_(true);
  auto v64 = v.detach().to(torch::kDouble).requires_grad_(true);
  at::Tensor ref = reference_attention(q64, k64, v64, bias.to(torch::kDouble), scale);
  auto ref_grads = torch::autograd::grad({ref}, {q64, k64, v64}, {grad.to(torch::kDouble)});
  // bf16 keeps 8 bits: a few 1e-2 at most on values of order 1, and not fp32's 1e-6.
  const double d = max_diff(out, ref);
  EXPECT_LT(d, 3e-2);
  EXPECT_GT(d, 1e-5);
  for (int i = 0; i < 3; ++i) EXPECT_LT(max_diff(grads[i], ref_grads[i]), 6e-2) << i;
}

TEST(Bf16Weights, Bf16ModelsMultiplyWithFp32SumsAndStayBf16) {
  if (!onednn_bf16_gemm_available()) GTEST_SKIP() << "no bf16 GEMM here: " << cpu_bf16_gemm_backend();
  torch::manual_seed(6);
  const at::Tensor w = torch::randn({5, 6}).to(torch::kBFloat16), bias = torch::randn({6}).to(torch::kBFloat16);
  at::Tensor x = torch::randn({3, 5}).to(torch::kBFloat16).requires_grad_(true);
  at::Tensor y = frozen_matmul(x, w, bias);
  ASSERT_TRUE(y.defined());
  EXPECT_EQ(y.scalar_type(), torch::kBFloat16);
  // One rounding of the fp32 sum to bf16: within half a bf16 ulp (2^-9 relative).
  const at::Tensor ref = torch::matmul(x.detach().to(torch::kDouble), w.to(torch::kDouble)) + bias.to(torch::kDouble);
  EXPECT_LT(((y.to(torch::kDouble) - ref).abs() / ref.abs().clamp_min(1e-3)).max().item<double>(), 1.0 / 256);
  at::Tensor dx = torch::autograd::grad({y}, {x}, {torch::ones(y.sizes(), torch::kBFloat16)})[0];
  EXPECT_EQ(dx.scalar_type(), torch::kBFloat16);
}

TEST(Linear, ForwardAndEveryGradientEqualTheComposite) {
  torch::manual_seed(7);
  for (bool with_bias : {false, true})
    for (bool x_grad : {false, true}) {
      at::Tensor x = torch::randn({2, 3, 5}).requires_grad_(x_grad);
      at::Tensor w = torch::randn({4, 5}).requires_grad_(true);
      at::Tensor b = with_bias ? torch::randn({4}).requires_grad_(true) : at::Tensor();
      at::Tensor y = linear(x, w, b);
      auto x64 = x.detach().to(torch::kDouble).requires_grad_(x_grad);
      auto w64 = w.detach().to(torch::kDouble).requires_grad_(true);
      auto b64 = with_bias ? b.detach().to(torch::kDouble).requires_grad_(true) : at::Tensor();
      at::Tensor ref = torch::nn::functional::linear(x64, w64, b64);
      EXPECT_LT(max_diff(y, ref), 1e-5);
      at::Tensor g = torch::randn(y.sizes());
      std::vector<at::Tensor> in = {w}, in64 = {w64};
      if (x_grad) in.push_back(x), in64.push_back(x64);
      if (with_bias) in.push_back(b), in64.push_back(b64);
      auto got = torch::autograd::grad({y}, in, {g});
      auto want = torch::autograd::grad({ref}, in64, {g.to(torch::kDouble)});
      for (size_t i = 0; i < got.size(); ++i) EXPECT_LT(max_diff(got[i], want[i]), 1e-5) << with_bias << x_grad << i;
    }
}

TEST(AddLowRank, ForwardAndGradientsEqualTheComposite) {
  torch::manual_seed(8);
  at::Tensor base = torch::randn({2, 3, 6}).requires_grad_(true);
  at::Tensor down = torch::randn({2, 3, 2}).requires_grad_(true);
  at::Tensor B = torch::randn({6, 2}).requires_grad_(true);
  at::Tensor y = add_low_rank(base, down, B, 2.5);
  auto base64 = base.detach().to(torch::kDouble).requires_grad_(true);
  auto down64 = down.detach().to(torch::kDouble).requires_grad_(true);
  auto B64 = B.detach().to(torch::kDouble).requires_grad_(true);
  at::Tensor ref = base64 + 2.5 * torch::matmul(down64, B64.t());
  EXPECT_LT(max_diff(y, ref), 1e-5);
  at::Tensor g = torch::randn(y.sizes());
  auto got = torch::autograd::grad({y}, {base, down, B}, {g});
  auto want = torch::autograd::grad({ref}, {base64, down64, B64}, {g.to(torch::kDouble)});
  for (int i = 0; i < 3; ++i) EXPECT_LT(max_diff(got[i], want[i]), 1e-5) << i;
  EXPECT_FALSE(base.grad().defined());  // grad() does not accumulate; the base input is untouched
  EXPECT_LT(max_diff(base, base64), 0.0 + 1e-12);
}

// A Linear whose rows are a multiple of 4 KiB keeps them 64 bytes apart
// (gemm_layout_empty); products with it are those of a contiguous copy, to
// the bit, both ways round.
TEST(Linear, WeightRowsOf4KiBArePaddedAndMultiplyToTheSameBits) {
  torch::manual_seed(10);
  Linear conv(256, 1024, true, /*conv1d=*/true), lin(64, 32, false);
  EXPECT_EQ(conv->weight.stride(0), 1024 + 16);
  EXPECT_TRUE(lin->weight.is_contiguous());
  {
    torch::NoGradGuard no_grad;
    conv->weight.copy_(torch::randn({256, 1024}));
    conv->bias.copy_(torch::randn({1024}));
  }
  conv->weight.requires_grad_(false);
  conv->bias.requires_grad_(false);
  const at::Tensor w = conv->weight.contiguous();
  const at::Tensor x = torch::randn({48, 256}).requires_grad_(true);
  const at::Tensor y = conv->forward(x);
  const at::Tensor x2 = x.detach().clone().requires_grad_(true);
  const at::Tensor y2 = frozen_matmul(x2, w, conv->bias);
  EXPECT_TRUE(torch::equal(y, y2));
  const at::Tensor g = torch::randn(y.sizes());
  EXPECT_TRUE(torch::equal(torch::autograd::grad({y}, {x}, {g})[0], torch::autograd::grad({y2}, {x2}, {g})[0]));
}

// gelu_new: HF's composite to the bit without autograd; while autograd
// records, ATen's fused tanh-GELU, which rounds the same formula a little
// differently (layers.cc), and the exact derivative.
TEST(Activation, GeluNewIsHfsCompositeForInferenceAndCloseToItInTraining) {
  torch::manual_seed(9);
  const at::Tensor x = torch::randn({37, 3 * 64}) * 3;
  const double c = std::sqrt(2.0 / M_PI);
  const at::Tensor hf = 0.5 * x * (1.0 + torch::tanh(c * (x + 0.044715 * torch::pow(x, 3.0))));
  EXPECT_TRUE(torch::equal(activation("gelu_new", x), hf));
  const at::Tensor xg = x.clone().requires_grad_(true);
  const at::Tensor y = activation("gelu_new", xg);
  EXPECT_LT(max_diff(y, hf), 1e-6);
  EXPECT_LE(((y - hf).abs() - 4e-7 * hf.abs()).max().item<double>(), 1e-7);  // a few ulp of fp32
  const at::Tensor x64 = x.to(torch::kDouble).requires_grad_(true);
  const at::Tensor y64 = 0.5 * x64 * (1.0 + torch::tanh(c * (x64 + 0.044715 * torch::pow(x64, 3.0))));
  const at::Tensor g = torch::randn(x.sizes());
  const auto got = torch::autograd::grad({y}, {xg}, {g});
  const auto want = torch::autograd::grad({y64}, {x64}, {g.to(torch::kDouble)});
  EXPECT_LT(max_diff(got[0], want[0]), 1e-5);
}

}  // namespace
}  // namespace mixpeft::nn
