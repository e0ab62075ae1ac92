// Pearson, Spearman and perplexity against SciPy's documented examples and
// hand arithmetic. Values were also checked with SciPy 1.10.1 (Debian
// python3-scipy).
#include <gtest/gtest.h>

#include <cmath>

#include "core/test_util.h"
#include "mixpeft/error.h"
#include "mixpeft/metrics.h"

namespace mixpeft::metrics {
namespace {

using mixpeft::testing::throws_error_exactly;

TEST(Pearson, ScipyDocExample) {
  // scipy.stats.pearsonr docstring: x = [1..7], y = [10, 9, 2.5, 6, 4, 3, 2]
  // -> statistic -0.828503883588428 (1.10.1 prints -0.8285038835884277)
  EXPECT_NEAR(pearson({1, 2, 3, 4, 5, 6, 7}, {10, 9, 2.5, 6, 4, 3, 2}), -0.8285038835884277, 1e-14);
}

TEST(Pearson, ByHand) {
  // x = [1, 2, 3], y = [1, 3, 2]: centred (-1, 0, 1) and (-1, 1, 0):
  // r = 1 / (sqrt(2) * sqrt(2)) = 0.5
  EXPECT_NEAR(pearson({1, 2, 3}, {1, 3, 2}), 0.5, 1e-15);
  EXPECT_NEAR(pearson({1, 2}, {5, -3}), -1.0, 1e-15);                // two points: +-1
  EXPECT_NEAR(pearson({1, 2, 3, 4}, {10, 20, 30, 40}), 1.0, 1e-15);  // affine: exactly 1 (clipped)
  // Large offsets do not lose the correlation (values centred first).
  EXPECT_NEAR(pearson({1e9 + 1, 1e9 + 2, 1e9 + 3}, {1, 3, 2}), 0.5, 1e-12);
  // STS-B-like scores (scipy: 0.9698120249361757)
  EXPECT_NEAR(pearson({0.5, 2.25, 3.0, 4.8, 1.2, 3.0, 5.0, 0.0}, {0.7, 2.0, 3.5, 4.1, 1.9, 2.5, 4.9, 0.4}),
              0.9698120249361757, 1e-14);
}

TEST(Pearson, ConstantInputIsNaN) {
  // scipy: ConstantInputWarning and statistic nan.
  EXPECT_TRUE(std::isnan(pearson({1, 1, 1}, {1, 2, 3})));
  EXPECT_TRUE(std::isnan(pearson({1, 2, 3}, {4, 4, 4})));
}

TEST(Ranks, AverageTiesAsScipy) {
  // scipy.stats.rankdata docstring: rankdata([0, 2, 3, 2]) -> [1, 2.5, 4, 2.5]
  EXPECT_EQ(average_ranks({0, 2, 3, 2}), (std::vector<double>{1, 2.5, 4, 2.5}));
  // three-way tie at ranks 2, 3, 4 -> 3
  EXPECT_EQ(average_ranks({5, 1, 5, 9, 5}), (std::vector<double>{3, 1, 3, 5, 3}));
  EXPECT_TRUE(average_ranks({}).empty());
}

TEST(Spearman, ScipyDocExampleWithTies) {
  // scipy.stats.spearmanr docstring: spearmanr([1,2,3,4,5], [5,6,7,8,7]) -> 0.8207826816681233
  // By hand: ranks (1..5) and (1, 2, 3.5, 5, 3.5); centred (-2,-1,0,1,2) and
  // (-2,-1,0.5,2,0.5): r = (4 + 1 + 0 + 2 + 1) / (sqrt(10) sqrt(9.5)) = 0.82078268...
  EXPECT_NEAR(spearman({1, 2, 3, 4, 5}, {5, 6, 7, 8, 7}), 8.0 / std::sqrt(10.0 * 9.5), 1e-15);
  EXPECT_NEAR(spearman({1, 2, 3, 4, 5}, {5, 6, 7, 8, 7}), 0.8207826816681233, 1e-15);
  // STS-B-like scores (scipy: 0.9940297973880049)
  EXPECT_NEAR(spearman({0.5, 2.25, 3.0, 4.8, 1.2, 3.0, 5.0, 0.0}, {0.7, 2.0, 3.5, 4.1, 1.9, 2.5, 4.9, 0.4}),
              0.9940297973880049, 1e-14);
  // monotone but not linear: 1
  EXPECT_NEAR(spearman({1, 2, 3, 4}, {1, 8, 27, 64}), 1.0, 1e-15);
}

TEST(Spearman, ConstantOrNaNInputIsNaN) {
  EXPECT_TRUE(std::isnan(spearman({2, 2, 2}, {1, 2, 3})));
  EXPECT_TRUE(std::isnan(spearman({1, NAN, 3}, {1, 2, 3})));
}

TEST(Perplexity, FromSummedNll) {
  // 4 tokens, each with probability 1/2: NLL = 4 ln 2, perplexity 2.
  EXPECT_NEAR(perplexity(4 * std::log(2.0), 4), 2.0, 1e-15);
  EXPECT_DOUBLE_EQ(perplexity(0.0, 10), 1.0);
  // a uniform guess over 50257 tokens has perplexity 50257
  EXPECT_NEAR(perplexity(3 * std::log(50257.0), 3), 50257.0, 1e-8);
}

TEST(RegressionErrors, Inputs) {
  EXPECT_TRUE(throws_error_exactly([] { pearson({}, {}); }, ErrorKind::kInvalidArgument,
                                   "pearson: needs at least 2 values, got 0"));
  EXPECT_TRUE(throws_error_exactly([] { pearson({1}, {1}); }, ErrorKind::kInvalidArgument,
                                   "pearson: needs at least 2 values, got 1"));
  EXPECT_TRUE(throws_error_exactly([] { spearman({1, 2}, {1, 2, 3}); }, ErrorKind::kInvalidArgument,
                                   "spearman: 2 values against 3 (the two inputs must have the same length)"));
  EXPECT_TRUE(throws_error_exactly([] { average_ranks({1, NAN}); }, ErrorKind::kInvalidArgument,
                                   "average_ranks: value 1 is NaN"));
  EXPECT_TRUE(throws_error_exactly([] { perplexity(1.0, 0); }, ErrorKind::kInvalidArgument,
                                   "perplexity: token_count is 0 (needs at least one predicted token)"));
  EXPECT_TRUE(throws_error_exactly([] { perplexity(-1.0, 3); }, ErrorKind::kInvalidArgument,
                                   "perplexity: nll_sum is -1 (a summed negative log-likelihood is >= 0)"));
  EXPECT_TRUE(throws_error_exactly([] { perplexity(NAN, 3); }, ErrorKind::kInvalidArgument,
                                   "perplexity: nll_sum is nan (a summed negative log-likelihood is >= 0)"));
}

}  // namespace
}  // namespace mixpeft::metrics
