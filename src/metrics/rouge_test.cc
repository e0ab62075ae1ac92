// ROUGE-L against Google's rouge-score (rouge_scorer.RougeScorer(["rougeL"])).
#include <gtest/gtest.h>

#include "mixpeft/error.h"
#include "mixpeft/metrics.h"

namespace mixpeft::metrics {
namespace {

using Tokens = std::vector<std::string>;

TEST(Rouge, ReadmeExample) {
  // rouge-score README: scorer.score('The quick brown fox jumps over the lazy dog',
  //                                  'The quick brown dog jumps on the log.')
  // rougeL: Score(precision=0.625, recall=0.5555555555555556, fmeasure=0.5882352941176471)
  // By hand: LCS "the quick brown jumps the" = 5; P = 5/8, R = 5/9, F = 2PR/(P+R) = 10/17.
  RougeScore s = rouge_l("The quick brown dog jumps on the log.", "The quick brown fox jumps over the lazy dog");
  EXPECT_DOUBLE_EQ(s.precision, 0.625);
  EXPECT_NEAR(s.recall, 0.5555555555555556, 1e-16);
  EXPECT_NEAR(s.fmeasure, 0.5882352941176471, 1e-16);
}

TEST(Rouge, OrderMattersForLcs) {
  // "police killed the gunman" vs "the gunman police killed" (Lin 2004): LCS 2 -> 0.5 each.
  RougeScore s = rouge_l("the gunman police killed", "police killed the gunman");
  EXPECT_DOUBLE_EQ(s.precision, 0.5);
  EXPECT_DOUBLE_EQ(s.recall, 0.5);
  EXPECT_DOUBLE_EQ(s.fmeasure, 0.5);
}

TEST(Rouge, Tokenizer) {
  EXPECT_EQ(rouge_tokenize("Hello, World! It's 3.14 -- ok_go"),
            (Tokens{"hello", "world", "it", "s", "3", "14", "ok", "go"}));
  // Non-ASCII letters are dropped (the [^a-z0-9] class), except those whose
  // Python lowercase is ASCII: U+0130 -> "i" + U+0307, U+212A KELVIN SIGN -> "k".
  EXPECT_EQ(rouge_tokenize("\xC4\xB0stanbul \xE2\x84\xAA" "elvin caf\xC3\xA9-au-lait"),
            (Tokens{"i", "stanbul", "kelvin", "caf", "au", "lait"}));
  EXPECT_TRUE(rouge_tokenize(" !!! \xE2\x80\x94 ").empty());
  // rouge-score on these: P = 5/7, R = 5/8, F = 2/3.
  RougeScore s = rouge_l("istanbul kelvin cafe au lait 3 14", "\xC4\xB0stanbul \xE2\x84\xAA" "elvin caf\xC3\xA9-au-lait 3.14");
  EXPECT_NEAR(s.precision, 5.0 / 7.0, 1e-15);
  EXPECT_NEAR(s.recall, 5.0 / 8.0, 1e-15);
  EXPECT_NEAR(s.fmeasure, 2.0 / 3.0, 1e-15);
}

TEST(Rouge, EmptySideScoresZero) {
  RougeScore a = rouge_l("anything", "");
  EXPECT_EQ(a.fmeasure, 0.0);
  RougeScore b = rouge_l("!!!", "a b c");
  EXPECT_EQ(b.precision, 0.0);
  EXPECT_EQ(b.recall, 0.0);
}

TEST(Rouge, CorpusIsTheMeanOfPairs) {
  // (10/17 + 0.5 + 1) / 3
  RougeScore s = rouge_l({"The quick brown dog jumps on the log.", "the gunman police killed", "Same text"},
                         {"The quick brown fox jumps over the lazy dog", "police killed the gunman", "same TEXT!"});
  EXPECT_NEAR(s.fmeasure, (10.0 / 17.0 + 0.5 + 1.0) / 3.0, 1e-15);
  EXPECT_NEAR(s.precision, (0.625 + 0.5 + 1.0) / 3.0, 1e-15);
  EXPECT_NEAR(s.recall, (5.0 / 9.0 + 0.5 + 1.0) / 3.0, 1e-15);
}

TEST(RougeErrors, Inputs) {
  try {
    rouge_l(std::vector<std::string>{"a"}, std::vector<std::string>{});
    ADD_FAILURE() << "did not throw";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kInvalidArgument);
    EXPECT_STREQ(e.what(), "rouge_l: 1 predictions but 0 references");
  }
  try {
    rouge_l(std::vector<std::string>{}, std::vector<std::string>{});
    ADD_FAILURE() << "did not throw";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "rouge_l: empty inputs (no predictions, no references)");
  }
}

}  // namespace
}  // namespace mixpeft::metrics
