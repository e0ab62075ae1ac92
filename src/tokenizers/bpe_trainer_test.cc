// BpeTrainer: merges derived by hand, merge for merge against Hugging Face
// tokenizers' BpeTrainer (tests/data/fixtures/tokenizers/bpe_train, made by
// scripts/make_bpe_train_fixture.sh), the saved files, and the errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <random>

#include <nlohmann/json.hpp>

#include "mixpeft/bpe_trainer.h"
#include "mixpeft/error.h"
#include "mixpeft/safetensors.h"
#include "mixpeft/tokenizer.h"
#include "tokenizers/byte_level.h"
#include "tokenizers/test_util.h"
#include "tokenizers/unicode.h"

namespace mixpeft::tok {
namespace {

using testing::fixture_dir;
using testing::make_temp_dir;
using testing::write_text;
using Merges = std::vector<std::pair<std::string, std::string>>;

// No special tokens and no template: ids 0..255 are the byte symbols.
BpeTrainerOptions plain(size_t vocab_size, uint64_t min_frequency) {
  BpeTrainerOptions o;
  o.vocab_size = vocab_size;
  o.min_frequency = min_frequency;
  o.special_tokens.clear();
  o.bos_token = o.eos_token = o.pad_token = "";
  o.add_bos = false;
  return o;
}

BpeTrainResult train_on(const std::string& text, const BpeTrainerOptions& o) {
  BpeTrainer trainer(o);
  trainer.feed_text(text);
  return trainer.train();
}

std::string read(const std::string& path) { return io::read_file(path); }

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  size_t begin = 0;
  while (begin < text.size()) {
    size_t nl = text.find('\n', begin);
    size_t end = nl == std::string::npos ? text.size() : nl + 1;
    lines.push_back(text.substr(begin, end - begin));
    begin = end;
  }
  return lines;
}

void expect_error(const std::function<void()>& f, ErrorKind kind,
                  std::initializer_list<std::string> parts) {
  try {
    f();
    ADD_FAILURE() << "no error thrown";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), kind) << e.what();
    for (const auto& p : parts) {
      EXPECT_NE(std::string(e.what()).find(p), std::string::npos)
          << "'" << p << "' not in: " << e.what();
    }
  }
}

// ---- merges derived by hand ------------------------------------------------

// HF's own trainer test: words with known counts (one per line, so the
// GPT-2 regex keeps each whole and "\n" is a word without pairs).
// Pair counts: r-e 3 (are x2, red), a-r 2, i-s 2, every other pair 1.
//   1. (r, e) -> "re": "are" becomes a|re, so (a, re) has 2 and (a, r) 0.
//   2. (a, re) and (i, s) both have 2: the tie goes to the smaller
//      (left id, right id); "a" < "i", so (a, re) -> "are".
//   3. (i, s) -> "is". Every pair left has 1 < min_frequency 2: stop.
TEST(BpeTrainer, HandCountedWordsGiveTheDerivedMerges) {
  const std::string text = "roses\nare\nare\nred\nvoilets\nblue\nBERT\nis\nis\nbig\nand\nso\n";
  BpeTrainResult r = train_on(text, plain(1000, 2));
  EXPECT_EQ(r.spec.merges, (Merges{{"r", "e"}, {"a", "re"}, {"i", "s"}}));
  EXPECT_EQ(r.stats.stop_reason, "min_frequency");
  EXPECT_EQ(r.stats.vocab_size, 259u);
  EXPECT_EQ(r.tokenizer->token_to_id("re"), 256);
  EXPECT_EQ(r.tokenizer->token_to_id("are"), 257);
  EXPECT_EQ(r.tokenizer->tokenize("are is red"),
            (std::vector<std::string>{"are", "Ġ", "is", "Ġ", "re", "d"}));
}

