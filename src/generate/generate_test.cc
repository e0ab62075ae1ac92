#include "mixpeft/generate.h"

#include <gtest/gtest.h>

#include "mixpeft/error.h"
#include "mixpeft/model.h"
#include "models/test_util.h"

namespace mixpeft {
namespace {

// Greedy decoding the slow way: the whole sequence again at every step, no cache.
std::vector<int64_t> greedy_without_cache(Model& model, std::vector<int64_t> seq, int64_t n) {
  torch::NoGradGuard no_grad;
  std::vector<int64_t> out;
  for (int64_t i = 0; i < n; ++i) {
    ModelInputs in;
    in.input_ids = torch::tensor(seq, torch::kLong).unsqueeze(0);
    auto tok = model.forward(in).logits.select(1, -1).argmax(-1).item<int64_t>();
    out.push_back(tok);
    seq.push_back(tok);
  }
  return out;
}

class GenerateTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { model = load_model(testing::fixture_dir(GetParam())); }
  std::shared_ptr<Model> model;
  const std::vector<std::vector<int64_t>> prompts{{5, 17, 42, 9, 77, 3}, {100, 12}, {8, 8, 200, 31}};
};

TEST_P(GenerateTest, GreedyWithCacheEqualsRecomputation) {
  GenerateOptions o;
  o.max_new_tokens = 12;
  for (const auto& p : prompts) {
    auto r = generate(*model, {p}, o);
    EXPECT_EQ(r.tokens[0], greedy_without_cache(*model, p, 12));
    EXPECT_EQ(r.finish_reasons[0], "length");
  }
}

TEST_P(GenerateTest, LeftPaddedBatchEqualsEachPromptAlone) {
  GenerateOptions o;
  o.max_new_tokens = 10;
  auto batch = generate(*model, prompts, o);
  for (size_t i = 0; i < prompts.size(); ++i)
    EXPECT_EQ(batch.tokens[i], generate(*model, {prompts[i]}, o).tokens[0]) << "prompt " << i;
}

TEST_P(GenerateTest, StopTokenEndsOnlyItsSequence) {
  GenerateOptions o;
  o.max_new_tokens = 8;
  auto free_run = generate(*model, prompts, o);
  o.stop_token_ids = {free_run.tokens[0][2]};
  std::vector<size_t> streamed(prompts.size(), 0);
  o.on_token = [&](size_t row, int64_t) { ++streamed[row]; };
  auto r = generate(*model, prompts, o);
  EXPECT_EQ(r.finish_reasons[0], "stop");
  EXPECT_LE(r.tokens[0].size(), 3u);
  EXPECT_EQ(r.tokens[0].back(), o.stop_token_ids[0]);
  for (size_t i = 0; i < prompts.size(); ++i) EXPECT_EQ(streamed[i], r.tokens[i].size());
}

TEST_P(GenerateTest, SamplingIsSeededAndFiltersReduceToGreedy) {
  GenerateOptions greedy;
  greedy.max_new_tokens = 10;
  auto expected = generate(*model, {prompts[0]}, greedy).tokens[0];

  GenerateOptions s = greedy;
  s.temperature = 1.5;
  s.seed = 7;
  auto a = generate(*model, {prompts[0]}, s).tokens[0];
  EXPECT_EQ(a, generate(*model, {prompts[0]}, s).tokens[0]) << "same seed, same tokens";
  s.seed = 8;
  EXPECT_NE(a, generate(*model, {prompts[0]}, s).tokens[0]) << "another seed, other tokens";

  GenerateOptions k1 = s;
  k1.top_k = 1;
  EXPECT_EQ(generate(*model, {prompts[0]}, k1).tokens[0], expected) << "top_k = 1 is greedy";
  GenerateOptions p0 = s;
  p0.top_p = 1e-9;
  EXPECT_EQ(generate(*model, {prompts[0]}, p0).tokens[0], expected) << "tiny top_p is greedy";
}

TEST_P(GenerateTest, SampledRowsInABatchGetWhatTheyGetAlone) {
  // Each row its own settings, generator and limit: a row's draws must not
  // depend on which rows share its batch (the server batches sampled requests).
  GenerateOptions o;
  o.max_new_tokens = 10;
  o.rows = {{1.3, 0, 1.0, 11, -1}, {0.0, 0, 1.0, 0, 4}, {0.9, 20, 0.9, 12, 0}};
  auto batch = generate(*model, prompts, o);
  const std::vector<size_t> lengths = {10, 4, 0};  // -1 takes max_new_tokens
  for (size_t i = 0; i < prompts.size(); ++i) {
    GenerateOptions alone = o;
    alone.rows = {o.rows[i]};
    EXPECT_EQ(batch.tokens[i], generate(*model, {prompts[i]}, alone).tokens[0]) << "prompt " << i;
    EXPECT_EQ(batch.tokens[i].size(), lengths[i]) << "prompt " << i;
    EXPECT_EQ(batch.finish_reasons[i], "length") << "prompt " << i;
  }
  // Without per-row settings row b is seeded seed + b: prompt 0 alone with
  // the batch's settings gets the batch's row 0.
  GenerateOptions shared;
  shared.max_new_tokens = 10;
  shared.temperature = 1.3;
  shared.seed = 5;
  auto rows = generate(*model, {prompts[0], prompts[0]}, shared);
  EXPECT_EQ(rows.tokens[0], generate(*model, {prompts[0]}, shared).tokens[0]);
  EXPECT_NE(rows.tokens[0], rows.tokens[1]) << "two rows, two seeds, two samples";
  o.rows.pop_back();
  EXPECT_THROW(generate(*model, prompts, o), Error) << "per-row settings must match the prompts";
}

TEST_P(GenerateTest, CancellingARowEndsOnlyThatRow) {
  GenerateOptions o;
  o.max_new_tokens = 9;
  auto free_run = generate(*model, prompts, o);
  std::vector<size_t> seen(prompts.size(), 0);
  o.on_token = [&](size_t row, int64_t) { ++seen[row]; };
  o.cancelled = [&](size_t row) { return row == 1 && seen[row] >= 3; };
  auto r = generate(*model, prompts, o);
  EXPECT_EQ(r.finish_reasons[1], "cancelled");
  ASSERT_EQ(r.tokens[1].size(), 3u);
  EXPECT_EQ(r.tokens[1], std::vector<int64_t>(free_run.tokens[1].begin(), free_run.tokens[1].begin() + 3));
  for (size_t i : {size_t(0), size_t(2)}) {
    EXPECT_EQ(r.tokens[i], free_run.tokens[i]) << "prompt " << i;
    EXPECT_EQ(r.finish_reasons[i], free_run.finish_reasons[i]);
  }
}

INSTANTIATE_TEST_SUITE_P(CausalLMs, GenerateTest, ::testing::Values("gpt2", "llama", "qwen2"));

TEST(Generate, RejectsEncodersAndEmptyPrompts) {
  auto bert = load_model(testing::fixture_dir("bert"));
  EXPECT_THROW(generate(*bert, {{1, 2}}, {}), Error);
  auto gpt2 = load_model(testing::fixture_dir("gpt2"));
  EXPECT_THROW(generate(*gpt2, {{}}, {}), Error);
  GenerateOptions o;
  o.max_new_tokens = 100;  // the fixture's n_positions is 64
  try {
    generate(*gpt2, {{1, 2, 3}}, o);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("max_position_embeddings"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace mixpeft
