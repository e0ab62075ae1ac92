// Bad inputs: each error has the right kind and names the file, line or field.
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>

#include <nlohmann/json.hpp>

#include "core/test_util.h"
#include "mixpeft/error.h"
#include "mixpeft/tokenizer.h"
#include "tokenizers/test_util.h"

namespace mixpeft::tok {
namespace {

using mixpeft::testing::throws_error;
using testing::make_temp_dir;
using testing::write_text;

// vocab.json with the 256 GPT-2 byte symbols plus "Ġt", "he".
std::string small_vocab_json() {
  auto gpt2 = Tokenizer::load(testing::fixture_dir("gpt2"));
  nlohmann::json v;
  for (TokenId id = 0; id < 256; ++id) v[gpt2->id_to_token(id)] = id;
  v["Ġt"] = 256;
  v["he"] = 257;
  return v.dump();
}

TEST(Errors, MissingPathIsNotFound) {
  std::string path = "/nonexistent/mixpeft/tokenizer";
  EXPECT_TRUE(throws_error([&] { Tokenizer::load(path); }, ErrorKind::kNotFound, {path}));
}

TEST(Errors, EmptyFolderIsNotFound) {
  std::string dir = make_temp_dir("empty");
  EXPECT_TRUE(throws_error([&] { Tokenizer::load(dir); }, ErrorKind::kNotFound, {dir, "tokenizer.json"}));
}

TEST(Errors, VocabJsonWithoutMergesIsNotFound) {
  std::string dir = make_temp_dir("nomerges");
  write_text(dir + "/vocab.json", small_vocab_json());
  EXPECT_TRUE(throws_error([&] { Tokenizer::load(dir); }, ErrorKind::kNotFound, {"merges.txt"}));
}

TEST(Errors, MalformedMergesLineNamesItsLine) {
  std::string dir = make_temp_dir("badmerges");
  write_text(dir + "/vocab.json", small_vocab_json());
  write_text(dir + "/merges.txt", "#version: 0.2\nĠ t\nh e x\n");
  EXPECT_TRUE(throws_error([&] { Tokenizer::load(dir); }, ErrorKind::kCorrupt,
                           {dir + "/merges.txt:3:", "expected two tokens", "'h e x'"}));
}

TEST(Errors, MergeOfUnknownTokenNamesItsLine) {
  std::string dir = make_temp_dir("unknownmerge");
  write_text(dir + "/vocab.json", small_vocab_json());
  write_text(dir + "/merges.txt", "#version: 0.2\nĠ t\nh e\nt h\n");  // "th" is not in vocab
  EXPECT_TRUE(throws_error([&] { Tokenizer::load(dir); }, ErrorKind::kCorrupt,
                           {"merges.txt:4:", "'th' is not in the vocabulary"}));
}

TEST(Errors, MalformedVocabJson) {
  std::string dir = make_temp_dir("badvocab");
  write_text(dir + "/vocab.json", "{\"a\": 0, \"b\": ");
  write_text(dir + "/merges.txt", "#version: 0.2\n");
  EXPECT_TRUE(throws_error([&] { Tokenizer::load(dir); }, ErrorKind::kCorrupt, {dir + "/vocab.json", "invalid JSON"}));
  write_text(dir + "/vocab.json", R"({"a": 0, "b": "one"})");
  EXPECT_TRUE(throws_error([&] { Tokenizer::load(dir); }, ErrorKind::kCorrupt, {"vocab.json", "token 'b'"}));
  write_text(dir + "/vocab.json", "[1, 2]");
  EXPECT_TRUE(throws_error([&] { Tokenizer::load(dir); }, ErrorKind::kCorrupt, {"vocab.json", "object"}));
}

nlohmann::json minimal_tokenizer_json() {
  return {{"version", "1.0"},
          {"added_tokens", nlohmann::json::array()},
          {"normalizer", nullptr},
          {"pre_tokenizer", {{"type", "BertPreTokenizer"}}},
          {"post_processor", nullptr},
          {"decoder", nullptr},
          {"model",
           {{"type", "WordPiece"},
            {"unk_token", "[UNK]"},
            {"continuing_subword_prefix", "##"},
            {"max_input_chars_per_word", 100},
            {"vocab", {{"[UNK]", 0}, {"a", 1}, {"##b", 2}}}}}};
}

std::string write_tokenizer_json(const nlohmann::json& j, const std::string& tag) {
  std::string dir = make_temp_dir(tag);
  write_text(dir + "/tokenizer.json", j.dump());
  return dir;
}

TEST(Errors, MinimalTokenizerJsonWorks) {
  auto tok = Tokenizer::load(write_tokenizer_json(minimal_tokenizer_json(), "minimal"));
  EXPECT_EQ(tok->encode("ab a c"), (std::vector<TokenId>{1, 2, 1, 0}));
  EXPECT_EQ(tok->special_ids().unk, 0);
}

TEST(Errors, UnknownModelTypeIsUnsupported) {
  nlohmann::json j = minimal_tokenizer_json();
  j["model"]["type"] = "Unigram";
  std::string dir = write_tokenizer_json(j, "unigram");
  EXPECT_TRUE(throws_error([&] { Tokenizer::load(dir); }, ErrorKind::kUnsupported,
                           {"tokenizer.json: model.type", "'Unigram'"}));
}

TEST(Errors, UnknownComponentIsUnsupported) {
  nlohmann::json j = minimal_tokenizer_json();
  j["pre_tokenizer"] = {{"type", "Sequence"},
                        {"pretokenizers", {{{"type", "Metaspace"}, {"replacement", "_"}}}}};
  std::string dir = write_tokenizer_json(j, "metaspace");
  EXPECT_TRUE(throws_error([&] { Tokenizer::load(dir); }, ErrorKind::kUnsupported,
                           {"pre_tokenizer.pretokenizers[0]", "'Metaspace'"}));
  j = minimal_tokenizer_json();
  j["normalizer"] = {{"type", "Precompiled"}};
  dir = write_tokenizer_json(j, "precompiled");
  EXPECT_TRUE(throws_error([&] { Tokenizer::load(dir); }, ErrorKind::kUnsupported,
                           {"tokenizer.json: normalizer", "'Precompiled'"}));
}

TEST(Errors, BrokenTokenizerJsonFields) {
  nlohmann::json j = minimal_tokenizer_json();
  j.erase("model");
  std::string dir = write_tokenizer_json(j, "nomodel");
  EXPECT_TRUE(throws_error([&] { Tokenizer::load(dir); }, ErrorKind::kCorrupt, {"missing field 'model'"}));
  j = minimal_tokenizer_json();
  j["model"]["unk_token"] = "<unk>";
  dir = write_tokenizer_json(j, "badunk");
  EXPECT_TRUE(throws_error([&] { Tokenizer::load(dir); }, ErrorKind::kCorrupt, {"model.unk_token", "'<unk>'"}));
  j = minimal_tokenizer_json();
  j["added_tokens"] = {{{"content", "[X]"}}};
  dir = write_tokenizer_json(j, "badadded");
  EXPECT_TRUE(throws_error([&] { Tokenizer::load(dir); }, ErrorKind::kCorrupt, {"added_tokens[0]", "'id'"}));
  dir = make_temp_dir("notjson");
  write_text(dir + "/tokenizer.json", "not json");
  EXPECT_TRUE(throws_error([&] { Tokenizer::load(dir); }, ErrorKind::kCorrupt,
                           {dir + "/tokenizer.json", "invalid JSON"}));
}

TEST(Errors, BadBpeMergeInTokenizerJsonNamesItsIndex) {
  nlohmann::json j = minimal_tokenizer_json();
  j["model"] = {{"type", "BPE"},
                {"vocab", nlohmann::json::parse(small_vocab_json())},
                {"merges", {"Ġ t", "h e", "onlyone"}}};
  j["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}};
  std::string dir = write_tokenizer_json(j, "badbpe");
  EXPECT_TRUE(throws_error([&] { Tokenizer::load(dir); }, ErrorKind::kCorrupt, {"model.merges[2]", "'onlyone'"}));
}

TEST(Errors, MalformedTokenizerConfig) {
  std::string dir = write_tokenizer_json(minimal_tokenizer_json(), "badconfig");
  write_text(dir + "/tokenizer_config.json", "{\"pad_token\": ");
  EXPECT_TRUE(throws_error([&] { Tokenizer::load(dir); }, ErrorKind::kCorrupt,
                           {"tokenizer_config.json", "invalid JSON"}));
  write_text(dir + "/tokenizer_config.json", R"({"pad_token": 5})");
  EXPECT_TRUE(throws_error([&] { Tokenizer::load(dir); }, ErrorKind::kCorrupt, {"tokenizer_config.json: pad_token"}));
}

TEST(Errors, UnknownIdIsInvalidArgument) {
  auto tok = Tokenizer::load(write_tokenizer_json(minimal_tokenizer_json(), "ids"));
  EXPECT_TRUE(throws_error([&] { tok->id_to_token(7); }, ErrorKind::kInvalidArgument, {"id 7"}));
  // decode skips ids without a token, as HF does; with no decoder in
  // tokenizer.json, HF joins the tokens with spaces.
  EXPECT_EQ(tok->decode({1, 7, 2}), "a ##b");
}

}  // namespace
}  // namespace mixpeft::tok