// The textbook example "aaabdaaabac" (one word). Pairs: a-a 4, a-b 2, rest 1.
//   1. (a, a) -> "aa"; "aaa" merges left to right: aa|a, so the word is
//      aa a b d aa a b a c, with (aa, a) 2 and (a, b) 2.
//   2. Tie at 2: "a" is older than "aa", so (a, b) -> "ab": aa ab d aa ab a c.
//   3. (aa, ab) 2 -> "aaab": aaab d aaab a c; every pair now has 1.
// With min_frequency 1 the ties at 1 go by the left token's id, oldest first:
//   4. (a, c) (a is a byte)  5. (d, aaab)  6. (aaab, daaab)  7. the rest.
TEST(BpeTrainer, TextbookExampleAndTheTieBreak) {
  BpeTrainResult r = train_on("aaabdaaabac", plain(1000, 2));
  EXPECT_EQ(r.spec.merges, (Merges{{"a", "a"}, {"a", "b"}, {"aa", "ab"}}));
  EXPECT_EQ(r.tokenizer->tokenize("aaabdaaabac"),
            (std::vector<std::string>{"aaab", "d", "aaab", "a", "c"}));

  r = train_on("aaabdaaabac", plain(1000, 1));
  EXPECT_EQ(r.spec.merges, (Merges{{"a", "a"},
                                   {"a", "b"},
                                   {"aa", "ab"},
                                   {"a", "c"},
                                   {"d", "aaab"},
                                   {"aaab", "daaab"},
                                   {"aaabdaaab", "ac"}}));
  EXPECT_EQ(r.stats.stop_reason, "no pairs left");
  EXPECT_EQ(r.tokenizer->tokenize("aaabdaaabac"), (std::vector<std::string>{"aaabdaaabac"}));
}

// "aaa" x3: (a, a) is counted twice per word (6) but merges once per word,
// left to right; then (aa, a) has 3.
TEST(BpeTrainer, OverlappingPairsMergeLeftToRight) {
  BpeTrainResult r = train_on("aaa\naaa\naaa\n", plain(1000, 2));
  EXPECT_EQ(r.spec.merges, (Merges{{"a", "a"}, {"aa", "a"}}));
  EXPECT_EQ(r.stats.words, 6u);  // "aaa" and "\n", three times
  EXPECT_EQ(r.stats.distinct_words, 2u);
  EXPECT_EQ(r.stats.tokens, 6u);  // "aaa" is one token now
}

// ---- against Hugging Face --------------------------------------------------

class HfFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    corpus_path_ = fixture_dir("bpe_train") + "/corpus.txt";
    auto doc = nlohmann::json::parse(read(fixture_dir("bpe_train") + "/hf_tokenizer.json"));
    for (const auto& m : doc["model"]["merges"]) {
      hf_merges_.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
    }
    ASSERT_EQ(hf_merges_.size(), 791u);
  }
  BpeTrainResult train(const BpeTrainerOptions& o) const {
    BpeTrainer trainer(o);
    trainer.feed_file(corpus_path_);
    return trainer.train();
  }
  std::string corpus_path_;
  Merges hf_merges_;
};

// HF learned 791 merges with min_frequency 0 and room for 30000 tokens, so
// its run ends when every word is one token: every count tie along the way
// (hundreds of pairs seen once) was broken the same way.
TEST_F(HfFixture, EveryMergeEqualsHuggingFaces) {
  BpeTrainResult r = train(plain(30000, 0));
  EXPECT_EQ(r.stats.stop_reason, "no pairs left");
  ASSERT_EQ(r.spec.merges.size(), hf_merges_.size());
  for (size_t i = 0; i < hf_merges_.size(); ++i) {
    ASSERT_EQ(r.spec.merges[i], hf_merges_[i]) << "merge " << i;
  }
  // Same segmentation of the corpus as HF's own tokenizer.json gives (ids
  // differ: HF's alphabet holds only the bytes it saw).
  auto hf = Tokenizer::load(fixture_dir("bpe_train") + "/hf_tokenizer.json");
  for (const auto& line : split_lines(read(corpus_path_))) {
    ASSERT_EQ(r.tokenizer->tokenize(line), hf->tokenize(line)) << line;
  }
}

