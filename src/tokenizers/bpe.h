// The byte-level BPE model: a word's UTF-8 bytes become one symbol each
// (through GPT-2's byte alphabet), then merges apply lowest rank first, the
// leftmost occurrence first on ties (HF tokenizers' Word::merge_all, which
// gives the same result as the slow tokenizers' merge loop).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "tokenizers/vocab.h"

namespace mixpeft::tok::detail {

struct BpeOptions {
  std::string unk_token;       // "" (default): bytes without a symbol are dropped
  bool fuse_unk = false;       // consecutive unknowns become one unk
  bool ignore_merges = false;  // Llama-3: a word that is itself in the vocab is one token
  size_t cache_capacity = 10000;  // words remembered (HF's default); 0 disables the cache
};

class BpeModel {
 public:
  // `where(i)` names merge i for error messages ("merges.txt:17",
  // "tokenizer.json: model.merges[16]"). Throws kCorrupt (with `kind`
  // overridable) when a merge's parts or result are not in the vocab.
  BpeModel(Vocab vocab, const std::vector<std::pair<std::string, std::string>>& merges,
           BpeOptions options, const std::function<std::string(size_t)>& where,
           ErrorKind kind = ErrorKind::kCorrupt);

  // Appends the ids of one pre-tokenized word, given as its raw UTF-8 bytes
  // (the byte-level mapping is applied here).
  void tokenize(std::string_view word, std::vector<TokenId>& out) const;

  const Vocab& vocab() const { return vocab_; }
  const BpeOptions& options() const { return options_; }
  // Merges in rank order, as (left id, right id).
  const std::vector<std::pair<TokenId, TokenId>>& merges() const { return merges_by_rank_; }

 private:
  struct Merge {
    uint32_t rank;
    TokenId new_id;
  };
  static uint64_t key(TokenId a, TokenId b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  void merge_word(std::string_view word, std::vector<TokenId>& out) const;

  Vocab vocab_;
  BpeOptions options_;
  TokenId unk_id_ = -1;
  std::array<TokenId, 256> byte_ids_;  // id of each byte's symbol, -1 when absent
  std::unordered_map<uint64_t, Merge> merges_;
  std::vector<std::pair<TokenId, TokenId>> merges_by_rank_;

  mutable std::shared_mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<TokenId>> cache_;
};

}  // namespace mixpeft::tok::detail
