#include "core/vocab_math.h"

#include <cmath>
#include <random>
#include <vector>

#include <gtest/gtest.h>

namespace mixpeft::vocab {
namespace {

// Rows of several lengths (the vector kernels' tails: 1, 15, 17, ... and a
// GPT-2-sized vocabulary), wide logits, one row with a large offset.
std::vector<float> random_row(int64_t n, uint32_t seed, float scale, float offset = 0.f) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> normal(0.f, scale);
  std::vector<float> x(static_cast<size_t>(n));
  for (auto& v : x) v = normal(gen) + offset;
  return x;
}

double logsumexp_ref(const std::vector<float>& x) {
  double m = x[0];
  for (float v : x) m = std::max(m, static_cast<double>(v));
  double s = 0;
  for (float v : x) s += std::exp(static_cast<double>(v) - m);
  return m + std::log(s);
}

const int64_t kLengths[] = {1, 2, 15, 16, 17, 33, 1003, 50257};

TEST(VocabMath, LogsumexpMatchesFloat64) {
  for (int64_t n : kLengths) {
    for (float offset : {0.f, 80.f, -300.f}) {
      const auto x = random_row(n, static_cast<uint32_t>(n), 4.f, offset);
      const double ref = logsumexp_ref(x);
      EXPECT_NEAR(logsumexp(x.data(), n), ref, 2e-6 * std::max(1.0, std::abs(ref))) << "n " << n << " offset " << offset;
    }
  }
}

TEST(VocabMath, ScaledExpIsScaledSoftmaxAndWorksInPlace) {
  for (int64_t n : kLengths) {
    auto x = random_row(n, 100 + static_cast<uint32_t>(n), 3.f);
    const double lse = logsumexp_ref(x);
    std::vector<float> y(x.size());
    scaled_exp(x.data(), n, static_cast<float>(lse), -0.25f, y.data());
    double sum = 0, worst = 0;
    for (int64_t i = 0; i < n; ++i) {
      const double ref = -0.25 * std::exp(static_cast<double>(x[i]) - lse);
      worst = std::max(worst, std::abs(y[i] - ref) / std::abs(ref));
      sum += y[i];
    }
    EXPECT_LT(worst, 1e-5) << "n " << n;  // the shift itself is rounded to float: |lse| ulp
    EXPECT_NEAR(sum, -0.25, 1e-5) << "n " << n;
    scaled_exp(x.data(), n, static_cast<float>(lse), -0.25f, x.data());
    EXPECT_EQ(x, y) << "in place, n " << n;
  }
}

TEST(VocabMath, SymmetricKlMatchesFloat64ValueAndProbabilityDifferences) {
  for (int64_t n : kLengths) {
    const auto a = random_row(n, 200 + static_cast<uint32_t>(n), 3.f);
    const auto b = random_row(n, 300 + static_cast<uint32_t>(n), 3.f, 5.f);
    std::vector<float> d(a.size());
    float lse_a = 0.f;
    const double got = symmetric_kl(a.data(), b.data(), n, d.data(), &lse_a);
    const double la = logsumexp_ref(a), lb = logsumexp_ref(b);
    EXPECT_NEAR(lse_a, la, 2e-6 * std::max(1.0, std::abs(la))) << "n " << n;
    double ref = 0, worst = 0;
    for (int64_t i = 0; i < n; ++i) {
      const double lp = a[i] - la, lq = b[i] - lb;
      const double di = std::exp(lp) - std::exp(lq);
      ref += di * (lp - lq);
      worst = std::max(worst, std::abs(d[i] - di));
    }
    EXPECT_NEAR(got, ref, 1e-5 * ref + 1e-7) << "n " << n;
    EXPECT_LT(worst, 5e-7) << "n " << n;
  }
  // Equal rows: zero up to a fused multiply-add's rounding, and so are the
  // differences (the largest probability here is about 1e-3).
  const auto a = random_row(50257, 9, 3.f);
  std::vector<float> d(a.size(), 1.f);
  EXPECT_NEAR(symmetric_kl(a.data(), a.data(), 50257, d.data()), 0.0, 1e-12);
  for (float v : d) ASSERT_LT(std::abs(v), 1e-10f);
}

TEST(VocabMath, ScaleAndNegate) {
  const auto x = random_row(1003, 5, 1.f);
  std::vector<float> y(x.size()), z(x.size());
  scale_and_negate(x.data(), 1003, 0.5f, y.data(), z.data());
  for (size_t i = 0; i < x.size(); ++i) {
    ASSERT_EQ(y[i], 0.5f * x[i]);
    ASSERT_EQ(z[i], -y[i]);
  }
}

TEST(VocabMath, SoftmaxPlusScaledMatchesFloat64) {
  for (int64_t n : kLengths) {
    const auto a = random_row(n, 400 + static_cast<uint32_t>(n), 3.f, -7.f);
    const auto d = random_row(n, 500 + static_cast<uint32_t>(n), 1e-3f);
    const double la = logsumexp_ref(a);
    std::vector<float> y(a.size()), z(a.size());
    softmax_plus_scaled(a.data(), d.data(), n, static_cast<float>(la), 0.75f, -2.5f, y.data(), z.data());
    double worst = 0;
    for (int64_t i = 0; i < n; ++i) {
      const double p = std::exp(a[i] - la), ref = 0.75 * p - 2.5 * d[i];
      worst = std::max(worst, std::abs(y[i] - ref) / (0.75 * p + 2.5 * std::abs(d[i])));
      ASSERT_EQ(z[i], 2.5f * d[i]) << "n " << n << " i " << i;
    }
    EXPECT_LT(worst, 1e-5) << "n " << n;
  }
}

}  // namespace
}  // namespace mixpeft::vocab
