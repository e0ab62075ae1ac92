// Batcher: seeded order, length grouping, dynamic padding.
#include <algorithm>
#include <limits>
#include <numeric>
#include <random>

#include "mixpeft/data.h"
#include "mixpeft/error.h"

namespace mixpeft::data {

uint64_t splitmix64(uint64_t x) {
  uint64_t z = x + 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

uint64_t epoch_seed(uint64_t seed, uint64_t epoch) { return splitmix64(splitmix64(seed) ^ epoch); }

namespace {

// Uniform in [0, k) by rejection: no modulo bias, no implementation-defined
// distribution.
uint64_t uniform_below(std::mt19937_64& rng, uint64_t k) {
  constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();
  const uint64_t limit = kMax - kMax % k;
  for (;;) {
    uint64_t x = rng();
    if (x < limit) return x % k;
  }
}

}  // namespace

std::vector<size_t> shuffled_indices(size_t n, uint64_t seed, uint64_t epoch) {
  std::vector<size_t> p(n);
  std::iota(p.begin(), p.end(), size_t{0});
  std::mt19937_64 rng(epoch_seed(seed, epoch));
  for (size_t i = n; i-- > 1;) {
    size_t j = static_cast<size_t>(uniform_below(rng, i + 1));
    std::swap(p[i], p[j]);
  }
  return p;
}

std::vector<size_t> length_grouped(const std::vector<size_t>& permutation,
                                   const std::vector<size_t>& lengths, size_t batch_size,
                                   size_t mega_batch_mult) {
  MIXPEFT_CHECK(batch_size > 0, ErrorKind::kInvalidArgument, "length_grouped: batch_size must be > 0");
  const size_t n = permutation.size();
  if (mega_batch_mult == 0) {
    mega_batch_mult = std::min<size_t>(n / (batch_size * 4), 50);
    if (mega_batch_mult == 0) mega_batch_mult = 1;
  }
  const size_t mega = mega_batch_mult * batch_size;
  auto longer = [&](size_t a, size_t b) { return lengths[a] > lengths[b]; };
  std::vector<size_t> out = permutation;
  std::vector<size_t> starts;  // first position of each mega-batch
  for (size_t s = 0; s < n; s += mega) {
    starts.push_back(s);
    std::stable_sort(out.begin() + static_cast<std::ptrdiff_t>(s),
                     out.begin() + static_cast<std::ptrdiff_t>(std::min(n, s + mega)), longer);
  }
  // The longest example overall goes first (HF: so that an out-of-memory
  // error shows at the first step). argmax takes the first maximum.
  size_t best = 0;
  for (size_t m = 1; m < starts.size(); ++m) {
    if (lengths[out[starts[m]]] > lengths[out[starts[best]]]) best = m;
  }
  if (!starts.empty()) std::swap(out[0], out[starts[best]]);
  return out;
}

Batcher::Batcher(const std::vector<Example>& examples, Task task, BatchOptions options)
    : examples_(&examples), task_(task), options_(std::move(options)) {
  MIXPEFT_CHECK(options_.batch_size > 0, ErrorKind::kInvalidArgument, "BatchOptions.batch_size: must be > 0");
  MIXPEFT_CHECK(options_.pad_id >= 0, ErrorKind::kInvalidArgument,
                "BatchOptions.pad_id: not set (", options_.pad_id,
                "); use data::pad_id_for(tokenizer) or the model's pad token id");
}

size_t Batcher::num_batches() const {
  size_t n = examples_->size(), b = options_.batch_size;
  return options_.drop_last ? n / b : (n + b - 1) / b;
}

std::vector<size_t> Batcher::order(uint64_t epoch) const {
  const size_t n = examples_->size();
  std::vector<size_t> p;
  if (options_.shuffle) {
    p = shuffled_indices(n, options_.seed, epoch);
  } else {
    p.resize(n);
    std::iota(p.begin(), p.end(), size_t{0});
  }
  if (!options_.group_by_length) return p;
  std::vector<size_t> lengths(n);
  for (size_t i = 0; i < n; ++i) lengths[i] = (*examples_)[i].length();
  if (options_.shuffle) return length_grouped(p, lengths, options_.batch_size, options_.mega_batch_mult);
  std::stable_sort(p.begin(), p.end(), [&](size_t a, size_t b) { return lengths[a] > lengths[b]; });
  return p;
}

std::vector<std::vector<size_t>> Batcher::plan(uint64_t epoch) const {
  std::vector<size_t> p = order(epoch);
  std::vector<std::vector<size_t>> out;
  out.reserve(num_batches());
  for (size_t i = 0; i < num_batches(); ++i) {
    size_t b = i * options_.batch_size;
    size_t e = std::min(p.size(), b + options_.batch_size);
    out.emplace_back(p.begin() + static_cast<std::ptrdiff_t>(b), p.begin() + static_cast<std::ptrdiff_t>(e));
  }
  return out;
}

Batch Batcher::batch(uint64_t epoch, size_t index) const {
  MIXPEFT_CHECK(index < num_batches(), ErrorKind::kInvalidArgument, "Batcher::batch: index ", index,
                " is past the last batch of the epoch (", num_batches(), " batches)");
  return collate(plan(epoch)[index]);
}

Batch Batcher::collate(const std::vector<size_t>& indices) const {
  MIXPEFT_CHECK(!indices.empty(), ErrorKind::kInvalidArgument, "Batcher::collate: no examples");
  const auto& ex = *examples_;
  size_t cols = 0;
  for (size_t i : indices) {
    MIXPEFT_CHECK(i < ex.size(), ErrorKind::kInvalidArgument, "Batcher::collate: example index ", i,
                  " out of range (", ex.size(), " examples)");
    cols = std::max(cols, ex[i].length());
  }
  size_t m = options_.pad_to_multiple_of;
  if (m > 0) cols = (cols + m - 1) / m * m;
  const size_t rows = indices.size();
  const bool causal = task_ == Task::kCausalLm;
  Batch b;
  b.rows = static_cast<int64_t>(rows);
  b.cols = static_cast<int64_t>(cols);
  b.indices = indices;
  b.input_ids.assign(rows * cols, options_.pad_id);
  b.attention_mask.assign(rows * cols, 0);
  if (!causal) b.token_type_ids.assign(rows * cols, 0);
  if (causal) b.labels.assign(rows * cols, kIgnoreIndex);
  if (task_ == Task::kClassification) b.labels.resize(rows);
  if (task_ == Task::kRegression) b.targets.resize(rows);
  for (size_t r = 0; r < rows; ++r) {
    const Example& e = ex[indices[r]];
    const size_t base = r * cols;
    for (size_t t = 0; t < e.length(); ++t) {
      b.input_ids[base + t] = e.input_ids[t];
      b.attention_mask[base + t] = 1;
      if (!causal && t < e.token_type_ids.size()) b.token_type_ids[base + t] = e.token_type_ids[t];
      if (causal && t < e.labels.size()) b.labels[base + t] = e.labels[t];
    }
    if (task_ == Task::kClassification) b.labels[r] = e.label;
    if (task_ == Task::kRegression) b.targets[r] = e.target;
  }
  return b;
}

}  // namespace mixpeft::data
