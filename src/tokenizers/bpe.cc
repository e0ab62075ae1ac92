#include "tokenizers/bpe.h"

#include <mutex>
#include <queue>

#include "mixpeft/error.h"
#include "tokenizers/byte_level.h"

namespace mixpeft::tok::detail {
namespace {

constexpr size_t kMaxCachedWordBytes = 256;

struct Symbol {
  TokenId id;
  int prev;
  int next;
  bool alive;
};

struct QueueEntry {
  uint32_t rank;
  int pos;
  TokenId new_id;
  // std::priority_queue is a max-heap: "greater" entries come out last.
  bool operator<(const QueueEntry& o) const {
    return rank != o.rank ? rank > o.rank : pos > o.pos;
  }
};

}  // namespace

BpeModel::BpeModel(Vocab vocab, const std::vector<std::pair<std::string, std::string>>& merges,
                   BpeOptions options, const std::function<std::string(size_t)>& where,
                   ErrorKind kind)
    : vocab_(std::move(vocab)), options_(std::move(options)) {
  if (!options_.unk_token.empty()) {
    unk_id_ = vocab_.find(options_.unk_token);
    MIXPEFT_CHECK(unk_id_ >= 0, kind, where(merges.size()), ": unk_token '", options_.unk_token,
                  "' is not in the vocabulary");
  }
  const auto& symbols = byte_to_unicode();
  for (int b = 0; b < 256; ++b) byte_ids_[b] = vocab_.find(symbols[b]);

  merges_.reserve(merges.size() * 2);
  merges_by_rank_.reserve(merges.size());
  for (size_t i = 0; i < merges.size(); ++i) {
    const auto& [a, b] = merges[i];
    TokenId ia = vocab_.find(a), ib = vocab_.find(b);
    MIXPEFT_CHECK(ia >= 0, kind, where(i), ": merge token '", a, "' is not in the vocabulary");
    MIXPEFT_CHECK(ib >= 0, kind, where(i), ": merge token '", b, "' is not in the vocabulary");
    TokenId merged = vocab_.find(a + b);
    MIXPEFT_CHECK(merged >= 0, kind, where(i), ": merged token '", a + b,
                  "' is not in the vocabulary");
    merges_[key(ia, ib)] = Merge{static_cast<uint32_t>(i), merged};  // a repeated pair keeps its last rank
    merges_by_rank_.emplace_back(ia, ib);
  }
}

void BpeModel::tokenize(std::string_view word, std::vector<TokenId>& out) const {
  if (word.empty()) return;
  const bool cacheable = options_.cache_capacity > 0 && word.size() <= kMaxCachedWordBytes;
  std::string key_text;
  if (cacheable) {
    key_text.assign(word);
    std::shared_lock lock(cache_mutex_);
    auto it = cache_.find(key_text);
    if (it != cache_.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  size_t start = out.size();
  bool whole = false;
  if (options_.ignore_merges) {
    std::string mapped;
    append_byte_level(word, mapped);
    TokenId id = vocab_.find(mapped);
    if (id >= 0) {
      out.push_back(id);
      whole = true;
    }
  }
  if (!whole) merge_word(word, out);
  if (cacheable) {
    std::unique_lock lock(cache_mutex_);
    if (cache_.size() < options_.cache_capacity) {
      cache_.emplace(std::move(key_text), std::vector<TokenId>(out.begin() + start, out.end()));
    }
  }
}

void BpeModel::merge_word(std::string_view word, std::vector<TokenId>& out) const {
  thread_local std::vector<Symbol> symbols;
  symbols.clear();
  bool last_was_unk = false;
  for (char c : word) {
    TokenId id = byte_ids_[static_cast<unsigned char>(c)];
    if (id < 0) {
      if (unk_id_ < 0) continue;  // no unk token: the byte is dropped (HF)
      if (options_.fuse_unk && last_was_unk) continue;
      id = unk_id_;
      last_was_unk = true;
    } else {
      last_was_unk = false;
    }
    int n = static_cast<int>(symbols.size());
    symbols.push_back(Symbol{id, n - 1, -1, true});
    if (n > 0) symbols[n - 1].next = n;
  }
  if (symbols.size() > 1) {
    std::priority_queue<QueueEntry> queue;
    auto push_pair = [&](int pos) {
      int next = symbols[pos].next;
      if (next < 0) return;
      auto it = merges_.find(key(symbols[pos].id, symbols[next].id));
      if (it != merges_.end()) queue.push(QueueEntry{it->second.rank, pos, it->second.new_id});
    };
    for (int i = 0; i + 1 < static_cast<int>(symbols.size()); ++i) push_pair(i);
    while (!queue.empty()) {
      QueueEntry top = queue.top();
      queue.pop();
      Symbol& s = symbols[top.pos];
      if (!s.alive || s.next < 0) continue;
      Symbol& right = symbols[s.next];
      auto it = merges_.find(key(s.id, right.id));
      if (it == merges_.end() || it->second.new_id != top.new_id) continue;  // stale entry
      s.id = top.new_id;
      right.alive = false;
      s.next = right.next;
      if (s.next >= 0) symbols[s.next].prev = top.pos;
      if (s.prev >= 0) push_pair(s.prev);
      push_pair(top.pos);
    }
  }
  for (const Symbol& s : symbols) {
    if (s.alive) out.push_back(s.id);
  }
}

}  // namespace mixpeft::tok::detail
