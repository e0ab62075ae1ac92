// BpeTrainer: word counting, then HF BpeTrainer's merge loop (see
// include/mixpeft/bpe_trainer.h for the algorithm and the tie-break).
#include "mixpeft/bpe_trainer.h"

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <utility>

#include "mixpeft/error.h"
#include "tokenizers/byte_level.h"
#include "tokenizers/pipeline.h"
#include "tokenizers/regex.h"
#include "tokenizers/tokenizer_impl.h"
#include "tokenizers/unicode.h"

namespace mixpeft::tok {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

constexpr const char* kWhere = "BpeTrainer";

// A pair of token ids as one integer whose order is (left, right) order.
uint64_t pair_key(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}
int32_t left_of(uint64_t key) { return static_cast<int32_t>(key >> 32); }
int32_t right_of(uint64_t key) { return static_cast<int32_t>(key & 0xFFFFFFFFu); }

// A candidate merge in the heap. `count` may be stale (higher than the
// pair's current count); `pos` lists the words (ascending) that had the pair
// when the entry was made, the only ones this entry merges (HF's Merge.pos).
struct Candidate {
  int64_t count;
  uint64_t pair;
  uint64_t seq;  // push order: orders entries of the same pair and count
  std::vector<uint32_t> pos;
};

// "a comes out of the heap after b": a lower count, then a larger pair.
struct ComesAfter {
  bool operator()(const Candidate& a, const Candidate& b) const {
    if (a.count != b.count) return a.count < b.count;
    if (a.pair != b.pair) return a.pair > b.pair;
    return a.seq > b.seq;
  }
};

// Word positions per pair, in ascending order without repeats.
using PairPositions = std::unordered_map<uint64_t, std::vector<uint32_t>>;

void add_position(PairPositions& where, uint64_t pair, uint32_t word) {
  auto& v = where[pair];
  if (v.empty() || v.back() != word) v.push_back(word);
}

// Replaces the non-overlapping occurrences of (a, b) in `word`, left to
// right, by `merged`, calling change(pair, +1 / -1) for every neighbouring
// pair that appears or disappears, exactly as HF's Word::merge reports them
// (the merged pair itself is not reported).
template <typename Change>
void merge_word(std::vector<int32_t>& word, int32_t a, int32_t b, int32_t merged,
                Change&& change) {
  const size_t n = word.size();
  size_t out = 0;
  for (size_t in = 0; in < n;) {
    if (in + 1 < n && word[in] == a && word[in + 1] == b) {
      if (out > 0) {
        change(pair_key(word[out - 1], a), -1);
        change(pair_key(word[out - 1], merged), +1);
      }
      if (in + 2 < n) {
        change(pair_key(b, word[in + 2]), -1);
        change(pair_key(merged, word[in + 2]), +1);
      }
      word[out++] = merged;
      in += 2;
    } else {
      word[out++] = word[in++];
    }
  }
  word.resize(out);
}

// The 256 byte symbols ordered by code point (HF sorts the alphabet so).
std::array<int, 256> bytes_by_code_point() {
  const auto& symbols = detail::byte_to_unicode();
  std::array<std::pair<char32_t, int>, 256> order;
  for (int b = 0; b < 256; ++b) {
    size_t pos = 0;
    order[b] = {detail::next_code_point(symbols[b], pos), b};
  }
  std::sort(order.begin(), order.end());
  std::array<int, 256> bytes;
  for (int i = 0; i < 256; ++i) bytes[i] = order[i].second;
  return bytes;
}

}  // namespace

struct BpeTrainer::PreTokenizerHolder {
  detail::PreTokenizer pre_tokenizer;
};

