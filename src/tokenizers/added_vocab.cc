#include "tokenizers/added_vocab.h"

#include "tokenizers/unicode.h"

namespace mixpeft::tok::detail {
namespace {

size_t prev_char_start(std::string_view text, size_t pos) {
  do {
    --pos;
  } while (pos > 0 && (static_cast<unsigned char>(text[pos]) & 0xC0) == 0x80);
  return pos;
}

char32_t char_before(std::string_view text, size_t pos) {
  size_t start = prev_char_start(text, pos);
  return next_code_point(text, start);
}

}  // namespace

void AddedVocab::add(const AddedToken& token) {
  if (token.content.empty()) return;
  auto existing = by_content_.find(token.content);
  if (existing != by_content_.end()) {
    by_id_.erase(tokens_[existing->second].id);
    tokens_[existing->second] = token;
    by_id_[token.id] = existing->second;
    return;
  }
  size_t index = tokens_.size();
  tokens_.push_back(token);
  by_content_.emplace(token.content, index);
  by_id_[token.id] = index;
  int node = 0;
  for (char c : token.content) {
    auto b = static_cast<unsigned char>(c);
    auto it = trie_[node].next.find(b);
    if (it == trie_[node].next.end()) {
      trie_.emplace_back();
      int child = static_cast<int>(trie_.size()) - 1;
      trie_[node].next.emplace(b, child);
      node = child;
    } else {
      node = it->second;
    }
  }
  trie_[node].token = static_cast<int>(index);
  first_byte_[static_cast<unsigned char>(token.content[0])] = true;
}

const AddedToken* AddedVocab::find(std::string_view content) const {
  auto it = by_content_.find(std::string(content));
  return it == by_content_.end() ? nullptr : &tokens_[it->second];
}

const AddedToken* AddedVocab::find_id(TokenId id) const {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &tokens_[it->second];
}

bool AddedVocab::accepts(const AddedToken& t, std::string_view text, size_t begin,
                         size_t end) const {
  if (!t.single_word) return true;
  if (begin > 0 && is_word_char(char_before(text, begin))) return false;
  if (end < text.size()) {
    size_t p = end;
    if (is_word_char(next_code_point(text, p))) return false;
  }
  return true;
}

void AddedVocab::split(std::string_view text, std::vector<Segment>& out) const {
  auto emit_text = [&](size_t b, size_t e) {
    if (e > b) out.push_back(Segment{false, -1, b, e});
  };
  size_t seg_start = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    if (!first_byte_[static_cast<unsigned char>(text[pos])]) {
      ++pos;
      continue;
    }
    // Longest token starting at pos.
    int node = 0, best = -1;
    size_t best_end = pos;
    for (size_t i = pos; i < text.size(); ++i) {
      auto it = trie_[node].next.find(static_cast<unsigned char>(text[i]));
      if (it == trie_[node].next.end()) break;
      node = it->second;
      if (trie_[node].token >= 0) {
        best = trie_[node].token;
        best_end = i + 1;
      }
    }
    if (best < 0 || !accepts(tokens_[best], text, pos, best_end)) {
      ++pos;
      continue;
    }
    const AddedToken& t = tokens_[best];
    size_t begin = pos, end = best_end;
    if (t.lstrip) {
      while (begin > seg_start) {
        size_t p = prev_char_start(text, begin);
        size_t q = p;
        if (!is_python_space(next_code_point(text, q))) break;
        begin = p;
      }
    }
    if (t.rstrip) {
      while (end < text.size()) {
        size_t q = end;
        if (!is_python_space(next_code_point(text, q))) break;
        end = q;
      }
    }
    emit_text(seg_start, begin);
    out.push_back(Segment{true, t.id, begin, end});
    seg_start = pos = end;
  }
  emit_text(seg_start, text.size());
}

}  // namespace mixpeft::tok::detail
