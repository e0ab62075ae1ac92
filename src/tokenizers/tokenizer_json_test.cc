// Real tokenizer.json files (fetched by scripts/fetch_tokenizers.sh into
// deps/tokenizers/): Qwen3 against HF's reference ids
// (tests/data/fixtures/tokenizers/qwen3/cases.jsonl), Llama-3 for loading,
// special tokens and round trips.
#include <gtest/gtest.h>

#include <filesystem>
#include <random>

#include "mixpeft/error.h"
#include "mixpeft/tokenizer.h"
#include "tokenizers/test_util.h"

namespace mixpeft::tok {
namespace {

using testing::Case;
using testing::deps_dir;
using testing::fixture_dir;
using testing::read_cases;

#define SKIP_WITHOUT(dir)                                                                    \
  if (!std::filesystem::exists(std::string(dir) + "/tokenizer.json"))                        \
  GTEST_SKIP() << dir << "/tokenizer.json is missing: run scripts/fetch_tokenizers.sh"

TEST(Qwen3, EveryFixtureCaseGivesHfIds) {
  SKIP_WITHOUT(deps_dir("qwen3"));
  auto tok = Tokenizer::load(deps_dir("qwen3"));
  auto cases = read_cases(fixture_dir("qwen3") + "/cases.jsonl");
  ASSERT_EQ(cases.size(), 45u);
  for (const Case& c : cases) {
    SCOPED_TRACE(c.text);
    EXPECT_EQ(tok->encode(c.text, false), c.ids);
    // Decoding the reference ids and encoding again gives the same ids.
    EXPECT_EQ(tok->encode(tok->decode(c.ids), false), c.ids);
  }
}

TEST(Qwen3, SpecialTokensComeFromTokenizerJsonAndConfig) {
  SKIP_WITHOUT(deps_dir("qwen3"));
  auto tok = Tokenizer::load(deps_dir("qwen3"));
  // tokenizer.json added_tokens: <|endoftext|> 151643, <|im_start|> 151644,
  // <|im_end|> 151645, ..., </think> 151668 (the last one).
  EXPECT_EQ(tok->token_to_id("<|im_start|>"), 151644);
  EXPECT_EQ(tok->vocab_size(), 151669u);
  // tokenizer_config.json: eos <|im_end|>, pad <|endoftext|>, bos null.
  EXPECT_EQ(tok->special_ids().eos, 151645);
  EXPECT_EQ(tok->special_ids().pad, 151643);
  EXPECT_EQ(tok->special_ids().bos, -1);
  EXPECT_EQ(tok->model_max_length(), 131072u);
  // No template: add_special_tokens adds nothing (ByteLevel post-processor).
  EXPECT_EQ(tok->encode("Hello world", true), (std::vector<TokenId>{9707, 1879}));
  // Added tokens are cut out of the text: "Hello world" ids from cases.jsonl.
  std::vector<TokenId> ids = tok->encode("<|im_start|>Hello world<|im_end|>", false);
  EXPECT_EQ(ids, (std::vector<TokenId>{151644, 9707, 1879, 151645}));
  EXPECT_EQ(tok->decode(ids), "<|im_start|>Hello world<|im_end|>");
  EXPECT_EQ(tok->decode(ids, true), "Hello world");
  // </think> is an added but not special token: kept by skip_special_tokens.
  EXPECT_EQ(tok->decode({151668}, true), "</think>");
}

TEST(Qwen3, NfcIsApplied) {
  SKIP_WITHOUT(deps_dir("qwen3"));
  auto tok = Tokenizer::load(deps_dir("qwen3"));
  // "é" decomposed (e + U+0301) encodes like the composed U+00E9.
  EXPECT_EQ(tok->encode("caf\x65\xCC\x81", false), tok->encode("caf\xC3\xA9", false));
}

TEST(Llama3, LoadsAndRoundTrips) {
  SKIP_WITHOUT(deps_dir("llama3"));
  auto tok = Tokenizer::load(deps_dir("llama3"));
  EXPECT_EQ(tok->kind(), ModelKind::kByteLevelBpe);
  // tokenizer.json: 128000 vocab entries + 256 added; config bos/eos.
  EXPECT_EQ(tok->vocab_size(), 128256u);
  EXPECT_EQ(tok->special_ids().bos, 128000);
  EXPECT_EQ(tok->special_ids().eos, 128001);
  // Published Llama-3 ids (its first 100k tokens are tiktoken's cl100k_base).
  EXPECT_EQ(tok->encode("Hello world", false), (std::vector<TokenId>{9906, 1917}));
  EXPECT_EQ(tok->encode("<|begin_of_text|>Hi", false)[0], 128000);
  // The pieces avoid " 's", " ." and the like: this config turns on HF's
  // clean_up_tokenization_spaces, which rewrites them on decode (next test).
  std::mt19937 rng(7);
  const std::string pieces[] = {"Hello", " wörld", "\n\n", "  ", "12345", "中文", "😀", "\t",
                                "<|end_of_text|>", "İ", "a\xC2\x85", "\xEF\xBB\xBF"};
  for (int i = 0; i < 200; ++i) {
    std::string text;
    for (int k = 0; k < 1 + i % 12; ++k) text += pieces[rng() % std::size(pieces)];
    ASSERT_EQ(tok->decode(tok->encode(text, false)), text) << text;
  }
}

TEST(Llama3, CleanUpSpacesFollowsTheConfig) {
  SKIP_WITHOUT(deps_dir("llama3"));
  // tokenizer_config.json sets clean_up_tokenization_spaces: true, so HF's
  // decode turns " ," into ",".
  auto tok = Tokenizer::load(deps_dir("llama3"));
  std::vector<TokenId> ids = tok->encode("a , b", false);
  EXPECT_EQ(tok->decode(ids), "a, b");
}

}  // namespace
}  // namespace mixpeft::tok