// A smaller vocabulary stops early and keeps HF's first merges.
TEST_F(HfFixture, VocabSizeIsRespectedAndKeepsTheFirstMerges) {
  BpeTrainerOptions o = plain(0, 0);
  o.special_tokens = {"<s>", "</s>"};
  o.vocab_size = 2 + 256 + 100;
  BpeTrainResult r = train(o);
  EXPECT_EQ(r.stats.stop_reason, "vocab_size reached");
  EXPECT_EQ(r.tokenizer->vocab_size(), o.vocab_size);
  EXPECT_EQ(r.spec.merges, Merges(hf_merges_.begin(), hf_merges_.begin() + 100));
}

// min_frequency 2 stops at HF's first merge of a pair seen once.
TEST_F(HfFixture, MinFrequencyStopsAtTheFirstRarePair) {
  BpeTrainResult r = train(plain(30000, 2));
  EXPECT_EQ(r.stats.stop_reason, "min_frequency");
  ASSERT_LT(r.spec.merges.size(), hf_merges_.size());
  EXPECT_EQ(r.spec.merges, Merges(hf_merges_.begin(), hf_merges_.begin() + r.spec.merges.size()));
}

// stats.tokens is what encoding the input gives, line by line.
TEST_F(HfFixture, TokenCountIsTheEncodedInputLength) {
  BpeTrainResult r = train(plain(600, 2));
  const std::string corpus = read(corpus_path_);
  uint64_t tokens = 0;
  for (const auto& line : split_lines(corpus)) tokens += r.tokenizer->encode(line, false).size();
  EXPECT_EQ(r.stats.tokens, tokens);
  EXPECT_EQ(r.stats.bytes, corpus.size());
  EXPECT_EQ(r.stats.lines, split_lines(corpus).size());
  EXPECT_FALSE(r.stats.truncated);
  EXPECT_LT(r.stats.tokens, corpus.size() / 2);  // 600 tokens already halve the length
}

// ---- the tokenizer it builds --------------------------------------------------

TEST(BpeTrainer, SpecialTokensTakeTheFirstIdsAndBosIsAdded) {
  BpeTrainResult r = train_on("hello hello world\nhello world\n", BpeTrainerOptions{});
  const Tokenizer& tok = *r.tokenizer;
  EXPECT_EQ(tok.token_to_id("<s>"), 0);
  EXPECT_EQ(tok.token_to_id("</s>"), 1);
  EXPECT_EQ(tok.token_to_id("<pad>"), 2);
  EXPECT_EQ(tok.token_to_id("!"), 3);    // the byte symbols follow, in code point order,
  EXPECT_EQ(tok.token_to_id("Ġ"), 223);  // which is GPT-2's order ("Ġ" = 220 there)
  // Pairs of "hello" (x3) tie at 3; the smallest left id goes first:
  // e-l, then h-el (h < l < el), l-o, hel-lo.
  EXPECT_EQ(r.spec.merges[0], (std::pair<std::string, std::string>{"e", "l"}));
  EXPECT_EQ(tok.token_to_id("hello"), 3 + 256 + 3);
  EXPECT_EQ(tok.special_ids().bos, 0);
  EXPECT_EQ(tok.special_ids().eos, 1);
  EXPECT_EQ(tok.special_ids().pad, 2);
  EXPECT_EQ(tok.model_max_length(), 256u);
  for (const auto& t : tok.added_tokens()) EXPECT_TRUE(t.special) << t.content;

  std::vector<TokenId> ids = tok.encode("hello world</s>");
  ASSERT_GE(ids.size(), 3u);
  EXPECT_EQ(ids.front(), 0);  // bos from the template
  EXPECT_EQ(ids.back(), 1);   // "</s>" in the text is the special token
  EXPECT_EQ(tok.decode(ids, /*skip_special_tokens=*/true), "hello world");
  EXPECT_EQ(tok.decode(ids), "<s>hello world</s>");
}

