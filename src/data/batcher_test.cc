// Batcher: a seeded order that is the same on every standard library,
// resume, dynamic padding and HF-style length grouping.
#include <algorithm>
#include <numeric>
#include <random>
#include <set>

#include "data/test_util.h"
#include "mixpeft/data.h"

namespace mixpeft::data {
namespace {

using testing::throws_error_starting_with;

// Examples whose ids are 1000 * index + position (so every token says where
// it came from), of the given lengths.
std::vector<Example> make_examples(const std::vector<size_t>& lengths, Task task) {
  std::vector<Example> out;
  for (size_t i = 0; i < lengths.size(); ++i) {
    Example e;
    for (size_t t = 0; t < lengths[i]; ++t) e.input_ids.push_back(static_cast<int32_t>(1000 * i + t + 1));
    if (task == Task::kCausalLm) {
      e.prompt_length = 1;
      e.labels = e.input_ids;
      e.labels[0] = kIgnoreIndex;
    } else {
      e.token_type_ids.assign(lengths[i], 0);
      for (size_t t = lengths[i] / 2; t < lengths[i]; ++t) e.token_type_ids[t] = 1;
    }
    e.label = static_cast<int64_t>(i % 3);
    e.target = 0.5f * static_cast<float>(i);
    out.push_back(e);
  }
  return out;
}

std::vector<size_t> random_lengths(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::vector<size_t> v(n);
  for (auto& x : v) x = 1 + rng() % 200;
  return v;
}

BatchOptions options(size_t batch_size, uint64_t seed = 42) {
  BatchOptions o;
  o.batch_size = batch_size;
  o.seed = seed;
  o.pad_id = 0;
  return o;
}

bool is_permutation(std::vector<size_t> p) {
  std::sort(p.begin(), p.end());
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i] != i) return false;
  }
  return true;
}

// ---- the random order ---------------------------------------------------------------

TEST(Order, EngineAndSeedMixerMatchTheirSpecifications) {
  // C++ [rand.predef]: the 10000th output of a default-constructed
  // mt19937_64 is 9981545732273789042.
  std::mt19937_64 engine;
  engine.discard(9999);
  EXPECT_EQ(engine(), 9981545732273789042ULL);
  // splitmix64 (Vigna's reference splitmix64.c): from state 0 the first
  // outputs are 0xe220a8397b1dcdaf and 0x6e789e6aa1b965f4.
  EXPECT_EQ(splitmix64(0), 0xe220a8397b1dcdafULL);
  EXPECT_EQ(splitmix64(0x9E3779B97F4A7C15ULL), 0x6e789e6aa1b965f4ULL);
  EXPECT_EQ(epoch_seed(42, 3), splitmix64(splitmix64(42) ^ 3));
}

TEST(Order, ShuffleIsTheDocumentedFisherYates) {
  // Written out from the comment in data.h, with the standard engine.
  const size_t n = 37;
  std::mt19937_64 rng(epoch_seed(1234, 5));
  std::vector<size_t> expect(n);
  std::iota(expect.begin(), expect.end(), size_t{0});
  const uint64_t max = ~uint64_t{0};
  for (size_t i = n - 1; i >= 1; --i) {
    uint64_t k = i + 1, x;
    do {
      x = rng();
    } while (x >= max - max % k);
    std::swap(expect[i], expect[x % k]);
  }
  EXPECT_EQ(shuffled_indices(n, 1234, 5), expect);
}

TEST(Order, PureFunctionOfSeedAndEpoch) {
  auto a = shuffled_indices(1000, 7, 0);
  EXPECT_TRUE(is_permutation(a));
  EXPECT_EQ(shuffled_indices(1000, 7, 0), a);
  EXPECT_NE(shuffled_indices(1000, 7, 1), a);
  EXPECT_NE(shuffled_indices(1000, 8, 0), a);
  std::vector<size_t> identity(1000);
  std::iota(identity.begin(), identity.end(), size_t{0});
  EXPECT_NE(a, identity);
  EXPECT_TRUE(shuffled_indices(0, 1, 1).empty());
  EXPECT_EQ(shuffled_indices(1, 1, 1), (std::vector<size_t>{0}));
}

