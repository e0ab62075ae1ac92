// Templates, batching, truncation and padding. Ids come from the fixtures'
// cases.jsonl (e.g. BERT "Hello world" -> 7592 2088; "The quick brown fox
// jumps over the lazy dog." -> 1996 4248 2829 4419 14523 2058 1996 13971
// 3899 1012); [CLS]=101, [SEP]=102, [PAD]=0 are vocab.txt lines 102, 103, 1.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "mixpeft/error.h"
#include "mixpeft/tokenizer.h"
#include "tokenizers/test_util.h"

namespace mixpeft::tok {
namespace {

using testing::fixture_dir;
using Ids = std::vector<TokenId>;
using Ints = std::vector<int32_t>;

const char* const kHello = "Hello world";                                    // 2 tokens
const char* const kFox = "The quick brown fox jumps over the lazy dog.";     // 10 tokens
const Ids kFoxIds{1996, 4248, 2829, 4419, 14523, 2058, 1996, 13971, 3899, 1012};

std::unique_ptr<Tokenizer> bert() { return Tokenizer::load(fixture_dir("bert-base-uncased")); }

TEST(EncodeOptions, PadToLongestOnTheRight) {
  auto tok = bert();
  EncodeOptions o;
  o.padding = Padding::kLongest;
  BatchEncoding b = tok->encode_batch({kHello, kFox}, o);
  ASSERT_EQ(b.rows.size(), 2u);
  EXPECT_EQ(b.seq_len(), 12u);
  EXPECT_EQ(b.rows[0].ids, (Ids{101, 7592, 2088, 102, 0, 0, 0, 0, 0, 0, 0, 0}));
  EXPECT_EQ(b.rows[0].attention_mask, (Ints{1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0}));
  Ids fox{101};
  fox.insert(fox.end(), kFoxIds.begin(), kFoxIds.end());
  fox.push_back(102);
  EXPECT_EQ(b.rows[1].ids, fox);
  std::vector<int64_t> flat = b.input_ids();
  ASSERT_EQ(flat.size(), 24u);
  EXPECT_EQ(flat[12], 101);
  EXPECT_EQ(flat[4], 0);
  std::vector<int64_t> mask = b.attention_mask();
  EXPECT_EQ(mask[3], 1);
  EXPECT_EQ(mask[4], 0);
  EXPECT_EQ(b.token_type_ids(), std::vector<int64_t>(24, 0));
}

TEST(EncodeOptions, PadToMultiple) {
  auto tok = bert();
  EncodeOptions o;
  o.padding = Padding::kLongest;
  o.pad_to_multiple_of = 8;
  BatchEncoding b = tok->encode_batch({kHello}, o);
  EXPECT_EQ(b.rows[0].ids, (Ids{101, 7592, 2088, 102, 0, 0, 0, 0}));
}

TEST(EncodeOptions, RaggedBatchCannotBeFlattened) {
  auto tok = bert();
  BatchEncoding b = tok->encode_batch({kHello, kFox});
  EXPECT_EQ(b.rows[0].size(), 4u);
  EXPECT_EQ(b.rows[1].size(), 12u);
  try {
    b.input_ids();
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("row 0"), std::string::npos) << e.what();
  }
}

TEST(EncodeOptions, TruncateAndPadToMaxLength) {
  auto tok = bert();
  EncodeOptions o;
  o.padding = Padding::kMaxLength;
  o.truncation = Truncation::kLongestFirst;
  o.max_length = 6;
  BatchEncoding b = tok->encode_batch({kHello, kFox}, o);
  EXPECT_EQ(b.rows[0].ids, (Ids{101, 7592, 2088, 102, 0, 0}));
  EXPECT_EQ(b.rows[1].ids, (Ids{101, 1996, 4248, 2829, 4419, 102}));
  EXPECT_EQ(b.rows[1].attention_mask, Ints(6, 1));
}

TEST(EncodeOptions, LongestFirstCutsTheLongerTextOfAPair) {
  auto tok = bert();
  EncodeOptions o;
  o.truncation = Truncation::kLongestFirst;
  o.max_length = 9;  // 3 specials + 6 tokens: fox 10 -> 4, hello keeps 2
  BatchEncoding b = tok->encode_batch_pairs({{kFox, kHello}}, o);
  EXPECT_EQ(b.rows[0].ids, (Ids{101, 1996, 4248, 2829, 4419, 102, 7592, 2088, 102}));
  EXPECT_EQ(b.rows[0].type_ids, (Ints{0, 0, 0, 0, 0, 0, 1, 1, 1}));
  // Ties cut the second text first: 10 + 10 -> 3 + 3 for max_length 9.
  o.max_length = 9;
  BatchEncoding tie = tok->encode_batch_pairs({{kFox, kFox}}, o);
  EXPECT_EQ(tie.rows[0].ids, (Ids{101, 1996, 4248, 2829, 102, 1996, 4248, 2829, 102}));
  o.max_length = 8;  // 5 to share: first 3, second 2
  BatchEncoding odd = tok->encode_batch_pairs({{kFox, kFox}}, o);
  EXPECT_EQ(odd.rows[0].ids, (Ids{101, 1996, 4248, 2829, 102, 1996, 4248, 102}));
}

TEST(EncodeOptions, OnlySecondAndOnlyFirst) {
  auto tok = bert();
  EncodeOptions o;
  o.truncation = Truncation::kOnlySecond;
  o.max_length = 7;
  std::string_view hello(kHello);
  Encoding e = tok->encode_with(kHello, &hello, o);
  EXPECT_EQ(e.ids, (Ids{101, 7592, 2088, 102, 7592, 2088, 102}));
  std::string_view fox(kFox);
  e = tok->encode_with(kHello, &fox, o);  // 7 - 3 - 2 = 2 tokens left for the fox
  EXPECT_EQ(e.ids, (Ids{101, 7592, 2088, 102, 1996, 4248, 102}));
  o.max_length = 4;  // the second text cannot shrink enough: an error, as in HF
  EXPECT_THROW(tok->encode_with(kFox, &hello, o), Error);
  o.truncation = Truncation::kOnlyFirst;
  o.max_length = 7;
  e = tok->encode_with(kFox, &hello, o);
  EXPECT_EQ(e.ids, (Ids{101, 1996, 4248, 102, 7592, 2088, 102}));
}

TEST(EncodeOptions, NoSpecialTokensMeansNoTemplate) {
  auto tok = bert();
  EncodeOptions o;
  o.add_special_tokens = false;
  o.truncation = Truncation::kLongestFirst;
  o.max_length = 3;
  BatchEncoding b = tok->encode_batch({kFox}, o);
  EXPECT_EQ(b.rows[0].ids, (Ids{1996, 4248, 2829}));
}

TEST(EncodeOptions, MaxLengthNeededAndPadTokenNeeded) {
  auto gpt2 = Tokenizer::load(fixture_dir("gpt2"));
  EncodeOptions o;
  o.truncation = Truncation::kLongestFirst;  // no max_length, no model_max_length
  EXPECT_THROW(gpt2->encode_batch({kHello}, o), Error);
  o = EncodeOptions{};
  o.padding = Padding::kLongest;  // GPT-2 has no pad token
  try {
    gpt2->encode_batch({kHello, kFox}, o);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("pad"), std::string::npos) << e.what();
  }
  o.pad_id = 50256;  // as HF users do: pad = eos
  BatchEncoding b = gpt2->encode_batch({kHello, "Hello"}, o);
  EXPECT_EQ(b.rows[1].ids, (Ids{15496, 50256}));  // "Hello" is 15496 (cases.jsonl)
  EXPECT_EQ(b.rows[1].attention_mask, (Ints{1, 0}));
}

