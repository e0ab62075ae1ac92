// Added and special tokens, found in the raw text before normalization and
// pre-tokenization: leftmost match first, the longest one at that position
// (HF's aho-corasick LeftmostLongest / the slow tokenizers' trie).
#pragma once

#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "mixpeft/tokenizer.h"

namespace mixpeft::tok::detail {

class AddedVocab {
 public:
  // Adds a token, or replaces the flags of one with the same content.
  void add(const AddedToken& token);

  const std::vector<AddedToken>& tokens() const { return tokens_; }
  const AddedToken* find(std::string_view content) const;
  const AddedToken* find_id(TokenId id) const;

  struct Segment {
    bool is_token;   // true: `id` is an added token; false: text[begin, end) is ordinary text
    TokenId id;
    size_t begin, end;
  };
  // Splits text (valid UTF-8) into ordinary text and added-token segments.
  // lstrip / rstrip matches swallow the neighbouring whitespace; single_word
  // tokens match only between non-word characters. Empty text segments are
  // not emitted.
  void split(std::string_view text, std::vector<Segment>& out) const;

 private:
  struct Node {
    std::unordered_map<unsigned char, int> next;
    int token = -1;  // index in tokens_ of the token ending here
  };
  bool accepts(const AddedToken& t, std::string_view text, size_t begin, size_t end) const;

  std::vector<AddedToken> tokens_;
  std::unordered_map<std::string, size_t> by_content_;  // index in tokens_
  std::unordered_map<TokenId, size_t> by_id_;           // index in tokens_ (last added wins)
  std::vector<Node> trie_{Node{}};
  bool first_byte_[256] = {};
};

}  // namespace mixpeft::tok::detail
