// accuracy, F1 (binary, macro), Matthews correlation: as scikit-learn.
#include <cmath>
#include <map>
#include <set>

#include "mixpeft/error.h"
#include "mixpeft/metrics.h"

namespace mixpeft::metrics {

namespace {

void check_inputs(const char* metric, size_t predictions, size_t references) {
  MIXPEFT_CHECK(predictions > 0 || references > 0, ErrorKind::kInvalidArgument, metric,
                ": empty inputs (no predictions, no references)");
  MIXPEFT_CHECK(predictions == references, ErrorKind::kInvalidArgument, metric, ": ", predictions,
                " predictions but ", references, " references");
}

struct Counts {
  int64_t tp = 0, fp = 0, fn = 0;
};

// Per-label TP/FP/FN over the labels of either input (sorted).
std::map<int64_t, Counts> per_label(const std::vector<int64_t>& pred, const std::vector<int64_t>& ref) {
  std::map<int64_t, Counts> c;
  for (size_t i = 0; i < pred.size(); ++i) {
    if (pred[i] == ref[i]) {
      ++c[pred[i]].tp;
    } else {
      ++c[pred[i]].fp;
      ++c[ref[i]].fn;
    }
  }
  return c;
}

// 2 TP / (2 TP + FP + FN), as sklearn computes F-beta from counts; 0 when
// the label is neither predicted nor true.
double f1_of(const Counts& c) {
  double denom = static_cast<double>(2 * c.tp + c.fp + c.fn);
  return denom > 0 ? 2.0 * static_cast<double>(c.tp) / denom : 0.0;
}

std::string label_list(const std::map<int64_t, Counts>& c) {
  std::string s;
  for (const auto& [label, counts] : c) s += (s.empty() ? "" : ", ") + std::to_string(label);
  return s;
}

}  // namespace

double accuracy(const std::vector<int64_t>& predictions, const std::vector<int64_t>& references) {
  check_inputs("accuracy", predictions.size(), references.size());
  size_t hits = 0;
  for (size_t i = 0; i < predictions.size(); ++i) hits += predictions[i] == references[i];
  return static_cast<double>(hits) / static_cast<double>(predictions.size());
}

double f1_binary(const std::vector<int64_t>& predictions, const std::vector<int64_t>& references,
                 int64_t positive) {
  check_inputs("f1_binary", predictions.size(), references.size());
  auto c = per_label(predictions, references);
  MIXPEFT_CHECK(c.size() <= 2, ErrorKind::kInvalidArgument, "f1_binary: ", c.size(),
                " distinct labels (", label_list(c), "); binary F1 needs at most 2: use f1_macro");
  MIXPEFT_CHECK(c.size() < 2 || c.count(positive), ErrorKind::kInvalidArgument,
                "f1_binary: the positive label ", positive, " is not one of the labels (", label_list(c), ")");
  auto it = c.find(positive);
  return it == c.end() ? 0.0 : f1_of(it->second);
}

double f1_macro(const std::vector<int64_t>& predictions, const std::vector<int64_t>& references) {
  check_inputs("f1_macro", predictions.size(), references.size());
  auto c = per_label(predictions, references);
  double sum = 0.0;
  for (const auto& [label, counts] : c) sum += f1_of(counts);
  return sum / static_cast<double>(c.size());
}

double matthews_corrcoef(const std::vector<int64_t>& predictions, const std::vector<int64_t>& references) {
  check_inputs("matthews_corrcoef", predictions.size(), references.size());
  std::map<int64_t, double> t_sum, p_sum;  // true and predicted count per label
  double correct = 0.0;
  for (size_t i = 0; i < predictions.size(); ++i) {
    t_sum[references[i]] += 1.0;
    p_sum[predictions[i]] += 1.0;
    correct += predictions[i] == references[i] ? 1.0 : 0.0;
  }
  const double n = static_cast<double>(predictions.size());
  double tp_dot = 0.0, pp_dot = 0.0, tt_dot = 0.0;
  for (const auto& [label, t] : t_sum) {
    auto it = p_sum.find(label);
    if (it != p_sum.end()) tp_dot += t * it->second;
    tt_dot += t * t;
  }
  for (const auto& [label, p] : p_sum) pp_dot += p * p;
  double cov_ytyp = correct * n - tp_dot;
  double cov_ypyp = n * n - pp_dot;
  double cov_ytyt = n * n - tt_dot;
  if (cov_ypyp * cov_ytyt == 0.0) return 0.0;
  return cov_ytyp / std::sqrt(cov_ytyt * cov_ypyp);
}

}  // namespace mixpeft::metrics