TEST(EncodeOptions, RobertaStyleFolderGetsTheRobertaTemplate) {
  // vocab.json with RoBERTa's special tokens and the 256 byte symbols;
  // no merges. Ids: <s>=0 <pad>=1 </s>=2 <unk>=3 <mask>=4, bytes from 5.
  auto gpt2 = Tokenizer::load(fixture_dir("gpt2"));
  nlohmann::json vocab = {{"<s>", 0}, {"<pad>", 1}, {"</s>", 2}, {"<unk>", 3}, {"<mask>", 4}};
  for (TokenId id = 0; id < 256; ++id) vocab[gpt2->id_to_token(id)] = id + 5;
  std::string dir = testing::make_temp_dir("roberta");
  testing::write_text(dir + "/vocab.json", vocab.dump());
  testing::write_text(dir + "/merges.txt", "#version: 0.2\n");
  auto tok = Tokenizer::load(dir);
  const TokenId a = 5 + 64, b = 5 + 65;  // "a" and "b" are GPT-2 ids 64 and 65
  Encoding e = tok->encode_pair("a", "b");
  EXPECT_EQ(e.ids, (Ids{0, a, 2, 2, b, 2}));
  EXPECT_EQ(e.type_ids, Ints(6, 0));  // RoBERTa has a single token type
  EXPECT_EQ(tok->encode("a"), (Ids{0, a, 2}));
  EXPECT_EQ(tok->special_ids().pad, 1);
  EXPECT_EQ(tok->special_ids().mask, 4);
  // <mask> takes the space on its left (lstrip), as RobertaTokenizer's does.
  EXPECT_EQ(tok->encode("a <mask>", false), (Ids{a, 4}));
}

}  // namespace
}  // namespace mixpeft::tok