TEST(BpeTrainer, AddEosAndOtherRoles) {
  BpeTrainerOptions o;
  o.special_tokens = {"<unk>", "<s>", "</s>", "<|sep|>"};
  o.unk_token = "<unk>";
  o.pad_token = "";
  o.add_bos = false;
  o.add_eos = true;
  BpeTrainResult r = train_on("abc abc\n", o);
  EXPECT_EQ(r.tokenizer->special_ids().unk, 0);
  EXPECT_EQ(r.tokenizer->special_ids().eos, 2);
  EXPECT_EQ(r.tokenizer->special_ids().pad, -1);
  EXPECT_EQ(r.tokenizer->token_to_id("<|sep|>"), 3);
  std::vector<TokenId> ids = r.tokenizer->encode("abc");
  EXPECT_EQ(ids.back(), 2);
  EXPECT_NE(ids.front(), 1);
}

// Every byte has a token, so any byte string can be spelled; text round-trips.
TEST(BpeTrainer, EveryByteRoundTrips) {
  BpeTrainResult r = train_on(read(fixture_dir("bpe_train") + "/corpus.txt"), BpeTrainerOptions{});
  const Tokenizer& tok = *r.tokenizer;
  // The 256 byte tokens spell the 256 bytes (also the ones UTF-8 never uses).
  std::string all;
  for (int b = 0; b < 256; ++b) {
    std::string token = tok.id_to_token(3 + b);
    std::string bytes;
    detail::append_token_bytes(token, bytes);
    ASSERT_EQ(bytes.size(), 1u) << token;
    all += bytes;
  }
  std::string sorted = all;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(std::unique(sorted.begin(), sorted.end()), sorted.end());  // 256 different bytes
  // Text with characters the corpus never had: each comes back exactly.
  std::mt19937 rng(7);
  std::uniform_int_distribution<uint32_t> cp_dist(1, 0x10FFFF);
  for (int trial = 0; trial < 200; ++trial) {
    std::string text;
    for (int i = 0; i < 20; ++i) {
      char32_t cp = cp_dist(rng) % (trial % 2 ? 0x80 : 0x110000);
      if (cp == 0 || (cp >= 0xD800 && cp <= 0xDFFF)) cp = ' ';
      detail::append_utf8(text, cp);
    }
    EXPECT_EQ(tok.decode(tok.encode(text, false)), text);
    EXPECT_EQ(tok.decode(tok.encode(text), /*skip_special_tokens=*/true), text);
  }
  // Invalid UTF-8 is refused by encode (as HF, whose input is a str), not garbled.
  expect_error([&] { tok.encode(std::string("ok\xff", 3)); }, ErrorKind::kInvalidArgument, {});
}