TEST(Order, NoShuffleKeepsFileOrder) {
  auto ex = make_examples({3, 1, 2, 5, 4}, Task::kClassification);
  BatchOptions o = options(2);
  o.shuffle = false;
  Batcher b(ex, Task::kClassification, o);
  EXPECT_EQ(b.order(0), (std::vector<size_t>{0, 1, 2, 3, 4}));
  EXPECT_EQ(b.order(9), b.order(0));
  EXPECT_EQ(b.plan(0), (std::vector<std::vector<size_t>>{{0, 1}, {2, 3}, {4}}));
}

// ---- plans and resume ------------------------------------------------------------------

TEST(Plan, CoversEveryExampleOnce) {
  auto ex = make_examples(random_lengths(103, 1), Task::kClassification);
  Batcher b(ex, Task::kClassification, options(10));
  EXPECT_EQ(b.num_batches(), 11u);
  auto plan = b.plan(4);
  ASSERT_EQ(plan.size(), 11u);
  std::vector<size_t> all;
  for (const auto& batch : plan) all.insert(all.end(), batch.begin(), batch.end());
  EXPECT_EQ(all, b.order(4));
  EXPECT_TRUE(is_permutation(all));
  EXPECT_EQ(plan.back().size(), 3u);
  BatchOptions o = options(10);
  o.drop_last = true;
  Batcher d(ex, Task::kClassification, o);
  EXPECT_EQ(d.num_batches(), 10u);
  EXPECT_EQ(d.plan(4).size(), 10u);
  EXPECT_EQ(d.plan(4).back().size(), 10u);
}

TEST(Plan, ResumeReproducesTheRestOfTheEpoch) {
  auto ex = make_examples(random_lengths(57, 2), Task::kCausalLm);
  for (bool group : {false, true}) {
    BatchOptions o = options(4, 99);
    o.group_by_length = group;
    // A full run over epochs 0..2.
    std::vector<Batch> full;
    {
      Batcher b(ex, Task::kCausalLm, o);
      for (uint64_t e = 0; e < 3; ++e) {
        for (const auto& idx : b.plan(e)) full.push_back(b.collate(idx));
      }
    }
    // A fresh process resuming at (epoch 1, batch 6).
    Batcher r(ex, Task::kCausalLm, o);
    std::vector<Batch> resumed;
    for (uint64_t e = 1; e < 3; ++e) {
      for (size_t i = e == 1 ? 6 : 0; i < r.num_batches(); ++i) resumed.push_back(r.batch(e, i));
    }
    size_t skip = r.num_batches() + 6;
    ASSERT_EQ(resumed.size(), full.size() - skip);
    for (size_t i = 0; i < resumed.size(); ++i) {
      const Batch &x = resumed[i], &y = full[skip + i];
      EXPECT_EQ(x.indices, y.indices);
      EXPECT_EQ(x.input_ids, y.input_ids);
      EXPECT_EQ(x.attention_mask, y.attention_mask);
      EXPECT_EQ(x.labels, y.labels);
    }
  }
}

// ---- padding ------------------------------------------------------------------------------

TEST(Collate, ClassificationPadsRightToTheLongest) {
  auto ex = make_examples({3, 5, 2}, Task::kClassification);
  BatchOptions o = options(3);
  o.pad_id = 9;
  Batcher b(ex, Task::kClassification, o);
  Batch batch = b.collate({2, 0, 1});
  EXPECT_EQ(batch.rows, 3);
  EXPECT_EQ(batch.cols, 5);
  EXPECT_EQ(batch.indices, (std::vector<size_t>{2, 0, 1}));
  EXPECT_EQ(batch.input_ids, (std::vector<int64_t>{2001, 2002, 9, 9, 9,  //
                                                   1, 2, 3, 9, 9,        //
                                                   1001, 1002, 1003, 1004, 1005}));
  EXPECT_EQ(batch.attention_mask, (std::vector<int64_t>{1, 1, 0, 0, 0, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1}));
  EXPECT_EQ(batch.token_type_ids, (std::vector<int64_t>{0, 1, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 1, 1, 1}));
  EXPECT_EQ(batch.labels, (std::vector<int64_t>{2, 0, 1}));
  EXPECT_TRUE(batch.targets.empty());
}

