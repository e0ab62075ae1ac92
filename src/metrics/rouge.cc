// ROUGE-L as Google's rouge-score (rouge_scorer.py, tokenize.py), no stemming.
#include <unordered_map>

#include "mixpeft/error.h"
#include "mixpeft/metrics.h"

namespace mixpeft::metrics {

std::vector<std::string> rouge_tokenize(std::string_view text) {
  // text.lower(), then re.sub(r"[^a-z0-9]+", " "), split, keep [a-z0-9]+
  // tokens: the tokens are the runs of ASCII letters and digits after
  // lowercasing. Only three kinds of character lowercase into [a-z]:
  // A-Z, U+212A KELVIN SIGN (-> "k") and U+0130 (-> "i" + U+0307, which
  // then ends the token). Every other non-ASCII character separates tokens.
  std::vector<std::string> out;
  std::string cur;
  auto flush = [&] {
    if (!cur.empty()) out.push_back(std::move(cur));
    cur.clear();
  };
  for (size_t i = 0; i < text.size();) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
      cur += static_cast<char>(c);
      ++i;
    } else if (c >= 'A' && c <= 'Z') {
      cur += static_cast<char>(c - 'A' + 'a');
      ++i;
    } else if (text.compare(i, 3, "\xE2\x84\xAA") == 0) {  // U+212A
      cur += 'k';
      i += 3;
    } else if (text.compare(i, 2, "\xC4\xB0") == 0) {  // U+0130
      cur += 'i';
      flush();
      i += 2;
    } else {
      flush();
      ++i;
    }
  }
  flush();
  return out;
}

namespace {

size_t lcs_length(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  std::unordered_map<std::string, int> ids;
  auto encode = [&](const std::vector<std::string>& v) {
    std::vector<int> out;
    out.reserve(v.size());
    for (const auto& s : v) out.push_back(ids.emplace(s, static_cast<int>(ids.size())).first->second);
    return out;
  };
  std::vector<int> x = encode(a), y = encode(b);
  std::vector<size_t> prev(y.size() + 1, 0), row(y.size() + 1, 0);
  for (size_t i = 1; i <= x.size(); ++i) {
    for (size_t j = 1; j <= y.size(); ++j) {
      row[j] = x[i - 1] == y[j - 1] ? prev[j - 1] + 1 : std::max(prev[j], row[j - 1]);
    }
    std::swap(prev, row);
  }
  return prev[y.size()];
}

}  // namespace

RougeScore rouge_l(std::string_view prediction, std::string_view reference) {
  std::vector<std::string> target = rouge_tokenize(reference);
  std::vector<std::string> pred = rouge_tokenize(prediction);
  RougeScore s;
  if (target.empty() || pred.empty()) return s;
  double lcs = static_cast<double>(lcs_length(target, pred));
  s.precision = lcs / static_cast<double>(pred.size());
  s.recall = lcs / static_cast<double>(target.size());
  s.fmeasure = s.precision + s.recall > 0 ? 2 * s.precision * s.recall / (s.precision + s.recall) : 0.0;
  return s;
}

RougeScore rouge_l(const std::vector<std::string>& predictions, const std::vector<std::string>& references) {
  MIXPEFT_CHECK(!predictions.empty() || !references.empty(), ErrorKind::kInvalidArgument,
                "rouge_l: empty inputs (no predictions, no references)");
  MIXPEFT_CHECK(predictions.size() == references.size(), ErrorKind::kInvalidArgument, "rouge_l: ",
                predictions.size(), " predictions but ", references.size(), " references");
  RougeScore mean;
  for (size_t i = 0; i < predictions.size(); ++i) {
    RougeScore s = rouge_l(predictions[i], references[i]);
    mean.precision += s.precision;
    mean.recall += s.recall;
    mean.fmeasure += s.fmeasure;
  }
  double n = static_cast<double>(predictions.size());
  mean.precision /= n;
  mean.recall /= n;
  mean.fmeasure /= n;
  return mean;
}

}  // namespace mixpeft::metrics
