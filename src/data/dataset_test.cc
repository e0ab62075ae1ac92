// load_dataset: label mapping, tokenization (pairs, truncation, causal-LM
// masking), unlabeled test splits and every user-facing error.
//
// Expected ids come from the fixture tokenizers' own reference cases
// (tests/data/fixtures/tokenizers/*/cases.jsonl, produced by HF):
//   bert-base-uncased: "Hello world" -> [7592, 2088], "don't" -> [2123, 1005, 1056],
//     "The quick brown fox jumps over the lazy dog." -> [1996, 4248, 2829, 4419, 14523,
//     2058, 1996, 13971, 3899, 1012]; [CLS] = 101, [SEP] = 102, [PAD] = 0.
//   gpt2: "Hello world" -> [15496, 995] (" world" is its own pre-token, 995),
//     the fox sentence -> [464, 2068, 7586, 21831, 18045, 625, 262, 16931, 3290, 13];
//     <|endoftext|> = 50256.
#include <cmath>
#include <nlohmann/json.hpp>

#include "data/test_util.h"
#include "mixpeft/data.h"
#include "mixpeft/tokenizer.h"

namespace mixpeft::data {
namespace {

using testing::bert;
using testing::gpt2;
using testing::TempDir;
using testing::throws_error_starting_with;
using Ids = std::vector<int32_t>;

const int32_t kIgn = kIgnoreIndex;

DatasetSpec spec_for(Task task, const std::string& train, const std::string& validation) {
  DatasetSpec s;
  s.task = task;
  s.train = train;
  s.validation = validation;
  return s;
}

std::vector<int64_t> labels_of(const Split& s) {
  std::vector<int64_t> out;
  for (const Example& e : s.examples) out.push_back(e.label);
  return out;
}

// A byte-level BPE whose ids are the byte values (no merges), with <s> = 256
// and </s> = 257, and a template that prepends <s> (like Llama's).
std::unique_ptr<tok::Tokenizer> byte_tokenizer(bool with_eos) {
  // GPT-2's bytes_to_unicode: printable bytes map to themselves, the rest to 256 + n.
  std::vector<std::string> vocab(256);
  int next = 0;
  for (int b = 0; b < 256; ++b) {
    bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    char32_t cp = printable ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + next++);
    std::string s;
    if (cp < 0x80) {
      s += static_cast<char>(cp);
    } else {
      s += static_cast<char>(0xC0 | (cp >> 6));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    }
    vocab[b] = s;
  }
  tok::ByteLevelBpeSpec spec;
  spec.vocab = vocab;
  spec.added_tokens.push_back(tok::AddedToken{-1, "<s>", true});
  spec.bos_token = "<s>";
  if (with_eos) {
    spec.added_tokens.push_back(tok::AddedToken{-1, "</s>", true});
    spec.eos_token = "</s>";
  }
  spec.add_bos = true;
  return tok::Tokenizer::from_byte_level_bpe(spec);
}

// ---- classification --------------------------------------------------------------

TEST(Dataset, ClassificationTsvWithBert) {
  TempDir d;
  auto s = spec_for(Task::kClassification, d.write("train.tsv", "sentence\tlabel\nHello world\t1\ndon't\t0\n"),
                    d.write("dev.tsv", "sentence\tlabel\nHello world\t0\n"));
  s.columns.text = "sentence";
  Dataset ds = load_dataset(s, bert());
  EXPECT_EQ(ds.task, Task::kClassification);
  EXPECT_EQ(ds.label_names, (std::vector<std::string>{"0", "1"}));
  ASSERT_EQ(ds.train.size(), 2u);
  EXPECT_EQ(ds.train.examples[0].input_ids, (Ids{101, 7592, 2088, 102}));
  EXPECT_EQ(ds.train.examples[0].token_type_ids, (Ids{0, 0, 0, 0}));
  EXPECT_EQ(ds.train.examples[1].input_ids, (Ids{101, 2123, 1005, 1056, 102}));
  EXPECT_EQ(labels_of(ds.train), (std::vector<int64_t>{1, 0}));
  EXPECT_EQ(ds.train.examples[1].line, 3);
  EXPECT_TRUE(ds.train.examples[0].labels.empty());
  EXPECT_EQ(labels_of(ds.validation), (std::vector<int64_t>{0}));
  EXPECT_EQ(ds.train.num_tokens(), 9u);
  EXPECT_EQ(ds.train.max_length(), 5u);
  EXPECT_FALSE(ds.has_test());
  EXPECT_EQ(ds.cache_path, "");
  EXPECT_FALSE(ds.from_cache);
  EXPECT_EQ(ds.fingerprint.size(), 64u);
}

TEST(Dataset, SentencePairUsesThePairTemplate) {
  TempDir d;
  std::string text = "s1,s2,label\nhello,world,yes\n";
  auto s = spec_for(Task::kClassification, d.write("train.csv", text), d.write("dev.csv", text));
  s.columns = Columns{"s1", "s2", "label"};
  Dataset ds = load_dataset(s, bert());
  EXPECT_EQ(ds.train.examples[0].input_ids, (Ids{101, 7592, 102, 2088, 102}));
  EXPECT_EQ(ds.train.examples[0].token_type_ids, (Ids{0, 0, 0, 1, 1}));
}

TEST(Dataset, TruncationLongestFirst) {
  TempDir d;
  std::string text = "a,b,label\nThe quick brown fox jumps over the lazy dog.,Hello world,1\n";
  auto s = spec_for(Task::kClassification, d.write("train.csv", text), d.write("dev.csv", text));
  s.columns = Columns{"a", "b", "label"};
  s.max_length = 8;
  // 10 + 2 tokens into 8 - 3 specials = 5: HF longest_first cuts the longer text
  // one token at a time, so the first keeps 3 and the second its 2.
  Dataset ds = load_dataset(s, bert());
  EXPECT_EQ(ds.train.examples[0].input_ids, (Ids{101, 1996, 4248, 2829, 102, 7592, 2088, 102}));
  EXPECT_EQ(ds.train.examples[0].token_type_ids, (Ids{0, 0, 0, 0, 0, 1, 1, 1}));
  s.columns.text_pair = "";
  s.max_length = 4;
  ds = load_dataset(s, bert());
  EXPECT_EQ(ds.train.examples[0].input_ids, (Ids{101, 1996, 4248, 102}));
}

TEST(Dataset, LabelsSortNumericallyWhenAllAreIntegers) {
  TempDir d;
  auto s = spec_for(Task::kClassification, d.write("train.csv", "text,label\na,10\nb,2\nc,0\nd,2\n"),
                    d.write("dev.csv", "text,label\na,10\n"));
  Dataset ds = load_dataset(s, bert());
  EXPECT_EQ(ds.label_names, (std::vector<std::string>{"0", "2", "10"}));
  EXPECT_EQ(labels_of(ds.train), (std::vector<int64_t>{2, 1, 0, 1}));
  EXPECT_EQ(labels_of(ds.validation), (std::vector<int64_t>{2}));
}

TEST(Dataset, StringLabelsSortByBytes) {
  TempDir d;
  auto s = spec_for(Task::kClassification,
                    d.write("train.csv", "text,label\na,positive\nb,negative\nc,neutral\nd,10\n"),
                    d.write("dev.csv", "text,label\na,neutral\n"));
  Dataset ds = load_dataset(s, bert());
  EXPECT_EQ(ds.label_names, (std::vector<std::string>{"10", "negative", "neutral", "positive"}));
  EXPECT_EQ(labels_of(ds.train), (std::vector<int64_t>{3, 1, 2, 0}));
}

TEST(Dataset, SpecLabelsFixTheIds) {
  TempDir d;
  auto s = spec_for(Task::kClassification, d.write("train.csv", "text,label\na,neg\nb,pos\n"),
                    d.write("dev.csv", "text,label\na,pos\n"));
  s.labels = {"pos", "neg", "neutral"};
  Dataset ds = load_dataset(s, bert());
  EXPECT_EQ(ds.label_names, s.labels);
  EXPECT_EQ(labels_of(ds.train), (std::vector<int64_t>{1, 0}));
}

TEST(Dataset, JsonIntegerAndStringLabelsAreTheSameLabel) {
  TempDir d;
  std::string text = "{\"text\": \"a\", \"label\": 1}\n{\"text\": \"b\", \"label\": \"1\"}\n"
                     "{\"text\": \"c\", \"label\": 0}\n";
  auto s = spec_for(Task::kClassification, d.write("train.jsonl", text), d.write("dev.jsonl", text));
  Dataset ds = load_dataset(s, bert());
  EXPECT_EQ(ds.label_names, (std::vector<std::string>{"0", "1"}));
  EXPECT_EQ(labels_of(ds.train), (std::vector<int64_t>{1, 1, 0}));
}

TEST(Dataset, UnknownValidationLabel) {
  TempDir d;
  auto s = spec_for(Task::kClassification, d.write("train.jsonl",
                                                   "{\"text\": \"a\", \"label\": \"positive\"}\n"
                                                   "{\"text\": \"b\", \"label\": \"negative\"}\n"),
                    d.write("dev.jsonl", "{\"text\": \"a\", \"label\": \"positive\"}\n\n"
                                         "{\"text\": \"b\", \"label\": \"neutral\"}\n"));
  EXPECT_TRUE(throws_error_starting_with(
      [&] { load_dataset(s, bert()); }, ErrorKind::kInvalidArgument,
      s.validation + ":3: label \"neutral\" is not a known label (labels seen in the "
                     "train split: \"negative\", \"positive\")"));
  s.labels = {"positive"};  // now the train split has one outside the spec's labels
  EXPECT_TRUE(throws_error_starting_with(
      [&] { load_dataset(s, bert()); }, ErrorKind::kInvalidArgument,
      s.train + ":2: label \"negative\" is not a known label (dataset.labels: \"positive\")"));
}

TEST(Dataset, LabelOfAWrongType) {
  TempDir d;
  std::string text = "{\"text\": \"a\", \"label\": 1.5}\n";
  auto s = spec_for(Task::kClassification, d.write("train.jsonl", text), d.write("dev.jsonl", text));
  EXPECT_TRUE(throws_error_starting_with([&] { load_dataset(s, bert()); }, ErrorKind::kInvalidArgument,
                                         s.train + ":1: column \"label\": expected a label (a string or an integer), "
                                                   "found number 1.5"));
  d.write("train.csv", "text,label\na,\n");
  auto c = spec_for(Task::kClassification, d.file("train.csv"), d.file("train.csv"));
  EXPECT_TRUE(throws_error_starting_with([&] { load_dataset(c, bert()); }, ErrorKind::kInvalidArgument,
                                         c.train + ":2: column \"label\": empty label"));
}

TEST(Dataset, UnlabeledTestSplit) {
  TempDir d;
  auto s = spec_for(Task::kClassification, d.write("train.tsv", "sentence\tlabel\na\t0\nb\t1\n"),
                    d.write("dev.tsv", "sentence\tlabel\na\t1\n"));
  s.columns.text = "sentence";
  s.test = d.write("test.tsv", "index\tsentence\n0\tHello world\n1\tdon't\n");  // GLUE: no label column
  Dataset ds = load_dataset(s, bert());
  EXPECT_TRUE(ds.has_test());
  EXPECT_EQ(ds.test.name, "test");
  EXPECT_EQ(labels_of(ds.test), (std::vector<int64_t>{-1, -1}));
  EXPECT_EQ(ds.test.examples[0].input_ids, (Ids{101, 7592, 2088, 102}));
  // HF exports GLUE test rows with label -1: also unlabeled, in the test split only.
  s.test = d.write("test.jsonl", "{\"sentence\": \"a\", \"label\": -1}\n{\"sentence\": \"b\", \"label\": 1}\n");
  s.read.format = Format::kAuto;
  ds = load_dataset(s, bert());
  EXPECT_EQ(labels_of(ds.test), (std::vector<int64_t>{-1, 1}));
  s.validation = s.test;
  EXPECT_TRUE(throws_error_starting_with([&] { load_dataset(s, bert()); }, ErrorKind::kInvalidArgument,
                                         s.test + ":1: label \"-1\" is not a known label"));
  // When -1 is a real label (labels {-1, 1}), it keeps its id in the test split too.
  s.train = d.write("train2.tsv", "sentence\tlabel\na\t-1\nb\t1\n");
  s.validation = s.train;
  ds = load_dataset(s, bert());
  EXPECT_EQ(ds.label_names, (std::vector<std::string>{"-1", "1"}));
  EXPECT_EQ(labels_of(ds.test), (std::vector<int64_t>{0, 1}));
}

// ---- regression -------------------------------------------------------------------------

TEST(Dataset, RegressionTargets) {
  TempDir d;
  auto s = spec_for(Task::kRegression,
                    d.write("train.tsv", "s1\ts2\tscore\nhello\tworld\t3.800\nhello\thello\t5\n"),
                    d.write("dev.tsv", "s1\ts2\tscore\nhello\tworld\t0.25\n"));
  s.columns = Columns{"s1", "s2", "score"};
  s.test = d.write("test.tsv", "s1\ts2\nhello\tworld\n");
  Dataset ds = load_dataset(s, bert());
  EXPECT_FLOAT_EQ(ds.train.examples[0].target, 3.8f);
  EXPECT_FLOAT_EQ(ds.train.examples[1].target, 5.0f);
  EXPECT_FLOAT_EQ(ds.validation.examples[0].target, 0.25f);
  EXPECT_TRUE(std::isnan(ds.test.examples[0].target));
  EXPECT_EQ(ds.train.examples[0].label, -1);
  EXPECT_TRUE(ds.label_names.empty());
  EXPECT_EQ(ds.train.examples[0].input_ids, (Ids{101, 7592, 102, 2088, 102}));
}

TEST(Dataset, RegressionLabelThatIsNotANumber) {
  TempDir d;
  auto s = spec_for(Task::kRegression, d.write("train.csv", "text,label\na,1.5\nb,high\n"),
                    d.write("dev.csv", "text,label\na,nan\n"));
  EXPECT_TRUE(throws_error_starting_with([&] { load_dataset(s, bert()); }, ErrorKind::kInvalidArgument,
                                         s.train + ":3: column \"label\": \"high\" is not a finite number"));
  d.write("train.csv", "text,label\na,1.5\n");
  EXPECT_TRUE(throws_error_starting_with([&] { load_dataset(s, bert()); }, ErrorKind::kInvalidArgument,
                                         s.validation + ":2: column \"label\": \"nan\" is not a finite number"));
}

// ---- causal LM ------------------------------------------------------------------------------

TEST(Dataset, CausalLmMasksThePrompt) {
  TempDir d;
  std::string text = "{\"prompt\": \"Hello\", \"completion\": \" world\"}\n";
  auto s = spec_for(Task::kCausalLm, d.write("train.jsonl", text), d.write("dev.jsonl", text));
  Dataset ds = load_dataset(s, gpt2());
  const Example& e = ds.train.examples[0];
  EXPECT_EQ(e.input_ids, (Ids{15496, 995, 50256}));
  EXPECT_EQ(e.labels, (Ids{kIgn, 995, 50256}));
  EXPECT_EQ(e.prompt_length, 1);
  EXPECT_EQ(e.reference, " world");
  EXPECT_TRUE(e.token_type_ids.empty());
  s.add_eos = false;
  ds = load_dataset(s, gpt2());
  EXPECT_EQ(ds.train.examples[0].input_ids, (Ids{15496, 995}));
  EXPECT_EQ(ds.train.examples[0].labels, (Ids{kIgn, 995}));
}

TEST(Dataset, CausalLmTruncatesThePromptFromTheLeftThenTheCompletion) {
  TempDir d;
  std::string text =
      "{\"prompt\": \"The quick brown fox jumps over the lazy dog.\", \"completion\": \" world\"}\n";
  auto s = spec_for(Task::kCausalLm, d.write("train.jsonl", text), d.write("dev.jsonl", text));
  s.max_length = 5;  // 10 prompt + 1 completion + eos = 12: the prompt keeps its last 3
  Dataset ds = load_dataset(s, gpt2());
  EXPECT_EQ(ds.train.examples[0].input_ids, (Ids{16931, 3290, 13, 995, 50256}));
  EXPECT_EQ(ds.train.examples[0].labels, (Ids{kIgn, kIgn, kIgn, 995, 50256}));
  EXPECT_EQ(ds.train.examples[0].prompt_length, 3);
  s.max_length = 1;  // the prompt goes, then the eos from the end of the completion
  ds = load_dataset(s, gpt2());
  EXPECT_EQ(ds.train.examples[0].input_ids, (Ids{995}));
  EXPECT_EQ(ds.train.examples[0].labels, (Ids{995}));
  EXPECT_EQ(ds.train.examples[0].prompt_length, 0);
  EXPECT_EQ(ds.train.examples[0].reference, " world");  // the reference is never cut
}

TEST(Dataset, CausalLmWithBos) {
  TempDir d;
  std::string text = "prompt,completion\nab,c\n";
  auto s = spec_for(Task::kCausalLm, d.write("train.csv", text), d.write("dev.csv", text));
  auto tok = byte_tokenizer(true);
  Dataset ds = load_dataset(s, *tok);
  EXPECT_EQ(ds.train.examples[0].input_ids, (Ids{256, 'a', 'b', 'c', 257}));
  EXPECT_EQ(ds.train.examples[0].labels, (Ids{kIgn, kIgn, kIgn, 'c', 257}));
  EXPECT_EQ(ds.train.examples[0].prompt_length, 3);
  s.max_length = 3;
  ds = load_dataset(s, *tok);
  EXPECT_EQ(ds.train.examples[0].input_ids, (Ids{256, 'c', 257}));
  EXPECT_EQ(ds.train.examples[0].prompt_length, 1);
  s.max_length = 1;
  EXPECT_TRUE(throws_error_starting_with(
      [&] { load_dataset(s, *tok); }, ErrorKind::kInvalidArgument,
      "dataset.max_length: 1 leaves no room for the completion after the bos token"));
  s.max_length = 0;
  auto no_eos = byte_tokenizer(false);
  EXPECT_TRUE(throws_error_starting_with([&] { load_dataset(s, *no_eos); }, ErrorKind::kInvalidArgument,
                                         "dataset.add_eos: the tokenizer has no eos token", {"set add_eos to false"}));
}

TEST(Dataset, CausalLmEmptyCompletionWithoutEos) {
  TempDir d;
  std::string text = "prompt,completion\nab,c\nab,\n";
  auto s = spec_for(Task::kCausalLm, d.write("train.csv", text), d.write("dev.csv", text));
  s.add_eos = false;
  EXPECT_TRUE(throws_error_starting_with(
      [&] { load_dataset(s, gpt2()); }, ErrorKind::kInvalidArgument,
      s.train + ":3: empty completion and add_eos is false: no token to learn from"));
  s.add_eos = true;  // eos alone is a completion
  Dataset ds = load_dataset(s, gpt2());
  EXPECT_EQ(ds.train.examples[1].labels.back(), 50256);
}

TEST(Dataset, CausalLmTestSplitWithoutCompletions) {
  TempDir d;
  std::string text = "{\"prompt\": \"Hello\", \"completion\": \" world\"}\n";
  auto s = spec_for(Task::kCausalLm, d.write("train.jsonl", text), d.write("dev.jsonl", text));
  s.test = d.write("test.jsonl", "{\"prompt\": \"Hello\"}\n");
  Dataset ds = load_dataset(s, gpt2());
  EXPECT_EQ(ds.test.examples[0].input_ids, (Ids{15496}));
  EXPECT_EQ(ds.test.examples[0].labels, (Ids{kIgn}));
  EXPECT_EQ(ds.test.examples[0].prompt_length, 1);
  EXPECT_EQ(ds.test.examples[0].reference, "");
}

// ---- errors -------------------------------------------------------------------------------

TEST(DatasetErrors, EmptySplit) {
  TempDir d;
  auto s = spec_for(Task::kClassification, d.write("train.csv", "text,label\na,1\n"),
                    d.write("dev.csv", "text,label\n"));
  EXPECT_TRUE(throws_error_starting_with([&] { load_dataset(s, bert()); }, ErrorKind::kInvalidArgument,
                                         s.validation + ": the validation split has no records (only a header)"));
  d.write("train.csv", "");
  EXPECT_TRUE(throws_error_starting_with([&] { load_dataset(s, bert()); }, ErrorKind::kInvalidArgument,
                                         s.train + ": the train split has no records (the file is empty)"));
  s.train = d.write("train.jsonl", "\n\n");
  EXPECT_TRUE(throws_error_starting_with([&] { load_dataset(s, bert()); }, ErrorKind::kInvalidArgument,
                                         s.train + ": the train split has no records"));
}

TEST(DatasetErrors, MissingColumn) {
  TempDir d;
  auto s = spec_for(Task::kClassification, d.write("train.tsv", "sentence\tlabel\na\t1\n"),
                    d.write("dev.tsv", "sentence\tlabel\na\t1\n"));
  EXPECT_TRUE(throws_error_starting_with([&] { load_dataset(s, bert()); }, ErrorKind::kNotFound,
                                         s.train + ": no column \"text\" (columns: \"sentence\", \"label\"); "
                                                   "set dataset.columns.text"));
  s.columns.text = "sentence";
  s.columns.text_pair = "hypothesis";
  EXPECT_TRUE(throws_error_starting_with([&] { load_dataset(s, bert()); }, ErrorKind::kNotFound,
                                         s.train + ": no column \"hypothesis\"", {"set dataset.columns.text_pair"}));
  s.columns.text_pair = "";
  d.write("dev.tsv", "sentence\tgold\na\t1\n");
  EXPECT_TRUE(throws_error_starting_with([&] { load_dataset(s, bert()); }, ErrorKind::kNotFound,
                                         s.validation + ": no column \"label\" (columns: \"sentence\", \"gold\"); "
                                                        "set dataset.columns.label"));
  auto c = spec_for(Task::kCausalLm, s.train, s.train);
  EXPECT_TRUE(throws_error_starting_with([&] { load_dataset(c, gpt2()); }, ErrorKind::kNotFound,
                                         c.train + ": no column \"prompt\"", {"set dataset.columns.prompt"}));
}

TEST(DatasetErrors, JsonlRecordWithoutTheKey) {
  TempDir d;
  std::string text = "{\"text\": \"a\", \"label\": 1}\n{\"text\": \"b\", \"idx\": 7}\n";
  auto s = spec_for(Task::kClassification, d.write("train.jsonl", text), d.write("dev.jsonl", text));
  EXPECT_TRUE(throws_error_starting_with(
      [&] { load_dataset(s, bert()); }, ErrorKind::kNotFound,
      s.train + ":2: no column \"label\" in this record (it has: \"text\", \"idx\")"));
}

TEST(DatasetErrors, TextThatIsNotAString) {
  TempDir d;
  std::string text = "{\"text\": 5, \"label\": 1}\n";
  auto s = spec_for(Task::kClassification, d.write("train.jsonl", text), d.write("dev.jsonl", text));
  EXPECT_TRUE(throws_error_starting_with([&] { load_dataset(s, bert()); }, ErrorKind::kInvalidArgument,
                                         s.train + ":1: column \"text\": expected a string, found integer \"5\""));
}

TEST(DatasetErrors, TokenizerErrorsNameTheRecord) {
  TempDir d;
  auto s = spec_for(Task::kClassification, d.write("train.csv", "text,label\nok,1\nbad \xFF byte,0\n"),
                    d.write("dev.csv", "text,label\nok,1\n"));
  EXPECT_TRUE(throws_error_starting_with([&] { load_dataset(s, bert()); }, ErrorKind::kInvalidArgument,
                                         s.train + ":3: Tokenizer::encode: text is not valid UTF-8"));
}

TEST(DatasetErrors, ChecksRunBeforeTokenization) {
  TempDir d;
  // train line 3 would fail to tokenize; the unknown validation label is reported first.
  auto s = spec_for(Task::kClassification, d.write("train.csv", "text,label\nok,1\nbad \xFF,0\n"),
                    d.write("dev.csv", "text,label\nok,7\n"));
  EXPECT_TRUE(throws_error_starting_with([&] { load_dataset(s, bert()); }, ErrorKind::kInvalidArgument,
                                         s.validation + ":2: label \"7\" is not a known label"));
}

TEST(DatasetErrors, TextWithoutTokens) {
  TempDir d;
  auto s = spec_for(Task::kClassification, d.write("train.csv", "text,label\nok,1\n\"\",0\n"),
                    d.write("dev.csv", "text,label\nok,1\n"));
  EXPECT_TRUE(throws_error_starting_with([&] { load_dataset(s, gpt2()); }, ErrorKind::kInvalidArgument,
                                         s.train + ":3: the text gives no tokens"));
}

TEST(DatasetErrors, MissingFileAndUnknownExtension) {
  TempDir d;
  auto s = spec_for(Task::kClassification, d.write("train.csv", "text,label\nok,1\n"), d.file("dev.csv"));
  EXPECT_TRUE(throws_error_starting_with([&] { load_dataset(s, bert()); }, ErrorKind::kNotFound, s.validation + ": "));
  s.validation = d.write("dev.xml", "text,label\nok,1\n");
  EXPECT_TRUE(throws_error_starting_with([&] { load_dataset(s, bert()); }, ErrorKind::kInvalidArgument,
                                         s.validation + ": cannot tell the format from the extension .xml"));
  s.read.format = Format::kCsv;
  EXPECT_EQ(load_dataset(s, bert()).validation.size(), 1u);
}

TEST(DatasetErrors, MalformedFilesFailBeforeTraining) {
  TempDir d;
  auto s = spec_for(Task::kClassification, d.write("train.jsonl", "{\"text\": \"a\", \"label\": 1}\n"),
                    d.write("dev.jsonl", "{\"text\": \"a\", \"label\": 1}\n{\"text\": \"b\" \"label\": 0}\n"));
  EXPECT_TRUE(throws_error_starting_with([&] { load_dataset(s, bert()); }, ErrorKind::kCorrupt,
                                         s.validation + ":2: malformed JSON: "));
}

TEST(PadId, FromTheTokenizer) {
  EXPECT_EQ(pad_id_for(bert()), 0);       // [PAD]
  EXPECT_EQ(pad_id_for(gpt2()), 50256);   // no pad token: eos, as HF users set it
  auto t = byte_tokenizer(false);         // neither pad nor eos
  EXPECT_TRUE(throws_error_starting_with([&] { pad_id_for(*t); }, ErrorKind::kInvalidArgument,
                                         "tokenizer: no pad token and no eos token"));
}

}  // namespace
}  // namespace mixpeft::data

