// accuracy, F1, Matthews correlation against scikit-learn's documented
// examples and hand-worked confusion matrices. Every value below was also
// checked with scikit-learn 1.2.1 (Debian python3-sklearn).
#include <gtest/gtest.h>

#include <cmath>

#include "core/test_util.h"
#include "mixpeft/error.h"
#include "mixpeft/metrics.h"

namespace mixpeft::metrics {
namespace {

using mixpeft::testing::throws_error_exactly;
using V = std::vector<int64_t>;

TEST(Accuracy, SklearnDocExample) {
  // sklearn.metrics.accuracy_score docstring: y_pred = [0, 2, 1, 3], y_true = [0, 1, 2, 3] -> 0.5
  EXPECT_DOUBLE_EQ(accuracy({0, 2, 1, 3}, {0, 1, 2, 3}), 0.5);
  EXPECT_DOUBLE_EQ(accuracy({7}, {7}), 1.0);
  EXPECT_DOUBLE_EQ(accuracy({1, 1, 1}, {0, 0, 0}), 0.0);
}

// Binary case used below (y_true first, as sklearn; our functions are symmetric):
//   y_true = [0, 1, 1, 0, 1, 1, 0, 0, 1, 1]
//   y_pred = [0, 1, 0, 0, 1, 1, 1, 0, 1, 0]
//   positive 1: TP = 4 (idx 1, 4, 5, 8), FP = 1 (idx 6), FN = 2 (idx 2, 9), TN = 3
const V kTrue = {0, 1, 1, 0, 1, 1, 0, 0, 1, 1};
const V kPred = {0, 1, 0, 0, 1, 1, 1, 0, 1, 0};

TEST(F1, BinaryByHand) {
  // F1 = 2 TP / (2 TP + FP + FN) = 8 / 11 = 0.7272727272727273 (sklearn: 0.7272727272727272)
  EXPECT_NEAR(f1_binary(kPred, kTrue), 8.0 / 11.0, 1e-15);
  // positive 0: TP = 3, FP = 2 (predicted 0, true 1), FN = 1 -> 6 / 9 (sklearn: 0.6666666666666665)
  EXPECT_NEAR(f1_binary(kPred, kTrue, 0), 6.0 / 9.0, 1e-15);
  // symmetric in its arguments
  EXPECT_DOUBLE_EQ(f1_binary(kTrue, kPred), f1_binary(kPred, kTrue));
}

TEST(F1, BinaryEdgeCases) {
  // No positive anywhere: sklearn warns and returns 0.0 (zero_division default).
  EXPECT_DOUBLE_EQ(f1_binary({0, 0}, {0, 0}), 0.0);
  // Perfect.
  EXPECT_DOUBLE_EQ(f1_binary({1, 0, 1}, {1, 0, 1}), 1.0);
  // Labels {2, 5} with positive 5: TP = 1, FP = 1, FN = 0 -> 2/3.
  EXPECT_NEAR(f1_binary({5, 5, 2}, {5, 2, 2}, 5), 2.0 / 3.0, 1e-15);
  EXPECT_TRUE(throws_error_exactly([] { f1_binary({0, 1, 2}, {0, 1, 1}); }, ErrorKind::kInvalidArgument,
                                   "f1_binary: 3 distinct labels (0, 1, 2); binary F1 needs at most 2: use f1_macro"));
  EXPECT_TRUE(throws_error_exactly([] { f1_binary({0, 2}, {2, 0}); }, ErrorKind::kInvalidArgument,
                                   "f1_binary: the positive label 1 is not one of the labels (0, 2)"));
}

TEST(F1, MacroSklearnDocExample) {
  // sklearn.metrics.f1_score docstring: y_true = [0, 1, 2, 0, 1, 2],
  // y_pred = [0, 2, 1, 0, 0, 1]; average=None -> [0.8, 0, 0], macro -> 0.26666...
  // (class 0: TP 2, FP 1, FN 0 -> 4/5; classes 1 and 2: TP 0 -> 0)
  EXPECT_NEAR(f1_macro({0, 2, 1, 0, 0, 1}, {0, 1, 2, 0, 1, 2}), 0.8 / 3.0, 1e-15);
}

TEST(F1, MacroCountsLabelsFromBothSides) {
  // Label 3 is only predicted: F1 0, and it is averaged in (sklearn's
  // labels = unique_labels(y_true, y_pred)).
  // true [0, 0, 1], pred [0, 3, 1]: F1(0) = 2/3, F1(1) = 1, F1(3) = 0 -> 5/9
  EXPECT_NEAR(f1_macro({0, 3, 1}, {0, 0, 1}), 5.0 / 9.0, 1e-15);
  // Multiclass case (sklearn: 0.669047619047619):
  // true [0,1,2,2,1,0,1,2,0,0], pred [0,2,2,2,1,0,0,2,1,0]
  // class 0: TP 3, FP 1, FN 1 -> 6/8; class 1: TP 1, FP 1, FN 2 -> 2/5; class 2: TP 3, FP 1, FN 0 -> 6/7
  EXPECT_NEAR(f1_macro({0, 2, 2, 2, 1, 0, 0, 2, 1, 0}, {0, 1, 2, 2, 1, 0, 1, 2, 0, 0}),
              (6.0 / 8 + 2.0 / 5 + 6.0 / 7) / 3, 1e-15);
}

TEST(Matthews, SklearnDocExample) {
  // sklearn.metrics.matthews_corrcoef docstring: y_true = [+1, +1, +1, -1],
  // y_pred = [+1, -1, +1, +1] -> -0.33...
  // TP 2, TN 0, FP 1, FN 1: (2*0 - 1*1) / sqrt(3 * 3 * 1 * 1) = -1/3
  EXPECT_NEAR(matthews_corrcoef({1, -1, 1, 1}, {1, 1, 1, -1}), -1.0 / 3.0, 1e-15);
}

TEST(Matthews, BinaryByHand) {
  // kTrue/kPred: TP 4, TN 3, FP 1, FN 2:
  // (4*3 - 1*2) / sqrt((4+1)(4+2)(3+1)(3+2)) = 10 / sqrt(600) = 0.408248290463863 (sklearn same)
  EXPECT_NEAR(matthews_corrcoef(kPred, kTrue), 10.0 / std::sqrt(600.0), 1e-15);
  EXPECT_DOUBLE_EQ(matthews_corrcoef({1, 0, 1, 0}, {1, 0, 1, 0}), 1.0);
  EXPECT_DOUBLE_EQ(matthews_corrcoef({0, 1, 0, 1}, {1, 0, 1, 0}), -1.0);
}

TEST(Matthews, Multiclass) {
  // true [0,1,2,2,1,0,1,2,0,0], pred [0,2,2,2,1,0,0,2,1,0] (sklearn: 0.5539117094069973)
  // t = true counts (4, 3, 3), p = predicted counts (4, 2, 4), correct c = 7, n = 10:
  // (c n - t.p) / sqrt((n^2 - p.p)(n^2 - t.t)) = (70 - 34) / sqrt((100 - 36)(100 - 34))
  //   = 36 / sqrt(64 * 66)
  EXPECT_NEAR(matthews_corrcoef({0, 2, 2, 2, 1, 0, 0, 2, 1, 0}, {0, 1, 2, 2, 1, 0, 1, 2, 0, 0}),
              36.0 / std::sqrt(64.0 * 66.0), 1e-15);
}

TEST(Matthews, OneClassIsZeroAsSklearn) {
  // A single class everywhere: the denominator is 0 and sklearn returns 0.0.
  EXPECT_DOUBLE_EQ(matthews_corrcoef({1, 1, 1}, {1, 1, 1}), 0.0);
  // Constant predictions against varied truth: also 0 (sklearn: 0.0).
  EXPECT_DOUBLE_EQ(matthews_corrcoef({1, 1, 1}, {0, 1, 0}), 0.0);
}

TEST(ClassificationErrors, EmptyAndMismatchedInputs) {
  EXPECT_TRUE(throws_error_exactly([] { accuracy({}, {}); }, ErrorKind::kInvalidArgument,
                                   "accuracy: empty inputs (no predictions, no references)"));
  EXPECT_TRUE(throws_error_exactly([] { f1_macro({}, {}); }, ErrorKind::kInvalidArgument,
                                   "f1_macro: empty inputs (no predictions, no references)"));
  EXPECT_TRUE(throws_error_exactly([] { matthews_corrcoef({}, {}); }, ErrorKind::kInvalidArgument,
                                   "matthews_corrcoef: empty inputs (no predictions, no references)"));
  EXPECT_TRUE(throws_error_exactly([] { accuracy({1, 2}, {1}); }, ErrorKind::kInvalidArgument,
                                   "accuracy: 2 predictions but 1 references"));
  EXPECT_TRUE(throws_error_exactly([] { f1_binary({1}, {1, 0}); }, ErrorKind::kInvalidArgument,
                                   "f1_binary: 1 predictions but 2 references"));
}

}  // namespace
}  // namespace mixpeft::metrics
