// BERT: HF's BasicTokenizer (as a normalizer plus a pre-tokenizer) and the
// greedy longest-match-first WordPiece model.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizers/vocab.h"

namespace mixpeft::tok::detail {

// HF BertNormalizer / the normalizing half of the slow BasicTokenizer. Steps,
// in the slow tokenizer's order: per-character lower-casing; clean_text (drop
// U+0000, U+FFFD and control characters, whitespace -> ' '); spaces around CJK
// characters; NFC (slow tokenizer only); accent stripping (NFD, drop Mn).
struct BertNormalizerOptions {
  bool clean_text = true;
  bool handle_chinese_chars = true;
  std::optional<bool> strip_accents;  // unset (default): follows lowercase
  bool lowercase = true;
  bool nfc = false;  // transformers' slow BasicTokenizer NFC-normalizes; tokenizers' Rust one does not
};

std::string bert_normalize(std::string_view text, const BertNormalizerOptions& options);

// HF BertPreTokenizer: split on whitespace (Python's str.split set), then
// every punctuation character is a word of its own. Appends the words.
void bert_pre_tokenize(std::string_view text, std::vector<std::string>& words);

class WordPieceModel {
 public:
  // Throws `kind` naming `where` when unk_token is not in the vocabulary.
  WordPieceModel(Vocab vocab, std::string unk_token, std::string prefix,
                 size_t max_input_chars_per_word, const std::string& where, ErrorKind kind);

  // Appends the ids of one word: longest vocab prefix first, then "##"
  // continuations; a word that cannot be covered, or is longer than
  // max_input_chars_per_word code points, is one [UNK].
  void tokenize(std::string_view word, std::vector<TokenId>& out) const;

  const Vocab& vocab() const { return vocab_; }
  const std::string& unk_token() const { return unk_token_; }
  const std::string& prefix() const { return prefix_; }
  size_t max_input_chars_per_word() const { return max_chars_; }

 private:
  Vocab vocab_;
  std::string unk_token_;
  std::string prefix_;
  size_t max_chars_;
  TokenId unk_id_;
};

}  // namespace mixpeft::tok::detail