namespace mixpeft::data {
namespace {

// ---- plain text and packing ---------------------------------------------------------------

TEST(Dataset, PlainTextDocumentsPackIntoBlocks) {
  TempDir d;
  // Two documents (a blank line between them; the first spans two lines).
  std::string text = "Hello world\nHello\n\n  \nThe quick brown fox jumps over the lazy dog.\n";
  auto s = spec_for(Task::kCausalLm, d.write("train.txt", text), d.write("dev.txt", text));
  s.columns.prompt = "";  // no prompt: every token is a target
  s.columns.completion = "text";
  Dataset ds = load_dataset(s, gpt2());
  ASSERT_EQ(ds.train.size(), 2u);
  EXPECT_EQ(ds.train.examples[0].line, 1);
  EXPECT_EQ(ds.train.examples[1].line, 5);
  EXPECT_EQ(ds.train.examples[0].labels, ds.train.examples[0].input_ids);
  // "Hello world\nHello" + eos, then the fox sentence (10 ids) + eos: 16 ids in
  // blocks of 5, the last one shorter.
  std::vector<int32_t> all;
  for (const auto& e : ds.train.examples) all.insert(all.end(), e.input_ids.begin(), e.input_ids.end());
  ASSERT_EQ(all.size(), 16u);
  s.pack = true;
  s.max_length = 5;
  ds = load_dataset(s, gpt2());
  ASSERT_EQ(ds.train.size(), 4u);
  std::vector<int32_t> packed;
  for (const auto& e : ds.train.examples) {
    EXPECT_EQ(e.labels, e.input_ids);
    packed.insert(packed.end(), e.input_ids.begin(), e.input_ids.end());
  }
  EXPECT_EQ(packed, all);  // nothing truncated, nothing reordered
  EXPECT_EQ(ds.train.examples[3].length(), 1u);
  EXPECT_EQ(ds.train.examples[0].line, 1);
  EXPECT_EQ(ds.train.examples[1].line, 5);  // starts inside the second document
}

TEST(Dataset, PackIsForCausalLmWithABlockLength) {
  EXPECT_TRUE(throws_error_starting_with([] {
    DatasetSpec::from_json(nlohmann::json{{"task", "classification"}, {"train", "a.jsonl"}, {"validation", "b.jsonl"},
                                          {"pack", true}});
  }, ErrorKind::kInvalidArgument, "dataset.pack: only a causal_lm task packs examples"));
}

}  // namespace
}  // namespace mixpeft::data
