// WordPiece against HF's bert-base-uncased reference ids
// (tests/data/fixtures/tokenizers/bert-base-uncased, made by transformers'
// slow BertTokenizer(do_lower_case=True)).
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <filesystem>

#include "mixpeft/error.h"
#include "mixpeft/tokenizer.h"
#include "tokenizers/test_util.h"

namespace mixpeft::tok {
namespace {

using testing::Case;
using testing::fixture_dir;
using testing::read_cases;

class Bert : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    tok_ = Tokenizer::load(fixture_dir("bert-base-uncased")).release();
  }
  static void TearDownTestSuite() {
    delete tok_;
    tok_ = nullptr;
  }
  static Tokenizer* tok_;
};
Tokenizer* Bert::tok_ = nullptr;

TEST_F(Bert, EveryFixtureCaseGivesHfIdsAndTokens) {
  auto cases = read_cases(fixture_dir("bert-base-uncased") + "/cases.jsonl");
  ASSERT_EQ(cases.size(), 46u);
  for (const Case& c : cases) {
    SCOPED_TRACE(c.text);
    EXPECT_EQ(tok_->encode(c.text, false), c.ids);
    if (c.has_tokens) {
      EXPECT_EQ(tok_->tokenize(c.text), c.tokens);
    }
  }
}

TEST_F(Bert, TemplateMatchesTransformersPublishedIds) {
  // transformers' tests: 'Hello, my dog is cute' -> 101 7592 1010 2026 3899 2003 10140 102.
  std::vector<TokenId> expected{101, 7592, 1010, 2026, 3899, 2003, 10140, 102};
  EXPECT_EQ(tok_->encode("Hello, my dog is cute"), expected);
  EXPECT_EQ(tok_->kind(), ModelKind::kWordPiece);
  EXPECT_EQ(tok_->vocab_size(), 30522u);
  const SpecialTokenIds& s = tok_->special_ids();
  EXPECT_EQ(s.cls, 101);
  EXPECT_EQ(s.sep, 102);
  EXPECT_EQ(s.unk, 100);
  EXPECT_EQ(s.pad, 0);
  EXPECT_EQ(s.mask, 103);
  EXPECT_EQ(s.bos, -1);
  EXPECT_EQ(s.eos, -1);
}

TEST_F(Bert, DecodeJoinsPiecesAndCleansUpSpaces) {
  std::vector<TokenId> ids{101, 7592, 1010, 2026, 3899, 2003, 10140, 102};
  // HF: " ".join(tokens), " ##" removed, then clean_up_tokenization (" ," -> ",").
  EXPECT_EQ(tok_->decode(ids), "[CLS] hello, my dog is cute [SEP]");
  EXPECT_EQ(tok_->decode(ids, true), "hello, my dog is cute");
  // From cases.jsonl: "Supercalifragilisticexpialidocious" -> super ##cal ##if...
  auto cases = read_cases(fixture_dir("bert-base-uncased") + "/cases.jsonl");
  EXPECT_EQ(tok_->decode(cases[31].ids), "supercalifragilisticexpialidocious");
}

TEST_F(Bert, PairTemplateHasTokenTypes) {
  // Ids from cases.jsonl: "Hello world" and "Hello, world! How are you?".
  Encoding e = tok_->encode_pair("Hello world", "How are you?");
  EXPECT_EQ(e.ids, (std::vector<TokenId>{101, 7592, 2088, 102, 2129, 2024, 2017, 1029, 102}));
  EXPECT_EQ(e.type_ids, (std::vector<int32_t>{0, 0, 0, 0, 1, 1, 1, 1, 1}));
  EXPECT_EQ(e.special_tokens_mask, (std::vector<int32_t>{1, 0, 0, 1, 0, 0, 0, 0, 1}));
  EXPECT_EQ(e.attention_mask, std::vector<int32_t>(9, 1));
  Encoding plain = tok_->encode_pair("Hello world", "How are you?", false);
  EXPECT_EQ(plain.ids, (std::vector<TokenId>{7592, 2088, 2129, 2024, 2017, 1029}));
}

TEST_F(Bert, SpecialTokensInTextAreKeptWhole) {
  // [CLS]/[SEP]/[MASK] typed in the text are matched as special tokens, case-sensitively.
  EXPECT_EQ(tok_->encode("[CLS] hello [MASK] world[SEP]", false),
            (std::vector<TokenId>{101, 7592, 103, 2088, 102}));
  // Lower-case "[mask]" is ordinary text: "[", "mask", "]".
  std::vector<TokenId> ids = tok_->encode("[mask]", false);
  ASSERT_EQ(ids.size(), 3u);
  EXPECT_EQ(ids[0], 1031);  // "[" (vocab.txt line 1032)
  EXPECT_EQ(tok_->id_to_token(ids[1]), "mask");
}

TEST_F(Bert, SavedTokenizerJsonGivesTheSameIds) {
  std::string dir = testing::make_temp_dir("bert");
  tok_->save_pretrained(dir);
  auto back = Tokenizer::load(dir);
  EXPECT_EQ(back->kind(), ModelKind::kWordPiece);
  EXPECT_EQ(back->special_ids().cls, 101);
  EXPECT_EQ(back->special_ids().pad, 0);
  for (const Case& c : read_cases(fixture_dir("bert-base-uncased") + "/cases.jsonl")) {
    EXPECT_EQ(back->encode(c.text, false), c.ids) << c.text;
  }
  EXPECT_EQ(back->encode("Hello, my dog is cute"), tok_->encode("Hello, my dog is cute"));
}

TEST_F(Bert, EncodesAMegabyteQuickly) {
  std::string corpus;
  auto cases = read_cases(fixture_dir("bert-base-uncased") + "/cases.jsonl");
  for (size_t i = 0; corpus.size() < (1u << 20); ++i) {
    corpus += cases[i % cases.size()].text;
    corpus += " ";
  }
  auto t0 = std::chrono::steady_clock::now();
  std::vector<TokenId> ids = tok_->encode(corpus, false);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("[ speed    ] BERT WordPiece: %.2f MB -> %zu tokens in %.3f s (%.1f MB/s)\n",
              corpus.size() / 1e6, ids.size(), secs, corpus.size() / 1e6 / secs);
  EXPECT_GT(ids.size(), corpus.size() / 10);
}

TEST(BertConfig, TokenizerConfigTurnsOffLowerCasing) {
  // A cased copy: same vocab, do_lower_case false -> "Hello" is not in the
  // uncased vocab as such, so it splits differently from "hello".
  std::string dir = testing::make_temp_dir("bert_cased");
  std::string vocab = fixture_dir("bert-base-uncased") + "/vocab.txt";
  testing::write_text(dir + "/tokenizer_config.json", R"({"do_lower_case": false})");
  std::filesystem::copy_file(vocab, dir + "/vocab.txt");
  auto cased = Tokenizer::load(dir);
  EXPECT_NE(cased->encode("Hello", false), (std::vector<TokenId>{7592}));
  EXPECT_EQ(cased->encode("hello", false), (std::vector<TokenId>{7592}));
  // Accents stay when lower-casing is off (strip_accents follows do_lower_case).
  EXPECT_NE(cased->tokenize("café"), (std::vector<std::string>{"cafe"}));
}

}  // namespace
}  // namespace mixpeft::tok