BpeTrainer::BpeTrainer(BpeTrainerOptions options) : options_(std::move(options)) {
  const auto& o = options_;
  const auto& symbols = detail::byte_to_unicode();
  for (size_t i = 0; i < o.special_tokens.size(); ++i) {
    const std::string& t = o.special_tokens[i];
    MIXPEFT_CHECK(!t.empty() && detail::find_invalid_utf8(t) == std::string::npos,
                  ErrorKind::kInvalidArgument, kWhere, ": special_tokens[", i,
                  "]: empty or not UTF-8");
    MIXPEFT_CHECK(std::find(o.special_tokens.begin(), o.special_tokens.begin() + i, t) ==
                      o.special_tokens.begin() + i,
                  ErrorKind::kInvalidArgument, kWhere, ": special token '", t,
                  "' is listed twice");
    MIXPEFT_CHECK(std::find(symbols.begin(), symbols.end(), t) == symbols.end(),
                  ErrorKind::kInvalidArgument, kWhere, ": special token '", t,
                  "' is one of the 256 byte symbols; that byte would lose its own token");
  }
  const size_t minimum = o.special_tokens.size() + 256;
  MIXPEFT_CHECK(o.vocab_size >= minimum, ErrorKind::kInvalidArgument, kWhere, ": vocab_size ",
                o.vocab_size, " is smaller than the ", o.special_tokens.size(),
                " special tokens + 256 byte symbols; use at least ", minimum);
  for (auto [name, role] : {std::pair{&o.bos_token, "bos_token"}, {&o.eos_token, "eos_token"},
                            {&o.pad_token, "pad_token"}, {&o.unk_token, "unk_token"}}) {
    MIXPEFT_CHECK(name->empty() || std::find(o.special_tokens.begin(), o.special_tokens.end(),
                                             *name) != o.special_tokens.end(),
                  ErrorKind::kInvalidArgument, kWhere, ": ", role, " '", *name,
                  "' is not one of the special tokens; add it to special_tokens");
  }
  MIXPEFT_CHECK(!o.add_bos || !o.bos_token.empty(), ErrorKind::kInvalidArgument, kWhere,
                ": add_bos needs a bos_token");
  MIXPEFT_CHECK(!o.add_eos || !o.eos_token.empty(), ErrorKind::kInvalidArgument, kWhere,
                ": add_eos needs an eos_token");
  if (!o.split_pattern.empty()) {
    detail::Regex check(o.split_pattern, cat(kWhere, ": split_pattern"),
                        ErrorKind::kInvalidArgument);
  }
  pre_tokenizer_ = std::make_unique<PreTokenizerHolder>();
  pre_tokenizer_->pre_tokenizer = detail::parse_pre_tokenizer(
      detail::byte_level_pre_tokenizer_json(o.split_pattern, o.add_prefix_space), kWhere);
}

BpeTrainer::~BpeTrainer() = default;

bool BpeTrainer::feed_line(std::string_view line, const std::string& where, uint64_t line_no) {
  if (fed_.truncated) return false;
  if (options_.max_input_bytes > 0 && fed_.bytes + line.size() > options_.max_input_bytes) {
    fed_.truncated = true;
    return false;
  }
  size_t bad = detail::find_invalid_utf8(line);
  MIXPEFT_CHECK(bad == std::string::npos, ErrorKind::kInvalidArgument, where, ":", line_no,
                ": not UTF-8 (invalid byte at column ", bad + 1,
                "); convert the file to UTF-8 (e.g. iconv -f latin1 -t utf-8)");
  fed_.bytes += line.size();
  ++fed_.lines;
  words_buffer_.clear();
  pre_tokenizer_->pre_tokenizer.apply(line, words_buffer_);
  fed_.words += words_buffer_.size();
  for (auto& w : words_buffer_) ++word_counts_[std::move(w)];
  return true;
}

bool BpeTrainer::feed_text(std::string_view text, const std::string& where) {
  const auto t0 = Clock::now();
  uint64_t line_no = 1;
  bool more = true;
  size_t begin = 0;
  while (more && begin < text.size()) {
    size_t nl = text.find('\n', begin);
    size_t end = nl == std::string_view::npos ? text.size() : nl + 1;
    more = feed_line(text.substr(begin, end - begin), where, line_no++);
    begin = end;
  }
  fed_.feed_seconds += seconds_since(t0);
  return !fed_.truncated;
}