TEST(BpeTrainer, SavedFolderLoadsBackAndEncodesIdentically) {
  BpeTrainResult r = train_on(read(fixture_dir("bpe_train") + "/corpus.txt"), BpeTrainerOptions{});
  const std::string dir = make_temp_dir("bpetrain") + "/tok";
  r.tokenizer->save_pretrained(dir);
  auto back = Tokenizer::load(dir);
  EXPECT_EQ(back->to_tokenizer_json(), r.tokenizer->to_tokenizer_json());
  EXPECT_EQ(back->vocab_size(), r.tokenizer->vocab_size());
  EXPECT_EQ(back->special_ids().bos, 0);
  EXPECT_EQ(back->special_ids().pad, 2);
  EXPECT_EQ(back->model_max_length(), 256u);
  for (const auto& line : split_lines(read(fixture_dir("bpe_train") + "/corpus.txt"))) {
    ASSERT_EQ(back->encode(line), r.tokenizer->encode(line)) << line;
  }

  // The layout HF's tokenizer.json and tokenizer_config.json have.
  auto doc = nlohmann::json::parse(read(dir + "/tokenizer.json"));
  EXPECT_EQ(doc["model"]["type"], "BPE");
  EXPECT_EQ(doc["model"]["vocab"]["<s>"], 0);
  EXPECT_EQ(doc["model"]["vocab"]["!"], 3);
  EXPECT_EQ(doc["model"]["merges"].size(), r.spec.merges.size());
  EXPECT_EQ(doc["pre_tokenizer"]["type"], "ByteLevel");
  EXPECT_EQ(doc["pre_tokenizer"]["add_prefix_space"], false);
  EXPECT_EQ(doc["pre_tokenizer"]["use_regex"], true);
  EXPECT_EQ(doc["decoder"]["type"], "ByteLevel");
  EXPECT_EQ(doc["post_processor"]["type"], "TemplateProcessing");
  EXPECT_EQ(doc["post_processor"]["single"][0]["SpecialToken"]["id"], "<s>");
  EXPECT_EQ(doc["post_processor"]["single"][1]["Sequence"]["id"], "A");
  EXPECT_EQ(doc["post_processor"]["special_tokens"]["<s>"]["ids"][0], 0);
  ASSERT_EQ(doc["added_tokens"].size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(doc["added_tokens"][i]["id"], i);
    EXPECT_EQ(doc["added_tokens"][i]["special"], true);
  }
  auto cfg = nlohmann::json::parse(read(dir + "/tokenizer_config.json"));
  EXPECT_EQ(cfg["tokenizer_class"], "PreTrainedTokenizerFast");
  EXPECT_EQ(cfg["bos_token"], "<s>");
  EXPECT_EQ(cfg["eos_token"], "</s>");
  EXPECT_EQ(cfg["pad_token"], "<pad>");
  EXPECT_TRUE(cfg["unk_token"].is_null());
  EXPECT_EQ(cfg["model_max_length"], 256);
}

TEST(BpeTrainer, SplitPatternAndPrefixSpaceAreUsedForTraining) {
  BpeTrainerOptions o = plain(1000, 2);
  o.split_pattern = R"(\p{N}| ?[^\s\p{N}]+|\s+)";  // every digit alone
  o.add_prefix_space = true;
  BpeTrainResult r = train_on("year 2024 2024 2024\nyear\n", o);
  for (const auto& [a, b] : r.spec.merges) {
    EXPECT_FALSE(isdigit(static_cast<unsigned char>(a.back())) &&
                 isdigit(static_cast<unsigned char>(b[0])))
        << a << " " << b;
  }
  // "year" at the start of a line was read as " year": one word with the other.
  EXPECT_EQ(r.tokenizer->tokenize("year"), (std::vector<std::string>{"Ġyear"}));
}

// ---- determinism and input handling ---------------------------------------------

TEST(BpeTrainer, SameInputSameTokenizer) {
  const std::string corpus = read(fixture_dir("bpe_train") + "/corpus.txt");
  BpeTrainerOptions o;
  o.vocab_size = 700;
  o.min_frequency = 1;
  const std::string once = train_on(corpus, o).tokenizer->to_tokenizer_json();
  EXPECT_EQ(train_on(corpus, o).tokenizer->to_tokenizer_json(), once);
  // Fed in two parts split at a line, and through a file: the same.
  const size_t cut = corpus.find('\n', corpus.size() / 2) + 1;
  BpeTrainer parts(o);
  parts.feed_text(corpus.substr(0, cut));
  parts.feed_text(corpus.substr(cut));
  EXPECT_EQ(parts.train().tokenizer->to_tokenizer_json(), once);
  BpeTrainer file(o);
  file.feed_file(fixture_dir("bpe_train") + "/corpus.txt");
  EXPECT_EQ(file.train().tokenizer->to_tokenizer_json(), once);
}

// Files are read in 1 MiB blocks; a line across two blocks is one line.
TEST(BpeTrainer, FileLargerThanOneBlock) {
  const std::string corpus = read(fixture_dir("bpe_train") + "/corpus.txt") + "\n";
  std::string big;
  while (big.size() < (3u << 20) / 2) big += corpus;
  const std::string path = make_temp_dir("bpetrain") + "/big.txt";
  write_text(path, big);
  BpeTrainer from_file(plain(400, 2)), from_text(plain(400, 2));
  from_file.feed_file(path);
  from_text.feed_text(big);
  BpeTrainResult a = from_file.train(), b = from_text.train();
  EXPECT_EQ(a.stats.bytes, big.size());
  EXPECT_EQ(a.stats.lines, b.stats.lines);
  EXPECT_EQ(a.stats.words, b.stats.words);
  EXPECT_EQ(a.spec.merges, b.spec.merges);
}