TEST(Collate, CausalLmLabelsArePaddedWithIgnoreIndex) {
  auto ex = make_examples({2, 4}, Task::kCausalLm);
  Batcher b(ex, Task::kCausalLm, options(2));
  Batch batch = b.collate({0, 1});
  EXPECT_EQ(batch.cols, 4);
  const int64_t I = kIgnoreIndex;
  EXPECT_EQ(batch.input_ids, (std::vector<int64_t>{1, 2, 0, 0, 1001, 1002, 1003, 1004}));
  EXPECT_EQ(batch.labels, (std::vector<int64_t>{I, 2, I, I, I, 1002, 1003, 1004}));
  EXPECT_TRUE(batch.token_type_ids.empty());
}

TEST(Collate, RegressionTargetsAndPadMultiple) {
  auto ex = make_examples({3, 1}, Task::kRegression);
  BatchOptions o = options(2);
  o.pad_to_multiple_of = 8;
  Batcher b(ex, Task::kRegression, o);
  Batch batch = b.collate({1, 0});
  EXPECT_EQ(batch.cols, 8);
  EXPECT_EQ(batch.input_ids.size(), 16u);
  EXPECT_EQ(batch.targets, (std::vector<float>{0.5f, 0.0f}));
  EXPECT_TRUE(batch.labels.empty());
  EXPECT_EQ(std::accumulate(batch.attention_mask.begin(), batch.attention_mask.end(), int64_t{0}), 4);
}

// ---- length grouping --------------------------------------------------------------------

TEST(LengthGrouping, HuggingFaceAlgorithmByHand) {
  // HF get_length_grouped_indices with batch_size 2, mega_batch_mult 2 on the
  // permutation 0..7, lengths [1, 5, 3, 7, 2, 8, 4, 6]:
  //   mega-batches [0, 1, 2, 3] and [4, 5, 6, 7]
  //   sorted by length, longest first: [3, 1, 2, 0] (7, 5, 3, 1), [5, 7, 6, 4] (8, 6, 4, 2)
  //   maxima 7 and 8: the second holds the longest, so swap the heads:
  //   [5, 1, 2, 0, 3, 7, 6, 4]
  std::vector<size_t> perm = {0, 1, 2, 3, 4, 5, 6, 7};
  std::vector<size_t> lengths = {1, 5, 3, 7, 2, 8, 4, 6};
  EXPECT_EQ(length_grouped(perm, lengths, 2, 2), (std::vector<size_t>{5, 1, 2, 0, 3, 7, 6, 4}));
  // Ties keep the permutation's order (Python's sorted is stable), and a
  // short last mega-batch is sorted too: [6, 2, 0, 4] lengths 2, 2, 2, 9 ->
  // mega-batches [6, 2, 0] (2, 2, 2) and [4] (9): heads swap -> [4, 2, 0, 6].
  EXPECT_EQ(length_grouped({6, 2, 0, 4}, {2, 0, 2, 0, 9, 0, 2}, 1, 3), (std::vector<size_t>{4, 2, 0, 6}));
}

