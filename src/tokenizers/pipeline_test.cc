// tokenizer.json components on small hand-written files: split behaviours
// (HF's documented "the-final--countdown" example), templates inside a
// Sequence post-processor, normalizers and added-token flags.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "mixpeft/tokenizer.h"
#include "tokenizers/test_util.h"

namespace mixpeft::tok {
namespace {

using json = nlohmann::json;
using Ids = std::vector<TokenId>;

// A WordPiece tokenizer.json whose vocabulary has every piece of the HF
// SplitDelimiterBehavior examples as a whole token.
json wordpiece_json(json pre_tokenizer) {
  json vocab = {{"[UNK]", 0}, {"the", 1},     {"-", 2},          {"final", 3},   {"countdown", 4},
                {"the-", 5},  {"final-", 6},  {"-final", 7},     {"-countdown", 8}, {"--", 9},
                {"[BOS]", 10}, {"[EOS]", 11}, {"cafe", 12},      {"café", 13}};
  return {{"version", "1.0"},
          {"added_tokens", json::array()},
          {"normalizer", nullptr},
          {"pre_tokenizer", std::move(pre_tokenizer)},
          {"post_processor", nullptr},
          {"decoder", nullptr},
          {"model",
           {{"type", "WordPiece"},
            {"unk_token", "[UNK]"},
            {"continuing_subword_prefix", "##"},
            {"max_input_chars_per_word", 100},
            {"vocab", vocab}}}};
}

std::unique_ptr<Tokenizer> load_json(const json& j) {
  std::string dir = testing::make_temp_dir("pipeline");
  testing::write_text(dir + "/tokenizer.json", j.dump());
  return Tokenizer::load(dir);
}

json split_on_dash(const char* behavior, bool invert = false) {
  return {{"type", "Split"},
          {"pattern", {{"String", "-"}}},
          {"behavior", behavior},
          {"invert", invert}};
}

TEST(SplitBehavior, MatchesHfDocumentedExample) {
  // HF docs, SplitDelimiterBehavior on "the-final--countdown" with "-":
  //   Removed            the, final, countdown
  //   Isolated           the, -, final, -, -, countdown
  //   MergedWithPrevious the-, final-, -, countdown
  //   MergedWithNext     the, -final, -, -countdown
  //   Contiguous         the, -, final, --, countdown
  const char* text = "the-final--countdown";
  EXPECT_EQ(load_json(wordpiece_json(split_on_dash("Removed")))->encode(text), (Ids{1, 3, 4}));
  EXPECT_EQ(load_json(wordpiece_json(split_on_dash("Isolated")))->encode(text),
            (Ids{1, 2, 3, 2, 2, 4}));
  EXPECT_EQ(load_json(wordpiece_json(split_on_dash("MergedWithPrevious")))->encode(text),
            (Ids{5, 6, 2, 4}));
  EXPECT_EQ(load_json(wordpiece_json(split_on_dash("MergedWithNext")))->encode(text),
            (Ids{1, 7, 2, 8}));
  EXPECT_EQ(load_json(wordpiece_json(split_on_dash("Contiguous")))->encode(text),
            (Ids{1, 2, 3, 9, 4}));
  // invert: the words are the delimiters, so Removed keeps only the dashes.
  EXPECT_EQ(load_json(wordpiece_json(split_on_dash("Removed", true)))->encode(text),
            (Ids{2, 2, 2}));
}

TEST(PostProcessor, TemplateInsideASequence) {
  // Llama-3's layout: Sequence[ByteLevel, TemplateProcessing].
  json j = wordpiece_json(split_on_dash("Isolated"));
  json special = [](const char* name, int id) {
    return json{{"id", name}, {"ids", {id}}, {"tokens", {name}}};
  }("[BOS]", 10);
  json eos = {{"id", "[EOS]"}, {"ids", {11}}, {"tokens", {"[EOS]"}}};
  json tmpl = {
      {"type", "TemplateProcessing"},
      {"single", {{{"SpecialToken", {{"id", "[BOS]"}, {"type_id", 0}}}},
                  {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
                  {{"SpecialToken", {{"id", "[EOS]"}, {"type_id", 0}}}}}},
      {"pair", {{{"SpecialToken", {{"id", "[BOS]"}, {"type_id", 0}}}},
                {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
                {{"Sequence", {{"id", "B"}, {"type_id", 1}}}},
                {{"SpecialToken", {{"id", "[EOS]"}, {"type_id", 1}}}}}},
      {"special_tokens", {{"[BOS]", special}, {"[EOS]", eos}}}};
  j["post_processor"] = {{"type", "Sequence"},
                         {"processors", {{{"type", "ByteLevel"}, {"trim_offsets", false}}, tmpl}}};
  auto tok = load_json(j);
  EXPECT_EQ(tok->encode("the-final"), (Ids{10, 1, 2, 3, 11}));
  Encoding e = tok->encode_pair("the", "final");
  EXPECT_EQ(e.ids, (Ids{10, 1, 3, 11}));
  EXPECT_EQ(e.type_ids, (std::vector<int32_t>{0, 0, 1, 1}));
  // No config: bos/eos are taken from the template's ends.
  EXPECT_EQ(tok->special_ids().bos, 10);
  EXPECT_EQ(tok->special_ids().eos, 11);
  EXPECT_EQ(tok->decode(tok->encode("the"), true), "the");
}

TEST(Normalizer, SequenceOfNfdAndStripAccentsAndLowercase) {
  json j = wordpiece_json({{"type", "BertPreTokenizer"}});
  j["normalizer"] = {{"type", "Sequence"},
                     {"normalizers", {{{"type", "NFD"}}, {{"type", "StripAccents"}},
                                      {{"type", "Lowercase"}}}}};
  EXPECT_EQ(load_json(j)->encode("CAFÉ the"), (Ids{12, 1}));
  j["normalizer"] = {{"type", "NFC"}};
  EXPECT_EQ(load_json(j)->encode("cafe\xCC\x81"), (Ids{13}));  // e + U+0301 -> é
}

TEST(AddedTokens, FlagsShapeTheMatch) {
  json j = wordpiece_json({{"type", "BertPreTokenizer"}});
  j["added_tokens"] = {
      {{"id", 20}, {"content", "<x>"}, {"special", true}, {"lstrip", true}, {"rstrip", true}},
      {{"id", 21}, {"content", "fin"}, {"special", false}, {"single_word", true}},
      {{"id", 22}, {"content", "<xy>"}, {"special", true}}};
  auto tok = load_json(j);
  // Longest match wins at a position: "<xy>" over "<x>".
  EXPECT_EQ(tok->encode("the<xy>the"), (Ids{1, 22, 1}));
  // single_word: "fin" inside "final" is not a match, on its own it is.
  EXPECT_EQ(tok->encode("final fin"), (Ids{3, 21}));
  // lstrip/rstrip swallow the spaces around "<x>".
  EXPECT_EQ(tok->encode("the  <x>  the"), (Ids{1, 20, 1}));
  EXPECT_EQ(tok->vocab_size(), 17u);  // 14 model tokens + 3 added
  EXPECT_EQ(tok->decode({1, 20, 21}, true), "the fin");
}

}  // namespace
}  // namespace mixpeft::tok