bool BpeTrainer::feed_file(const std::string& path) {
  const auto t0 = Clock::now();
  std::error_code ec;
  MIXPEFT_CHECK(std::filesystem::exists(path, ec), ErrorKind::kNotFound, path,
                ": no such file (give the training text as UTF-8 files)");
  MIXPEFT_CHECK(!std::filesystem::is_directory(path, ec), ErrorKind::kInvalidArgument, path,
                ": is a folder; give the text files themselves");
  std::ifstream in(path, std::ios::binary);
  MIXPEFT_CHECK(in.good(), ErrorKind::kIO, path, ": cannot open for reading: ",
                std::strerror(errno));
  constexpr size_t kBlock = 1 << 20;
  std::string buffer;  // the unfinished last line of the previous block, then the block
  std::vector<char> block(kBlock);
  uint64_t line_no = 1;
  bool more = true;
  while (more) {
    in.read(block.data(), static_cast<std::streamsize>(block.size()));
    const auto got = static_cast<size_t>(in.gcount());
    MIXPEFT_CHECK(!in.bad(), ErrorKind::kIO, path, ": read failed");
    const bool eof = got == 0;
    buffer.append(block.data(), got);
    size_t begin = 0;
    while (more && begin < buffer.size()) {
      size_t nl = buffer.find('\n', begin);
      if (nl == std::string::npos && !eof) break;  // finish the line with the next block
      size_t end = nl == std::string::npos ? buffer.size() : nl + 1;
      more = feed_line(std::string_view(buffer).substr(begin, end - begin), path, line_no++);
      begin = end;
    }
    buffer.erase(0, begin);
    if (eof) break;
  }
  fed_.feed_seconds += seconds_since(t0);
  return !fed_.truncated;
}

