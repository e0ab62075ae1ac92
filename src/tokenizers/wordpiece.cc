#include "tokenizers/wordpiece.h"

#include "mixpeft/error.h"
#include "tokenizers/unicode.h"

namespace mixpeft::tok::detail {

std::string bert_normalize(std::string_view text, const BertNormalizerOptions& options) {
  // The slow tokenizer lower-cases before everything else, one character at
  // a time (PreTrainedTokenizer.tokenize's do_lower_case pass); the Rust
  // normalizer lower-cases per character too, so a final capital sigma
  // becomes U+03C3 in both.
  std::string lowered;
  if (options.lowercase) {
    lowered = lowercase_chars(text);
    text = lowered;
  }
  std::string out;
  out.reserve(text.size() + 8);
  size_t pos = 0;
  while (pos < text.size()) {
    size_t start = pos;
    char32_t cp = next_code_point(text, pos);
    if (options.clean_text) {
      if (cp == 0 || cp == 0xFFFD || is_bert_control(cp)) continue;
      if (is_bert_whitespace(cp)) {
        out += ' ';
        continue;
      }
    }
    if (options.handle_chinese_chars && is_cjk(cp)) {
      out += ' ';
      out.append(text, start, pos - start);
      out += ' ';
      continue;
    }
    out.append(text, start, pos - start);
  }
  if (options.nfc) out = normalize(out, NormForm::kNFC);
  if (options.strip_accents.value_or(options.lowercase)) out = strip_accents(out);
  return out;
}

void bert_pre_tokenize(std::string_view text, std::vector<std::string>& words) {
  std::string current;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t start = pos;
    char32_t cp = next_code_point(text, pos);
    if (is_python_space(cp)) {
      if (!current.empty()) words.push_back(std::move(current));
      current.clear();
    } else if (is_bert_punctuation(cp)) {
      if (!current.empty()) words.push_back(std::move(current));
      current.clear();
      words.emplace_back(text.substr(start, pos - start));
    } else {
      current.append(text, start, pos - start);
    }
  }
  if (!current.empty()) words.push_back(std::move(current));
}

WordPieceModel::WordPieceModel(Vocab vocab, std::string unk_token, std::string prefix,
                               size_t max_input_chars_per_word, const std::string& where,
                               ErrorKind kind)
    : vocab_(std::move(vocab)),
      unk_token_(std::move(unk_token)),
      prefix_(std::move(prefix)),
      max_chars_(max_input_chars_per_word) {
  unk_id_ = vocab_.find(unk_token_);
  MIXPEFT_CHECK(unk_id_ >= 0, kind, where, ": unk_token '", unk_token_,
                "' is not in the vocabulary");
}

void WordPieceModel::tokenize(std::string_view word, std::vector<TokenId>& out) const {
  if (word.empty()) return;
  // Code point boundaries: bounds[i] is the byte offset of character i.
  thread_local std::vector<size_t> bounds;
  bounds.clear();
  size_t pos = 0;
  while (pos < word.size()) {
    bounds.push_back(pos);
    pos += utf8_length(static_cast<unsigned char>(word[pos]));
  }
  bounds.push_back(word.size());
  const size_t num_chars = bounds.size() - 1;
  if (num_chars > max_chars_) {
    out.push_back(unk_id_);
    return;
  }
  size_t first = out.size();
  std::string piece;
  size_t start = 0;
  while (start < num_chars) {
    TokenId found = -1;
    size_t end = num_chars;
    for (; end > start; --end) {
      piece.clear();
      if (start > 0) piece = prefix_;
      piece.append(word.substr(bounds[start], bounds[end] - bounds[start]));
      found = vocab_.find(piece);
      if (found >= 0) break;
    }
    if (found < 0) {
      out.resize(first);
      out.push_back(unk_id_);
      return;
    }
    out.push_back(found);
    start = end;
  }
}

}  // namespace mixpeft::tok::detail
