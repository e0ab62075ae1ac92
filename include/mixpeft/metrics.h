// Evaluation metrics, each matching a reference implementation:
// scikit-learn (accuracy, F1, Matthews), SciPy (Pearson, Spearman),
// sacreBLEU 2.x (corpus BLEU, default settings) and Google's rouge-score
// (ROUGE-L). Torch-free (mixpeft_base).
//
//   using namespace mixpeft::metrics;
//   accuracy({0, 1, 1}, {0, 1, 0});                       // 0.666...
//   corpus_bleu({"The dog bit the man."}, {{"The dog bit the man."}}).score;  // 100
//
// Argument order: predictions (or hypotheses) first, references second, as
// in HF `evaluate`. (scikit-learn puts y_true first; every classification
// metric here is symmetric in its two arguments, so either order gives the
// same number.)
// Errors are mixpeft::Error(kInvalidArgument) whose message starts with the
// metric's name: empty inputs, inputs of different lengths, a token count
// <= 0 for perplexity. docs/METRICS.md has the definitions, conventions and
// the known values the tests check.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace mixpeft::metrics {

// ---- classification ----------------------------------------------------------------

// Fraction of positions where prediction == reference (sklearn accuracy_score).
double accuracy(const std::vector<int64_t>& predictions, const std::vector<int64_t>& references);

// F1 of the class `positive` (sklearn f1_score, average="binary",
// pos_label=positive) = 2 TP / (2 TP + FP + FN); 0 when there is no true
// and no predicted positive (sklearn's zero_division default). More than
// two distinct labels, or two that do not include `positive`, is an error,
// as in sklearn.
double f1_binary(const std::vector<int64_t>& predictions, const std::vector<int64_t>& references,
                 int64_t positive = 1);

// Unweighted mean of the per-class F1 over every label that appears in
// either input (sklearn f1_score, average="macro").
double f1_macro(const std::vector<int64_t>& predictions, const std::vector<int64_t>& references);

// Matthews correlation, binary and multiclass (sklearn matthews_corrcoef):
// from the confusion matrix C over the labels of either input, with
// t = row sums (true counts), p = column sums, c = trace, s = total:
// (c s - t.p) / sqrt((s^2 - p.p) (s^2 - t.t)); 0 when the denominator is
// 0 (e.g. a single class everywhere), as sklearn.
double matthews_corrcoef(const std::vector<int64_t>& predictions, const std::vector<int64_t>& references);

// ---- regression ------------------------------------------------------------------------

// Pearson's r (scipy.stats.pearsonr statistic). Needs n >= 2. Returns NaN
// when either input is constant (scipy warns and returns NaN too).
double pearson(const std::vector<double>& x, const std::vector<double>& y);
// Spearman's rho (scipy.stats.spearmanr): Pearson's r of the ranks, ties
// given their average rank. NaN when either input is constant.
double spearman(const std::vector<double>& x, const std::vector<double>& y);
// 1-based ranks with ties averaged (scipy.stats.rankdata, method="average").
std::vector<double> average_ranks(const std::vector<double>& x);

// ---- language modelling --------------------------------------------------------------

// exp(nll_sum / token_count): nll_sum is the summed negative log-likelihood
// (natural log) of token_count predicted tokens. Errors for token_count <= 0
// or an nll_sum that is negative or NaN.
double perplexity(double nll_sum, double token_count);

// ---- generation --------------------------------------------------------------------------

struct BleuScore {
  double score = 0.0;                   // 0..100
  std::array<int64_t, 4> counts{};      // matched n-grams, n = 1..4
  std::array<int64_t, 4> totals{};      // hypothesis n-grams
  std::array<double, 4> precisions{};   // percent, after smoothing
  double bp = 0.0;                      // brevity penalty
  double ratio = 0.0;                   // hyp_len / ref_len
  int64_t hyp_len = 0, ref_len = 0;
  // sacreBLEU's line: "BLEU = 48.53 82.4/50.0/45.5/37.5 (BP = 0.943 ratio = 0.944 hyp_len = 17 ref_len = 18)"
  std::string format() const;
};

// Corpus BLEU as sacreBLEU 2.x with its defaults (BLEU(): tokenize="13a",
// smooth_method="exp", lowercase=false, max_ngram_order=4,
// effective_order=false). `references` holds reference streams, as
// sacreBLEU's corpus_score: references[k][i] is the k-th reference of
// hypothesis i; every stream has hypotheses.size() entries. An empty
// reference string means "no k-th reference for this segment"; a segment
// with no reference at all is an error (as sacreBLEU).
BleuScore corpus_bleu(const std::vector<std::string>& hypotheses,
                      const std::vector<std::vector<std::string>>& references);

// sacreBLEU's 13a tokenizer (mteval-v13a), tokens joined by single spaces.
std::string tokenize_13a(std::string_view line);

struct RougeScore {
  double precision = 0.0, recall = 0.0, fmeasure = 0.0;
};

// rouge-score's default tokenizer (no stemming): lowercase, every run of
// characters other than [a-z0-9] becomes a space, split.
std::vector<std::string> rouge_tokenize(std::string_view text);
// ROUGE-L of one pair (rouge_scorer.RougeScorer(["rougeL"]).score(target,
// prediction)): LCS length over prediction length (precision) and target
// length (recall), F = 2PR/(P+R). All 0 when either side has no tokens.
RougeScore rouge_l(std::string_view prediction, std::string_view reference);
// Corpus ROUGE-L: the mean of the per-pair precision, recall and F (as HF
// evaluate's rouge with use_aggregator=False, averaged).
RougeScore rouge_l(const std::vector<std::string>& predictions, const std::vector<std::string>& references);

}  // namespace mixpeft::metrics
