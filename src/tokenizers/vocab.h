// Token <-> id tables shared by the BPE and WordPiece models.
#pragma once

#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "mixpeft/error.h"
#include "mixpeft/tokenizer.h"

namespace mixpeft::tok::detail {

class Vocab {
 public:
  // Adds token with id. A token seen twice keeps its last id (Python dict
  // semantics of the slow tokenizers); both ids map back to it.
  void add(const std::string& token, TokenId id) {
    ids_[token] = id;
    if (static_cast<size_t>(id) >= tokens_.size()) {
      tokens_.resize(id + 1);
      present_.resize(id + 1, 0);
    }
    if (!present_[id]) ++num_ids_;
    tokens_[id] = token;
    present_[id] = 1;
  }

  TokenId find(const std::string& token) const {
    auto it = ids_.find(token);
    return it == ids_.end() ? -1 : it->second;
  }
  bool has_id(TokenId id) const {
    return id >= 0 && static_cast<size_t>(id) < present_.size() && present_[id];
  }
  const std::string& token(TokenId id) const { return tokens_[id]; }
  // Number of ids that have a token.
  size_t num_ids() const { return num_ids_; }
  // One past the largest id.
  size_t id_end() const { return tokens_.size(); }
  const std::unordered_map<std::string, TokenId>& map() const { return ids_; }

 private:
  std::unordered_map<std::string, TokenId> ids_;
  std::vector<std::string> tokens_;
  std::vector<char> present_;
  size_t num_ids_ = 0;
};

}  // namespace mixpeft::tok::detail