TEST(LengthGrouping, DefaultMegaBatchIsHfs) {
  // n = 40, batch 2: min(40 / 8, 50) = 5 batches -> mega-batches of 10.
  std::vector<size_t> lengths(40);
  std::iota(lengths.begin(), lengths.end(), size_t{1});
  std::vector<size_t> perm(40);
  std::iota(perm.begin(), perm.end(), size_t{0});
  auto g = length_grouped(perm, lengths, 2, 0);
  // The longest (index 39) comes first; each later mega-batch of 10 is sorted descending.
  EXPECT_EQ(g[0], 39u);
  EXPECT_EQ(std::vector<size_t>(g.begin() + 30, g.end()),
            (std::vector<size_t>{9, 38, 37, 36, 35, 34, 33, 32, 31, 30}));
  EXPECT_EQ(std::vector<size_t>(g.begin() + 1, g.begin() + 10), (std::vector<size_t>{8, 7, 6, 5, 4, 3, 2, 1, 0}));
}

TEST(LengthGrouping, BatchesHaveSimilarLengths) {
  auto lengths = random_lengths(2000, 3);
  auto ex = make_examples(lengths, Task::kClassification);
  BatchOptions o = options(16);
  Batcher plain(ex, Task::kClassification, o);
  o.group_by_length = true;
  Batcher grouped(ex, Task::kClassification, o);
  auto padding = [&](const Batcher& b) {
    size_t pad = 0;
    for (const auto& idx : b.plan(0)) {
      size_t longest = 0;
      for (size_t i : idx) longest = std::max(longest, lengths[i]);
      for (size_t i : idx) pad += longest - lengths[i];
    }
    return pad;
  };
  size_t p_plain = padding(plain), p_grouped = padding(grouped);
  EXPECT_LT(p_grouped * 10, p_plain) << "grouped " << p_grouped << " vs plain " << p_plain;
  auto plan = grouped.plan(0);
  size_t longest = *std::max_element(lengths.begin(), lengths.end());
  EXPECT_EQ(lengths[plan[0][0]], longest);  // the longest example is in the first batch
  EXPECT_TRUE(is_permutation(grouped.order(0)));
  EXPECT_NE(grouped.order(0), grouped.order(1));  // still shuffled between epochs
  EXPECT_EQ(grouped.order(1), Batcher(ex, Task::kClassification, o).order(1));
}

TEST(LengthGrouping, WithoutShuffleSortsLongestFirst) {
  auto ex = make_examples({2, 5, 2, 7, 1}, Task::kClassification);
  BatchOptions o = options(2);
  o.shuffle = false;
  o.group_by_length = true;
  Batcher b(ex, Task::kClassification, o);
  EXPECT_EQ(b.order(0), (std::vector<size_t>{3, 1, 0, 2, 4}));
}

// ---- errors -------------------------------------------------------------------------------

TEST(BatcherErrors, BadOptionsAndIndices) {
  auto ex = make_examples({2, 3}, Task::kClassification);
  EXPECT_TRUE(throws_error_starting_with([&] { Batcher(ex, Task::kClassification, options(0)); },
                                         ErrorKind::kInvalidArgument, "BatchOptions.batch_size: must be > 0"));
  BatchOptions o = options(2);
  o.pad_id = -1;
  EXPECT_TRUE(throws_error_starting_with([&] { Batcher(ex, Task::kClassification, o); }, ErrorKind::kInvalidArgument,
                                         "BatchOptions.pad_id: not set", {"pad_id_for"}));
  Batcher b(ex, Task::kClassification, options(2));
  EXPECT_TRUE(throws_error_starting_with([&] { b.collate({}); }, ErrorKind::kInvalidArgument,
                                         "Batcher::collate: no examples"));
  EXPECT_TRUE(throws_error_starting_with([&] { b.collate({0, 2}); }, ErrorKind::kInvalidArgument,
                                         "Batcher::collate: example index 2 out of range (2 examples)"));
  EXPECT_TRUE(throws_error_starting_with([&] { b.batch(0, 1); }, ErrorKind::kInvalidArgument,
                                         "Batcher::batch: index 1 is past the last batch of the epoch (1 batches)"));
}

}  // namespace
}  // namespace mixpeft::data
