// Byte-level BPE against HF's GPT-2 reference ids
// (tests/data/fixtures/tokenizers/gpt2, made by transformers' GPT2Tokenizer).
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <random>
#include <thread>

#include "mixpeft/error.h"
#include "mixpeft/tokenizer.h"
#include "tokenizers/test_util.h"

namespace mixpeft::tok {
namespace {

using testing::Case;
using testing::fixture_dir;
using testing::read_cases;

class Gpt2 : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { tok_ = Tokenizer::load(fixture_dir("gpt2")).release(); }
  static void TearDownTestSuite() {
    delete tok_;
    tok_ = nullptr;
  }
  static Tokenizer* tok_;
};
Tokenizer* Gpt2::tok_ = nullptr;

TEST_F(Gpt2, EveryFixtureCaseGivesHfIdsAndTokens) {
  auto cases = read_cases(fixture_dir("gpt2") + "/cases.jsonl");
  ASSERT_EQ(cases.size(), 46u);
  for (const Case& c : cases) {
    SCOPED_TRACE(c.text);
    EXPECT_EQ(tok_->encode(c.text, /*add_special_tokens=*/false), c.ids);
    if (c.has_tokens) {
      EXPECT_EQ(tok_->tokenize(c.text), c.tokens);
    }
  }
}

TEST_F(Gpt2, DecodeInvertsEncodeOnEveryFixtureCase) {
  for (const Case& c : read_cases(fixture_dir("gpt2") + "/cases.jsonl")) {
    SCOPED_TRACE(c.text);
    EXPECT_EQ(tok_->decode(c.ids), c.text);
  }
}

// Random valid UTF-8 over a mix of ASCII, whitespace (incl. U+0085, U+FEFF),
// Latin, CJK, combining marks and astral-plane characters.
std::string random_text(std::mt19937& rng, size_t chars) {
  static const char32_t ranges[][2] = {{0x20, 0x7E}, {0x09, 0x0D}, {0x80, 0x24F},
                                       {0x300, 0x36F}, {0x4E00, 0x4FFF}, {0x1F600, 0x1F64F},
                                       {0x2000, 0x206F}, {0xFEFF, 0xFEFF}, {0x10000, 0x10FFFF}};
  std::uniform_int_distribution<size_t> pick(0, std::size(ranges) - 1);
  std::string out;
  for (size_t i = 0; i < chars; ++i) {
    const auto& r = ranges[pick(rng)];
    char32_t cp = std::uniform_int_distribution<char32_t>(r[0], r[1])(rng);
    if (cp >= 0xD800 && cp <= 0xDFFF) cp = 'x';
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }
  return out;
}

TEST_F(Gpt2, DecodeInvertsEncodeOnRandomUtf8) {
  std::mt19937 rng(1234);
  for (int i = 0; i < 300; ++i) {
    std::string text = random_text(rng, 1 + i % 60);
    std::vector<TokenId> ids = tok_->encode(text, false);
    ASSERT_EQ(tok_->decode(ids), text) << "case " << i;
  }
}

TEST_F(Gpt2, ConcurrentEncodesAgree) {
  // encode is const and shares the BPE cache between threads.
  auto cases = read_cases(fixture_dir("gpt2") + "/cases.jsonl");
  std::vector<int> failures(4, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 20; ++round) {
        for (size_t i = t; i < cases.size() + t; ++i) {
          const Case& c = cases[i % cases.size()];
          if (tok_->encode(c.text, false) != c.ids) ++failures[t];
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures, std::vector<int>(4, 0));
}

TEST_F(Gpt2, SpecialTokensAndVocab) {
  EXPECT_EQ(tok_->kind(), ModelKind::kByteLevelBpe);
  EXPECT_EQ(tok_->vocab_size(), 50257u);
  EXPECT_EQ(tok_->token_to_id("<|endoftext|>"), 50256);
  EXPECT_EQ(tok_->token_to_id("Ġworld"), 995);  // from cases.jsonl ("Hello world")
  EXPECT_EQ(tok_->token_to_id("no such token"), -1);
  EXPECT_EQ(tok_->id_to_token(15496), "Hello");
  EXPECT_EQ(tok_->special_ids().eos, 50256);
  EXPECT_EQ(tok_->special_ids().bos, 50256);
  EXPECT_EQ(tok_->special_ids().pad, -1);
  // GPT-2 adds no special tokens around a text.
  EXPECT_EQ(tok_->encode("Hello world", true), (std::vector<TokenId>{15496, 995}));
  // skip_special_tokens drops <|endoftext|>; by default it stays.
  std::vector<TokenId> ids{50256, 2041, 11241, 2420};
  EXPECT_EQ(tok_->decode(ids), "<|endoftext|> special token text");
  EXPECT_EQ(tok_->decode(ids, true), " special token text");
  EXPECT_NE(tok_->description().find("byte-level BPE"), std::string::npos);
}

TEST_F(Gpt2, DecodeOfPartialUtf8GivesReplacementCharacter) {
  // "ä" is the byte-level symbol of the byte 0xE4, the lead byte of a
  // three-byte sequence: alone it is invalid UTF-8, which HF turns into U+FFFD.
  TokenId lead = tok_->token_to_id("ä");
  ASSERT_GE(lead, 0);
  EXPECT_EQ(tok_->decode({lead}), "\xEF\xBF\xBD");
  EXPECT_EQ(tok_->decode({tok_->token_to_id("a"), lead, tok_->token_to_id("b")}),
            "a\xEF\xBF\xBD" "b");
}

TEST_F(Gpt2, InvalidUtf8InputIsRejected) {
  try {
    tok_->encode("abc\xff", false);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("offset 3"), std::string::npos) << e.what();
  }
}

TEST_F(Gpt2, EncodesAMegabyteQuickly) {
  // Build ~1 MB from the fixture texts (varied scripts, whitespace, numbers).
  std::string corpus;
  auto cases = read_cases(fixture_dir("gpt2") + "/cases.jsonl");
  for (size_t i = 0; corpus.size() < (1u << 20); ++i) {
    corpus += cases[i % cases.size()].text;
    corpus += i % 7 == 0 ? "\n" : " ";
    corpus += std::to_string(i * 7919);  // numbers keep words from all hitting the cache
    corpus += " ";
  }
  auto t0 = std::chrono::steady_clock::now();
  std::vector<TokenId> ids = tok_->encode(corpus, false);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("[ speed    ] GPT-2 BPE: %.2f MB -> %zu tokens in %.3f s (%.1f MB/s)\n",
              corpus.size() / 1e6, ids.size(), secs, corpus.size() / 1e6 / secs);
  EXPECT_EQ(tok_->decode(ids), corpus);
}

// ---- in-memory construction and tokenizer.json round trip ------------------------

ByteLevelBpeSpec tiny_spec() {
  ByteLevelBpeSpec spec;
  // The 256 byte symbols, in GPT-2's order (printable ASCII first).
  for (int b = '!'; b <= '~'; ++b) spec.vocab.push_back(std::string(1, static_cast<char>(b)));
  auto gpt2 = Tokenizer::load(fixture_dir("gpt2"));
  for (TokenId id = 94; id < 256; ++id) spec.vocab.push_back(gpt2->id_to_token(id));
  spec.merges = {{"Ġ", "w"}, {"o", "r"}, {"Ġw", "or"}, {"l", "d"}, {"Ġwor", "ld"}, {"h", "e"}};
  for (auto& [a, b] : spec.merges) spec.vocab.push_back(a + b);
  spec.added_tokens.push_back(AddedToken{-1, "<eos>", true});
  spec.eos_token = "<eos>";
  spec.pad_token = "<eos>";
  spec.add_eos = true;
  return spec;
}

TEST(ByteLevelBpeSpec, MergesApplyAndTemplateAddsEos) {
  auto tok = Tokenizer::from_byte_level_bpe(tiny_spec());
  const TokenId eos = 256 + 6;  // appended after the 256 bytes and 6 merges
  EXPECT_EQ(tok->token_to_id("<eos>"), eos);
  EXPECT_EQ(tok->special_ids().eos, eos);
  // " world" -> "Ġworld" (merges 0, 1, 2, 3, 4 in order); "he" -> merge 5.
  EXPECT_EQ(tok->tokenize("he world"), (std::vector<std::string>{"he", "Ġworld"}));
  std::vector<TokenId> ids = tok->encode("he world<eos>", true);
  EXPECT_EQ(ids.size(), 4u);
  EXPECT_EQ(ids[2], eos);
  EXPECT_EQ(ids[3], eos);
  EXPECT_EQ(tok->decode(ids, true), "he world");
}

TEST(ByteLevelBpeSpec, SavedTokenizerJsonLoadsBackIdentical) {
  auto tok = Tokenizer::from_byte_level_bpe(tiny_spec());
  std::string dir = testing::make_temp_dir("spec");
  tok->save_pretrained(dir);
  auto back = Tokenizer::load(dir);
  EXPECT_EQ(back->to_tokenizer_json(), tok->to_tokenizer_json());
  EXPECT_EQ(back->special_ids().eos, tok->special_ids().eos);
  EXPECT_EQ(back->special_ids().pad, tok->special_ids().pad);
  for (const char* text : {"hello world", " world<eos>world", "héllo wörld 123"}) {
    EXPECT_EQ(back->encode(text), tok->encode(text)) << text;
  }
}

TEST(ByteLevelBpeSpec, Gpt2SavedAsTokenizerJsonGivesTheSameIds) {
  auto gpt2 = Tokenizer::load(fixture_dir("gpt2"));
  std::string dir = testing::make_temp_dir("gpt2");
  gpt2->save_pretrained(dir);
  auto back = Tokenizer::load(dir + "/tokenizer.json");
  EXPECT_EQ(back->vocab_size(), 50257u);
  for (const Case& c : read_cases(fixture_dir("gpt2") + "/cases.jsonl")) {
    EXPECT_EQ(back->encode(c.text, false), c.ids) << c.text;
  }
}

TEST(ByteLevelBpeSpec, SplitPatternIsUsed) {
  ByteLevelBpeSpec spec = tiny_spec();
  spec.split_pattern = R"(\p{N}|[^\p{N}]+)";  // digits one by one
  spec.add_eos = false;
  auto tok = Tokenizer::from_byte_level_bpe(spec);
  EXPECT_EQ(tok->tokenize("he12"), (std::vector<std::string>{"he", "1", "2"}));
}

TEST(ByteLevelBpeSpec, AddPrefixSpace) {
  ByteLevelBpeSpec spec = tiny_spec();
  spec.add_prefix_space = true;
  auto tok = Tokenizer::from_byte_level_bpe(spec);
  // "world" is read as " world" -> "Ġworld"; a leading space is not doubled.
  EXPECT_EQ(tok->tokenize("world"), (std::vector<std::string>{"Ġworld"}));
  EXPECT_EQ(tok->tokenize(" world"), (std::vector<std::string>{"Ġworld"}));
}

TEST(ByteLevelBpeSpec, BadPartsAreInvalidArguments) {
  ByteLevelBpeSpec spec = tiny_spec();
  spec.merges.push_back({"x", "nope"});
  try {
    Tokenizer::from_byte_level_bpe(spec);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("ByteLevelBpeSpec.merges[6]"), std::string::npos)
        << e.what();
  }
  spec = tiny_spec();
  spec.split_pattern = "(unclosed";
  EXPECT_THROW(Tokenizer::from_byte_level_bpe(spec), Error);
}

}  // namespace
}  // namespace mixpeft::tok