BpeTrainResult BpeTrainer::train() const {
  const auto t0 = Clock::now();
  const auto& o = options_;
  MIXPEFT_CHECK(!word_counts_.empty(), ErrorKind::kInvalidArgument, kWhere,
                ": no text to train on (", fed_.bytes, " bytes in ", fed_.lines, " lines fed",
                fed_.truncated ? ", stopped by max_input_bytes" : "", ")");

  // Ids: specials, then the byte symbols in code point order.
  std::vector<std::string> id_to_word(o.special_tokens);
  std::unordered_map<std::string, int32_t> word_to_id;
  word_to_id.reserve(o.vocab_size * 2);
  for (size_t i = 0; i < id_to_word.size(); ++i) word_to_id[id_to_word[i]] = static_cast<int32_t>(i);
  std::array<int32_t, 256> byte_id;
  for (int b : bytes_by_code_point()) {
    const std::string& symbol = detail::byte_to_unicode()[b];
    byte_id[b] = static_cast<int32_t>(id_to_word.size());
    word_to_id[symbol] = byte_id[b];
    id_to_word.push_back(symbol);
  }

  // Words in byte order (any fixed order gives the same merges; this one
  // also makes the rare equal-count, same-pair heap entries deterministic).
  std::vector<std::pair<std::string_view, uint64_t>> sorted(word_counts_.begin(),
                                                            word_counts_.end());
  std::sort(sorted.begin(), sorted.end());
  std::vector<std::vector<int32_t>> words(sorted.size());
  std::vector<int64_t> counts(sorted.size());
  std::unordered_map<uint64_t, int64_t> pair_counts;
  PairPositions where;
  for (size_t i = 0; i < sorted.size(); ++i) {
    auto& w = words[i];
    w.reserve(sorted[i].first.size());
    for (char c : sorted[i].first) w.push_back(byte_id[static_cast<unsigned char>(c)]);
    counts[i] = static_cast<int64_t>(sorted[i].second);
    for (size_t j = 0; j + 1 < w.size(); ++j) {
      const uint64_t p = pair_key(w[j], w[j + 1]);
      pair_counts[p] += counts[i];
      add_position(where, p, static_cast<uint32_t>(i));
    }
  }

  std::vector<Candidate> heap;
  uint64_t seq = 0;
  // Pushes every pair of `fresh` with a positive count, in pair order.
  auto push_all = [&](PairPositions& fresh) {
    std::vector<uint64_t> keys;
    keys.reserve(fresh.size());
    for (const auto& kv : fresh) keys.push_back(kv.first);
    std::sort(keys.begin(), keys.end());
    for (uint64_t p : keys) {
      const int64_t c = pair_counts[p];
      if (c <= 0) continue;
      heap.push_back(Candidate{c, p, seq++, std::move(fresh[p])});
      std::push_heap(heap.begin(), heap.end(), ComesAfter());
    }
    fresh.clear();
  };
  push_all(where);

  const int64_t min_count = static_cast<int64_t>(std::max<uint64_t>(o.min_frequency, 1));
  std::vector<uint64_t> merges;  // pair keys, in the order learned
  std::string stop_reason = "no pairs left";
  PairPositions fresh;
  while (true) {
    if (id_to_word.size() >= o.vocab_size) {
      stop_reason = "vocab_size reached";
      break;
    }
    if (heap.empty()) break;
    std::pop_heap(heap.begin(), heap.end(), ComesAfter());
    Candidate top = std::move(heap.back());
    heap.pop_back();
    const int64_t current = pair_counts[top.pair];
    if (top.count != current) {
      // Stale: the pair lost occurrences since the entry was made. A pair
      // with none left can never come back (new pairs hold the new token).
      if (current > 0) {
        top.count = current;
        heap.push_back(std::move(top));
        std::push_heap(heap.begin(), heap.end(), ComesAfter());
      }
      continue;
    }
    if (top.count < min_count) {
      stop_reason = "min_frequency";
      break;
    }
    const int32_t a = left_of(top.pair), b = right_of(top.pair);
    std::string token = id_to_word[a] + id_to_word[b];
    auto [it, inserted] = word_to_id.try_emplace(token, static_cast<int32_t>(id_to_word.size()));
    if (inserted) id_to_word.push_back(std::move(token));
    const int32_t merged = it->second;
    merges.push_back(top.pair);
    for (uint32_t wi : top.pos) {
      const int64_t count = counts[wi];
      merge_word(words[wi], a, b, merged, [&](uint64_t pair, int change) {
        pair_counts[pair] += change * count;
        if (change > 0) add_position(fresh, pair, wi);
      });
    }
    push_all(fresh);
  }

  // HF keeps merges in a map keyed by pair: a pair learned twice (possible
  // when two merges spell the same token) keeps its last rank only.
  std::unordered_map<uint64_t, size_t> last_rank;
  for (size_t r = 0; r < merges.size(); ++r) last_rank[merges[r]] = r;

  BpeTrainResult result;
  ByteLevelBpeSpec& spec = result.spec;
  spec.vocab = id_to_word;
  for (size_t r = 0; r < merges.size(); ++r) {
    if (last_rank[merges[r]] != r) continue;
    spec.merges.emplace_back(id_to_word[left_of(merges[r])], id_to_word[right_of(merges[r])]);
  }
  for (size_t i = 0; i < o.special_tokens.size(); ++i) {
    AddedToken t;
    t.id = static_cast<TokenId>(i);
    t.content = o.special_tokens[i];
    t.special = true;
    spec.added_tokens.push_back(t);
  }
  spec.split_pattern = o.split_pattern;
  spec.add_prefix_space = o.add_prefix_space;
  spec.bos_token = o.bos_token;
  spec.eos_token = o.eos_token;
  spec.unk_token = o.unk_token;
  spec.pad_token = o.pad_token;
  spec.add_bos = o.add_bos;
  spec.add_eos = o.add_eos;
  spec.model_max_length = o.model_max_length;
  result.tokenizer = Tokenizer::from_byte_level_bpe(spec);

  BpeTrainStats& s = result.stats;
  s = fed_;
  s.distinct_words = words.size();
  s.merges = spec.merges.size();
  s.vocab_size = result.tokenizer->vocab_size();
  s.stop_reason = stop_reason;
  for (const auto& [word, count] : sorted) {
    s.tokens += count * result.tokenizer->encode(word, /*add_special_tokens=*/false).size();
  }
  s.train_seconds = seconds_since(t0);
  return result;
}

}  // namespace mixpeft::tok
