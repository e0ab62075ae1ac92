// Corpus BLEU and the 13a tokenizer against sacreBLEU 2.x.
//
// Values marked "sacreBLEU" come from sacreBLEU's own code (the README
// example, or the functions of sacrebleu/tokenizers/tokenizer_13a.py,
// tokenizer_re.py and metrics/bleu.py run on the inputs shown).
#include <gtest/gtest.h>

#include <cmath>

#include "core/test_util.h"
#include "mixpeft/error.h"
#include "mixpeft/metrics.h"

namespace mixpeft::metrics {
namespace {

using mixpeft::testing::throws_error_exactly;

TEST(Bleu, SacreBleuReadmeExample) {
  // sacreBLEU README ("Using the Python API"):
  //   BLEU = 48.53 82.4/50.0/45.5/37.5 (BP = 0.943 ratio = 0.944 hyp_len = 17 ref_len = 18)
  std::vector<std::string> hyps = {"The dog bit the man.", "It wasn't surprising.", "The man had just bitten him."};
  std::vector<std::vector<std::string>> refs = {
      {"The dog bit the man.", "It was not unexpected.", "The man bit him first."},
      {"The dog had bit the man.", "No one was surprised.", "The man had bitten the dog."}};
  BleuScore s = corpus_bleu(hyps, refs);
  EXPECT_EQ(s.format(),
            "BLEU = 48.53 82.4/50.0/45.5/37.5 (BP = 0.943 ratio = 0.944 hyp_len = 17 ref_len = 18)");
  // Counts by hand: hypothesis tokens "The dog bit the man ." (6), "It wasn't surprising ." (4:
  // the apostrophe is not split), "The man had just bitten him ." (7) -> 17; closest
  // references 6, 5 (both 5), 7 -> 18. Matched 1-grams 6 + 2 + 6 = 14 of 17.
  EXPECT_EQ(s.hyp_len, 17);
  EXPECT_EQ(s.ref_len, 18);
  EXPECT_EQ(s.counts, (std::array<int64_t, 4>{14, 7, 5, 3}));
  EXPECT_EQ(s.totals, (std::array<int64_t, 4>{17, 14, 11, 8}));
  EXPECT_NEAR(s.precisions[0], 100.0 * 14 / 17, 1e-12);
  EXPECT_NEAR(s.bp, std::exp(1.0 - 18.0 / 17.0), 1e-15);
  EXPECT_NEAR(s.score, 48.530827009929865, 1e-10);  // sacreBLEU's unrounded score
  EXPECT_NEAR(s.ratio, 17.0 / 18.0, 1e-15);
}

TEST(Bleu, PapineniExampleWithThreeReferences) {
  // Papineni et al. (2002), candidate 1 against its three references; sacreBLEU:
  // 54.017258985951415, counts [18, 11, 8, 5] / totals [19, 18, 17, 16], BP 1.
  BleuScore s = corpus_bleu(
      {"It is a guide to action which ensures that the military always obeys the commands of the party."},
      {{"It is a guide to action that ensures that the military will forever heed Party commands."},
       {"It is the guiding principle which guarantees the military forces always being under the command of the "
        "Party."},
       {"It is the practical guide for the army always to heed the directions of the party."}});
  EXPECT_NEAR(s.score, 54.017258985951415, 1e-10);
  EXPECT_EQ(s.counts, (std::array<int64_t, 4>{18, 11, 8, 5}));
  EXPECT_EQ(s.totals, (std::array<int64_t, 4>{19, 18, 17, 16}));
  EXPECT_DOUBLE_EQ(s.bp, 1.0);
}

TEST(Bleu, ExpSmoothingForZeroMatches) {
  // sacreBLEU: 12.70331870386537, precisions 50 / 20 / 6.25 / 4.1666...
  // No 3- or 4-gram matches: 'exp' smoothing gives 100 / (2 * 8) and 100 / (4 * 6).
  BleuScore s = corpus_bleu({"the the the the the the the", "a b c d e"}, {{"the cat is on the mat", "a b x d e"}});
  EXPECT_NEAR(s.score, 12.70331870386537, 1e-10);
  EXPECT_EQ(s.counts, (std::array<int64_t, 4>{6, 2, 0, 0}));
  EXPECT_NEAR(s.precisions[2], 6.25, 1e-12);
  EXPECT_NEAR(s.precisions[3], 100.0 / 24, 1e-12);
  EXPECT_EQ(s.hyp_len, 12);
  EXPECT_EQ(s.ref_len, 11);
}

TEST(Bleu, ShortHypothesisHasNoHigherOrderNgrams) {
  // sacreBLEU: 2 tokens, no 3-grams: the precision loop stops, the 3- and
  // 4-gram precisions stay 0 and log(0) is -9999999999 -> score 0;
  // BP = exp(1 - 7/2) = 0.0820849986238988.
  BleuScore s = corpus_bleu({"The cat"}, {{"The cat sat on the mat ."}});
  EXPECT_DOUBLE_EQ(s.score, 0.0);
  EXPECT_EQ(s.precisions, (std::array<double, 4>{100.0, 100.0, 0.0, 0.0}));
  EXPECT_NEAR(s.bp, 0.0820849986238988, 1e-15);
  EXPECT_EQ(s.totals, (std::array<int64_t, 4>{2, 1, 0, 0}));
}

TEST(Bleu, NoMatchesAtAll) {
  // sacreBLEU #141: nothing matches -> score 0 and precisions 0.
  BleuScore s = corpus_bleu({"abc def"}, {{"xyz uvw"}});
  EXPECT_DOUBLE_EQ(s.score, 0.0);
  EXPECT_EQ(s.precisions, (std::array<double, 4>{0, 0, 0, 0}));
  EXPECT_DOUBLE_EQ(s.bp, 1.0);
  // An empty hypothesis: hyp_len 0, BP 0 (sacreBLEU: ratio 0.0 over ref_len 2).
  BleuScore e = corpus_bleu({""}, {{"nonempty ref"}});
  EXPECT_DOUBLE_EQ(e.score, 0.0);
  EXPECT_DOUBLE_EQ(e.bp, 0.0);
  EXPECT_EQ(e.ref_len, 2);
}

TEST(Bleu, VariableNumberOfReferences) {
  // The second segment's second reference is empty: it is skipped, as
  // sacreBLEU does. sacreBLEU: 100.00000000000004, counts [8, 6, 4, 2], ref_len 8.
  // Segment 1 has references of 4 and 6 tokens for a 5-token hypothesis: the
  // closest length is tied, and the shorter one (4) wins.
  BleuScore s = corpus_bleu({"one two three four five", "alpha beta gamma"},
                            {{"one two three four", "alpha beta gamma delta"}, {"one two three four five six", ""}});
  EXPECT_NEAR(s.score, 100.0, 1e-9);
  EXPECT_EQ(s.counts, (std::array<int64_t, 4>{8, 6, 4, 2}));
  EXPECT_EQ(s.hyp_len, 8);
  EXPECT_EQ(s.ref_len, 8);  // 4 + 4
}

TEST(Bleu, IdenticalIsHundred) {
  BleuScore s = corpus_bleu({"A quick test, with punctuation!"}, {{"A quick test, with punctuation!"}});
  EXPECT_NEAR(s.score, 100.0, 1e-9);
  EXPECT_DOUBLE_EQ(s.bp, 1.0);
}

TEST(Tokenize13a, MatchesSacreBleu) {
  // Each expected string is sacreBLEU's Tokenizer13a output for the input.
  EXPECT_EQ(tokenize_13a("Hello, world! It costs $3.50 (approx.) on 2020-01-05."),
            "Hello , world ! It costs $ 3.50 ( approx . ) on 2020 - 01 - 05 .");
  EXPECT_EQ(tokenize_13a("a&amp;b &quot;q&quot; &lt;tag&gt; x<skipped>y end-\nline\nnext"),
            "a & b \" q \" < tag > xy endline next");
  EXPECT_EQ(tokenize_13a("3,000.5 people... e.g. U.S.A. 5-6 1.a a.1 ,x x, ."),
            "3,000.5 people . . . e . g . U . S . A . 5 - 6 1 . a a . 1 , x x , .");
  EXPECT_EQ(tokenize_13a("don't stop ' ' `tick` [x] {y} ~z~ a/b a|b _under_ @at ^caret ?q ;sc :co =eq +plus "
                         "*star #h %p"),
            "don't stop ' ' ` tick ` [ x ] { y } ~ z ~ a / b a | b _ under _ @ at ^ caret ? q ; sc : co = eq + "
            "plus * star # h % p");
  EXPECT_EQ(tokenize_13a("  trailing spaces and tabs\t\t  "), "trailing spaces and tabs");
  // Non-ASCII: letters stay whole; Python's str.split() also splits on
  // U+00A0 and U+3000, but not on U+2013 / U+2014.
  EXPECT_EQ(tokenize_13a("Caf\xC3\xA9, na\xC3\xAFve. \xC3\x9Cn\xC3\xAF" "c\xC3\xB6" "d\xC3\xA9\xE2\x80\x93" "dash "
                         "\xE2\x80\x94 \xC2\xAB" "quotes\xC2\xBB non\xC2\xA0" "breaking\xE3\x80\x80" "ideo"),
            "Caf\xC3\xA9 , na\xC3\xAFve . \xC3\x9Cn\xC3\xAF" "c\xC3\xB6" "d\xC3\xA9\xE2\x80\x93" "dash "
            "\xE2\x80\x94 \xC2\xAB" "quotes\xC2\xBB non breaking ideo");
  // A period or comma next to a multi-byte letter on either side.
  EXPECT_EQ(tokenize_13a("\xC3\xA9.x \xC3\xBC,9 9.\xC3\xA4"), "\xC3\xA9 . x \xC3\xBC , 9 9 . \xC3\xA4");
  EXPECT_EQ(tokenize_13a(""), "");
}

TEST(BleuErrors, Inputs) {
  EXPECT_TRUE(throws_error_exactly([] { corpus_bleu({}, {{}}); }, ErrorKind::kInvalidArgument,
                                   "corpus_bleu: no hypotheses"));
  EXPECT_TRUE(throws_error_exactly(
      [] { corpus_bleu({"a"}, {}); }, ErrorKind::kInvalidArgument,
      "corpus_bleu: no reference streams (references[k][i] is the k-th reference of hypothesis i)"));
  EXPECT_TRUE(throws_error_exactly([] { corpus_bleu({"a", "b"}, {{"a", "b"}, {"a"}}); }, ErrorKind::kInvalidArgument,
                                   "corpus_bleu: reference stream 1 has 1 segments but there are 2 hypotheses"));
  EXPECT_TRUE(throws_error_exactly(
      [] { corpus_bleu({"a", "b"}, {{"a", ""}}); }, ErrorKind::kInvalidArgument,
      "corpus_bleu: segment 1 has only empty references (sacreBLEU: \"Empty or `None` reference "
      "sentence found.\")"));
}

}  // namespace
}  // namespace mixpeft::metrics
