// Corpus BLEU exactly as sacreBLEU 2.x with its defaults: 13a tokenizer,
// n = 1..4, brevity penalty from the closest reference length, 'exp'
// smoothing (sacrebleu/metrics/bleu.py, tokenizers/tokenizer_13a.py,
// tokenizers/tokenizer_re.py).
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <unordered_map>

#include "mixpeft/error.h"
#include "mixpeft/metrics.h"

namespace mixpeft::metrics {

namespace {

constexpr int kMaxOrder = 4;

// Length of the UTF-8 sequence at s[i] when it encodes a character that
// Python's str.isspace() accepts (what str.split() and str.rstrip() cut
// on), else 0.
size_t space_at(std::string_view s, size_t i) {
  unsigned char c = static_cast<unsigned char>(s[i]);
  if (c == ' ' || (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x1f)) return 1;
  auto byte = [&](size_t k) -> unsigned { return i + k < s.size() ? static_cast<unsigned char>(s[i + k]) : 0u; };
  if (c == 0xc2 && (byte(1) == 0x85 || byte(1) == 0xa0)) return 2;  // U+0085, U+00A0
  if (c == 0xe1 && byte(1) == 0x9a && byte(2) == 0x80) return 3;      // U+1680
  if (c == 0xe2 && byte(1) == 0x80) {
    unsigned b = byte(2);
    if ((b >= 0x80 && b <= 0x8a) || b == 0xa8 || b == 0xa9 || b == 0xaf) return 3;  // U+2000-200A, 2028, 2029, 202F
  }
  if (c == 0xe2 && byte(1) == 0x81 && byte(2) == 0x9f) return 3;  // U+205F
  if (c == 0xe3 && byte(1) == 0x80 && byte(2) == 0x80) return 3;  // U+3000
  return 0;
}

// Python's str.split() with no argument.
std::vector<std::string_view> split_ws(std::string_view s) {
  std::vector<std::string_view> out;
  size_t i = 0, start = std::string_view::npos;
  while (i < s.size()) {
    size_t w = space_at(s, i);
    if (w > 0) {
      if (start != std::string_view::npos) out.push_back(s.substr(start, i - start));
      start = std::string_view::npos;
      i += w;
    } else {
      if (start == std::string_view::npos) start = i;
      ++i;
    }
  }
  if (start != std::string_view::npos) out.push_back(s.substr(start));
  return out;
}

// Python's str.rstrip() with no argument.
std::string_view rstrip(std::string_view s) {
  size_t end = 0;  // end of the last non-space character
  for (size_t i = 0; i < s.size();) {
    size_t w = space_at(s, i);
    if (w > 0) {
      i += w;
    } else {
      ++i;
      end = i;
    }
  }
  return s.substr(0, end);
}

void replace_all(std::string& s, std::string_view from, std::string_view to) {
  std::string out;
  size_t pos = 0;
  for (;;) {
    size_t hit = s.find(from, pos);
    if (hit == std::string::npos) break;
    out.append(s, pos, hit - pos);
    out.append(to);
    pos = hit + from.size();
  }
  out.append(s, pos, std::string::npos);
  s = std::move(out);
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// r'([\{-\~\[-\` -\&\(-\+\:-\@\/])' -> r' \1 '
bool punct_13a(char ch) {
  unsigned char c = static_cast<unsigned char>(ch);
  return (c >= 0x7b && c <= 0x7e) || (c >= 0x5b && c <= 0x60) || (c >= 0x20 && c <= 0x26) ||
         (c >= 0x28 && c <= 0x2b) || (c >= 0x3a && c <= 0x40) || c == '/';
}

// Applies a two-character pattern left to right without overlaps, as re.sub:
// where match(a, b) holds, emit(a, b) replaces both and scanning resumes
// after b. Working on bytes gives the same output as on code points here:
// the patterns' fixed characters are ASCII, and a UTF-8 byte never is.
template <typename Match, typename Emit>
std::string sub2(const std::string& s, Match match, Emit emit) {
  std::string out;
  out.reserve(s.size() + s.size() / 4);
  size_t i = 0;
  while (i < s.size()) {
    if (i + 1 < s.size() && match(s[i], s[i + 1])) {
      emit(out, s[i], s[i + 1]);
      i += 2;
    } else {
      out += s[i++];
    }
  }
  return out;
}

using NgramCounts = std::unordered_map<std::string, int64_t>;

// All n-grams, n = 1..4, keyed by their tokens joined with ' ' (tokens hold
// no whitespace, so the key is unambiguous).
NgramCounts ngrams(const std::vector<std::string_view>& tokens) {
  NgramCounts counts;
  for (size_t n = 1; n <= kMaxOrder; ++n) {
    for (size_t i = 0; i + n <= tokens.size(); ++i) {
      std::string key(tokens[i]);
      for (size_t k = 1; k < n; ++k) {
        key += ' ';
        key += tokens[i + k];
      }
      ++counts[key];
    }
  }
  return counts;
}

int ngram_order(const std::string& key) {
  int n = 1;
  for (char c : key) n += c == ' ';
  return n;
}

// sacreBLEU's utils.my_log.
double my_log(double x) { return x == 0.0 ? -9999999999.0 : std::log(x); }

}  // namespace

std::string tokenize_13a(std::string_view input) {
  std::string line(input);
  replace_all(line, "<skipped>", "");
  replace_all(line, "-\n", "");
  replace_all(line, "\n", " ");
  replace_all(line, "&quot;", "\"");
  replace_all(line, "&amp;", "&");
  replace_all(line, "&lt;", "<");
  replace_all(line, "&gt;", ">");
  line = " " + line + " ";
  std::string s;
  s.reserve(line.size() * 2);
  for (char c : line) {
    if (punct_13a(c)) {
      s += ' ';
      s += c;
      s += ' ';
    } else {
      s += c;
    }
  }
  auto period_comma = [](char c) { return c == '.' || c == ','; };
  // tokenize period and comma unless preceded by a digit
  s = sub2(s, [&](char a, char b) { return !is_digit(a) && period_comma(b); },
           [](std::string& o, char a, char b) { o += a, o += ' ', o += b, o += ' '; });
  // tokenize period and comma unless followed by a digit
  s = sub2(s, [&](char a, char b) { return period_comma(a) && !is_digit(b); },
           [](std::string& o, char a, char b) { o += ' ', o += a, o += ' ', o += b; });
  // tokenize dash when preceded by a digit
  s = sub2(s, [](char a, char b) { return is_digit(a) && b == '-'; },
           [](std::string& o, char a, char b) { o += a, o += ' ', o += b, o += ' '; });
  std::string out;
  for (std::string_view tok : split_ws(s)) {
    if (!out.empty()) out += ' ';
    out += tok;
  }
  return out;
}

std::string BleuScore::format() const {
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "BLEU = %.2f %.1f/%.1f/%.1f/%.1f (BP = %.3f ratio = %.3f hyp_len = %lld ref_len = %lld)",
                score, precisions[0], precisions[1], precisions[2], precisions[3], bp, ratio,
                static_cast<long long>(hyp_len), static_cast<long long>(ref_len));
  return buf;
}

BleuScore corpus_bleu(const std::vector<std::string>& hypotheses,
                      const std::vector<std::vector<std::string>>& references) {
  MIXPEFT_CHECK(!hypotheses.empty(), ErrorKind::kInvalidArgument, "corpus_bleu: no hypotheses");
  MIXPEFT_CHECK(!references.empty(), ErrorKind::kInvalidArgument,
                "corpus_bleu: no reference streams (references[k][i] is the k-th reference of hypothesis i)");
  for (size_t k = 0; k < references.size(); ++k) {
    MIXPEFT_CHECK(references[k].size() == hypotheses.size(), ErrorKind::kInvalidArgument,
                  "corpus_bleu: reference stream ", k, " has ", references[k].size(), " segments but there are ",
                  hypotheses.size(), " hypotheses");
  }
  std::array<int64_t, kMaxOrder> correct{}, total{};
  int64_t sys_len = 0, ref_len = 0;
  for (size_t i = 0; i < hypotheses.size(); ++i) {
    NgramCounts ref_ngrams;
    std::vector<int64_t> ref_lens;
    for (const auto& stream : references) {
      if (stream[i].empty()) continue;  // fewer references for this segment
      std::string tok = tokenize_13a(rstrip(stream[i]));
      std::vector<std::string_view> words = split_ws(tok);
      ref_lens.push_back(static_cast<int64_t>(words.size()));
      for (const auto& [gram, count] : ngrams(words)) {
        int64_t& best = ref_ngrams[gram];
        best = std::max(best, count);
      }
    }
    MIXPEFT_CHECK(!ref_lens.empty(), ErrorKind::kInvalidArgument, "corpus_bleu: segment ", i,
                  " has only empty references (sacreBLEU: \"Empty or `None` reference sentence found.\")");
    std::string hyp_tok = tokenize_13a(rstrip(hypotheses[i]));
    std::vector<std::string_view> words = split_ws(hyp_tok);
    const int64_t hyp_len = static_cast<int64_t>(words.size());
    // closest reference length; the shorter one on ties
    int64_t closest_diff = -1, closest_len = -1;
    for (int64_t len : ref_lens) {
      int64_t diff = std::llabs(hyp_len - len);
      if (closest_diff == -1 || diff < closest_diff) {
        closest_diff = diff;
        closest_len = len;
      } else if (diff == closest_diff && len < closest_len) {
        closest_len = len;
      }
    }
    sys_len += hyp_len;
    ref_len += closest_len;
    for (const auto& [gram, count] : ngrams(words)) {
      int n = ngram_order(gram) - 1;
      total[n] += count;
      auto it = ref_ngrams.find(gram);
      if (it != ref_ngrams.end()) correct[n] += std::min(count, it->second);
    }
  }

  BleuScore s;
  s.counts = correct;
  s.totals = total;
  s.hyp_len = sys_len;
  s.ref_len = ref_len;
  s.ratio = ref_len ? static_cast<double>(sys_len) / static_cast<double>(ref_len) : 0.0;
  if (sys_len < ref_len) {
    s.bp = sys_len > 0 ? std::exp(1.0 - static_cast<double>(ref_len) / static_cast<double>(sys_len)) : 0.0;
  } else {
    s.bp = 1.0;
  }
  bool any = false;
  for (int64_t c : correct) any = any || c != 0;
  if (!any) return s;  // score 0, precisions 0 (sacreBLEU #141)
  double smooth_mteval = 1.0;
  for (int n = 0; n < kMaxOrder; ++n) {
    if (total[n] == 0) break;
    if (correct[n] == 0) {
      smooth_mteval *= 2;
      s.precisions[n] = 100.0 / (smooth_mteval * static_cast<double>(total[n]));
    } else {
      s.precisions[n] = 100.0 * static_cast<double>(correct[n]) / static_cast<double>(total[n]);
    }
  }
  double log_sum = 0.0;
  for (int n = 0; n < kMaxOrder; ++n) log_sum += my_log(s.precisions[n]);
  s.score = s.bp * std::exp(log_sum / kMaxOrder);
  return s;
}

}  // namespace mixpeft::metrics