TEST(BpeTrainer, MaxInputBytesKeepsWholeLines) {
  BpeTrainerOptions o = plain(258, 1);
  o.max_input_bytes = 10;
  BpeTrainer trainer(o);
  EXPECT_FALSE(trainer.feed_text("abcd\nefgh\nijkl\n"));  // 5 + 5 bytes fit, the third line not
  EXPECT_FALSE(trainer.feed_text("more\n"));              // ignored from now on
  BpeTrainResult r = trainer.train();
  EXPECT_EQ(r.stats.bytes, 10u);
  EXPECT_EQ(r.stats.lines, 2u);
  EXPECT_TRUE(r.stats.truncated);
  // All pairs seen once: a-b (the oldest left token), then c-d (c < e < ab).
  EXPECT_EQ(r.spec.merges, (Merges{{"a", "b"}, {"c", "d"}}));
}

// ---- errors ----------------------------------------------------------------------

TEST(BpeTrainer, BadOptionsAreInvalidArguments) {
  BpeTrainerOptions o;
  o.vocab_size = 258;
  expect_error([&] { BpeTrainer t(o); }, ErrorKind::kInvalidArgument,
               {"BpeTrainer: vocab_size 258", "3 special tokens + 256 byte symbols",
                "at least 259"});
  o = BpeTrainerOptions{};
  o.pad_token = "[PAD]";
  expect_error([&] { BpeTrainer t(o); }, ErrorKind::kInvalidArgument,
               {"pad_token '[PAD]' is not one of the special tokens"});
  o = BpeTrainerOptions{};
  o.special_tokens.push_back("<s>");
  expect_error([&] { BpeTrainer t(o); }, ErrorKind::kInvalidArgument, {"'<s>' is listed twice"});
  o = BpeTrainerOptions{};
  o.special_tokens.push_back("a");
  expect_error([&] { BpeTrainer t(o); }, ErrorKind::kInvalidArgument,
               {"'a' is one of the 256 byte symbols"});
  o = BpeTrainerOptions{};
  o.special_tokens.push_back("");
  expect_error([&] { BpeTrainer t(o); }, ErrorKind::kInvalidArgument, {"special_tokens[3]"});
  o = BpeTrainerOptions{};
  o.bos_token = "";
  expect_error([&] { BpeTrainer t(o); }, ErrorKind::kInvalidArgument, {"add_bos needs a bos_token"});
  o = BpeTrainerOptions{};
  o.split_pattern = "(unclosed";
  expect_error([&] { BpeTrainer t(o); }, ErrorKind::kInvalidArgument, {"split_pattern"});
}

TEST(BpeTrainer, BadInputIsReportedWithItsPlace) {
  BpeTrainer trainer({});
  expect_error([&] { trainer.train(); }, ErrorKind::kInvalidArgument,
               {"BpeTrainer: no text to train on", "0 bytes"});
  trainer.feed_text("");
  expect_error([&] { trainer.train(); }, ErrorKind::kInvalidArgument, {"no text to train on"});

  const std::string dir = make_temp_dir("bpetrain");
  expect_error([&] { trainer.feed_file(dir + "/missing.txt"); }, ErrorKind::kNotFound,
               {dir + "/missing.txt: no such file"});
  expect_error([&] { trainer.feed_file(dir); }, ErrorKind::kInvalidArgument, {"is a folder"});
  write_text(dir + "/latin1.txt", "fine\nalso fine\ncaf\xe9\n");
  expect_error([&] { trainer.feed_file(dir + "/latin1.txt"); }, ErrorKind::kInvalidArgument,
               {dir + "/latin1.txt:3: not UTF-8", "column 4"});
}

}  // namespace
}  // namespace mixpeft::tok
