// DatasetSpec: JSON parsing, defaults, validation errors.
#include <nlohmann/json.hpp>

#include "data/test_util.h"
#include "mixpeft/data.h"

namespace mixpeft::data {
namespace {

using nlohmann::json;
using testing::throws_error_starting_with;

json minimal(const char* task = "classification") {
  return json{{"task", task}, {"train", "train.tsv"}, {"validation", "dev.tsv"}};
}

TEST(Spec, Defaults) {
  DatasetSpec s = DatasetSpec::from_json(minimal());
  EXPECT_EQ(s.task, Task::kClassification);
  EXPECT_EQ(s.train, "train.tsv");
  EXPECT_EQ(s.validation, "dev.tsv");
  EXPECT_EQ(s.test, "");
  EXPECT_EQ(s.read.format, Format::kAuto);
  EXPECT_EQ(s.read.quoting, Quoting::kAuto);
  EXPECT_TRUE(s.read.header);
  EXPECT_EQ(s.columns.text, "text");
  EXPECT_EQ(s.columns.text_pair, "");
  EXPECT_EQ(s.columns.label, "label");
  EXPECT_TRUE(s.labels.empty());
  EXPECT_EQ(s.max_length, 0u);
  EXPECT_EQ(s.cache_dir, "");
}

TEST(Spec, EveryKey) {
  json j = json::parse(R"({
    "task": "classification", "train": "glue/MRPC/train.tsv", "validation": "glue/MRPC/dev.tsv",
    "test": "glue/MRPC/test.tsv", "format": "tsv", "quoting": "csv", "header": false,
    "columns": {"text": "3", "text_pair": "4", "label": "0"},
    "labels": [0, "1"], "max_length": 128, "cache_dir": "cache"})");
  DatasetSpec s = DatasetSpec::from_json(j);
  EXPECT_EQ(s.test, "glue/MRPC/test.tsv");
  EXPECT_EQ(s.read.format, Format::kTsv);
  EXPECT_EQ(s.read.quoting, Quoting::kCsv);
  EXPECT_FALSE(s.read.header);
  EXPECT_EQ(s.columns.text, "3");
  EXPECT_EQ(s.columns.text_pair, "4");
  EXPECT_EQ(s.columns.label, "0");
  EXPECT_EQ(s.labels, (std::vector<std::string>{"0", "1"}));  // integers become decimal strings
  EXPECT_EQ(s.max_length, 128u);
  EXPECT_EQ(s.cache_dir, "cache");
  // to_json writes every key back; parsing it again gives the same spec.
  EXPECT_EQ(DatasetSpec::from_json(s.to_json()).to_json(), s.to_json());
  EXPECT_EQ(s.to_json()["labels"], json::array({"0", "1"}));
}

TEST(Spec, CausalLm) {
  json j = minimal("causal_lm");
  j["columns"] = {{"prompt", "instruction"}, {"completion", "output"}};
  j["add_eos"] = false;
  DatasetSpec s = DatasetSpec::from_json(j);
  EXPECT_EQ(s.task, Task::kCausalLm);
  EXPECT_EQ(s.columns.prompt, "instruction");
  EXPECT_EQ(s.columns.completion, "output");
  EXPECT_FALSE(s.add_eos);
  json back = s.to_json();
  EXPECT_FALSE(back["columns"].contains("text"));  // only the task's own keys
  EXPECT_EQ(DatasetSpec::from_json(back).to_json(), back);
  EXPECT_TRUE(DatasetSpec::from_json(minimal("causal_lm")).add_eos);  // default true
}

TEST(Spec, RelativePathsUseBaseDir) {
  json j = minimal();
  j["validation"] = "/abs/dev.tsv";
  j["cache_dir"] = "cache";
  DatasetSpec s = DatasetSpec::from_json(j, "/runs/exp1");
  EXPECT_EQ(s.train, "/runs/exp1/train.tsv");
  EXPECT_EQ(s.validation, "/abs/dev.tsv");
  EXPECT_EQ(s.cache_dir, "/runs/exp1/cache");
  EXPECT_EQ(DatasetSpec::from_json(minimal(), "rel/").train, "rel/train.tsv");
}

TEST(Spec, UnknownKeyListsTheValidOnes) {
  json j = minimal();
  j["max_len"] = 128;
  EXPECT_TRUE(throws_error_starting_with([&] { DatasetSpec::from_json(j); }, ErrorKind::kInvalidArgument,
                                         "dataset: unknown key \"max_len\" (valid keys: task, train, validation, test, "
                                         "format, quoting, header, columns, labels, max_length, add_eos, pack, cache_dir)"));
  EXPECT_TRUE(throws_error_starting_with([&] { DatasetSpec::from_json(j, "", "run.json: data"); },
                                         ErrorKind::kInvalidArgument, "run.json: data: unknown key \"max_len\""));
}

TEST(Spec, ColumnKeysDependOnTheTask) {
  json j = minimal();
  j["columns"] = {{"prompt", "p"}};
  EXPECT_TRUE(throws_error_starting_with([&] { DatasetSpec::from_json(j); }, ErrorKind::kInvalidArgument,
                                         "dataset.columns.prompt: not used by task classification (its columns: text, "
                                         "text_pair, label)"));
  j["columns"] = {{"sentence", "s"}};
  EXPECT_TRUE(throws_error_starting_with(
      [&] { DatasetSpec::from_json(j); }, ErrorKind::kInvalidArgument,
      "dataset.columns: unknown key \"sentence\" (valid for task classification: text, "
      "text_pair, label)"));
  json c = minimal("causal_lm");
  c["columns"] = {{"text", "t"}};
  EXPECT_TRUE(throws_error_starting_with(
      [&] { DatasetSpec::from_json(c); }, ErrorKind::kInvalidArgument,
      "dataset.columns.text: not used by task causal_lm (its columns: prompt, completion)"));
  j["columns"] = {{"text", 3}};
  EXPECT_TRUE(throws_error_starting_with([&] { DatasetSpec::from_json(j); }, ErrorKind::kInvalidArgument,
                                         "dataset.columns.text: expected a string, found a number"));
  j["columns"] = {{"text", "s"}, {"text_pair", nullptr}};
  EXPECT_EQ(DatasetSpec::from_json(j).columns.text_pair, "");
}

TEST(Spec, TaskErrors) {
  json j = minimal();
  j.erase("task");
  EXPECT_TRUE(throws_error_starting_with([&] { DatasetSpec::from_json(j); }, ErrorKind::kInvalidArgument,
                                         "dataset: missing key \"task\""));
  j["task"] = "seq2seq";
  EXPECT_TRUE(throws_error_starting_with(
      [&] { DatasetSpec::from_json(j); }, ErrorKind::kInvalidArgument,
      "dataset.task: unknown value \"seq2seq\" (valid: classification, regression, causal_lm)"));
  EXPECT_TRUE(throws_error_starting_with([&] { DatasetSpec::from_json(json::array()); }, ErrorKind::kInvalidArgument,
                                         "dataset: expected an object, found an array"));
}

TEST(Spec, MissingFiles) {
  json j = minimal();
  j.erase("train");
  EXPECT_TRUE(throws_error_starting_with([&] { DatasetSpec::from_json(j); }, ErrorKind::kInvalidArgument,
                                         "dataset.train: missing"));
  j = minimal();
  j.erase("validation");
  EXPECT_TRUE(throws_error_starting_with([&] { DatasetSpec::from_json(j); }, ErrorKind::kInvalidArgument,
                                         "dataset.validation: missing"));
}

TEST(Spec, LabelErrors) {
  json j = minimal("regression");
  j["labels"] = {"a"};
  EXPECT_TRUE(throws_error_starting_with(
      [&] { DatasetSpec::from_json(j); }, ErrorKind::kInvalidArgument,
      "dataset.labels: only a classification task has labels (this task is regression)"));
  j = minimal();
  j["labels"] = {"a", 1.5};
  EXPECT_TRUE(throws_error_starting_with(
      [&] { DatasetSpec::from_json(j); }, ErrorKind::kInvalidArgument,
      "dataset.labels[1]: expected a string or an integer, found a non-integer number"));
  j["labels"] = {"a", "b", "a"};
  EXPECT_TRUE(throws_error_starting_with([&] { DatasetSpec::from_json(j); }, ErrorKind::kInvalidArgument,
                                         "dataset.labels[2]: \"a\" is listed twice"));
  j["labels"] = {"0", 0};  // the same label written two ways
  EXPECT_TRUE(throws_error_starting_with([&] { DatasetSpec::from_json(j); }, ErrorKind::kInvalidArgument,
                                         "dataset.labels[1]: \"0\" is listed twice"));
  j["labels"] = "a,b";
  EXPECT_TRUE(throws_error_starting_with([&] { DatasetSpec::from_json(j); }, ErrorKind::kInvalidArgument,
                                         "dataset.labels: expected an array, found a string"));
}

TEST(Spec, ValueErrors) {
  json j = minimal();
  j["max_length"] = -1;
  EXPECT_TRUE(throws_error_starting_with([&] { DatasetSpec::from_json(j); }, ErrorKind::kInvalidArgument,
                                         "dataset.max_length: expected a non-negative integer", {"found -1"}));
  j["max_length"] = "128";
  EXPECT_TRUE(throws_error_starting_with([&] { DatasetSpec::from_json(j); }, ErrorKind::kInvalidArgument,
                                         "dataset.max_length: expected a non-negative integer", {"found \"128\""}));
  j = minimal();
  j["add_eos"] = true;
  EXPECT_TRUE(throws_error_starting_with(
      [&] { DatasetSpec::from_json(j); }, ErrorKind::kInvalidArgument,
      "dataset.add_eos: only a causal_lm task adds eos (this task is classification)"));
  j = minimal();
  j["header"] = "yes";
  EXPECT_TRUE(throws_error_starting_with([&] { DatasetSpec::from_json(j); }, ErrorKind::kInvalidArgument,
                                         "dataset.header: expected true or false, found a string"));
  j = minimal();
  j["format"] = "parquet";
  EXPECT_TRUE(throws_error_starting_with([&] { DatasetSpec::from_json(j); }, ErrorKind::kInvalidArgument,
                                         "dataset.format: unknown value \"parquet\" (valid: auto, jsonl, csv, tsv, text)"));
  j = minimal();
  j["quoting"] = "double";
  EXPECT_TRUE(throws_error_starting_with([&] { DatasetSpec::from_json(j); }, ErrorKind::kInvalidArgument,
                                         "dataset.quoting: unknown value \"double\" (valid: auto, csv, none)"));
  j = minimal();
  j["train"] = 5;
  EXPECT_TRUE(throws_error_starting_with([&] { DatasetSpec::from_json(j); }, ErrorKind::kInvalidArgument,
                                         "dataset.train: expected a string, found a number"));
}

TEST(Spec, SameColumnTwice) {
  json j = minimal();
  j["columns"] = {{"text", "s"}, {"text_pair", "s"}};
  EXPECT_TRUE(throws_error_starting_with([&] { DatasetSpec::from_json(j); }, ErrorKind::kInvalidArgument,
                                         "dataset.columns.text_pair: the same column as columns.text (\"s\")"));
  j["columns"] = {{"text", "s"}, {"label", "s"}};
  EXPECT_TRUE(throws_error_starting_with([&] { DatasetSpec::from_json(j); }, ErrorKind::kInvalidArgument,
                                         "dataset.columns.label: the same column as a text column (\"s\")"));
  json c = minimal("causal_lm");
  c["columns"] = {{"prompt", "x"}, {"completion", "x"}};
  EXPECT_TRUE(throws_error_starting_with([&] { DatasetSpec::from_json(c); }, ErrorKind::kInvalidArgument,
                                         "dataset.columns.completion: the same column as columns.prompt (\"x\")"));
  j["columns"] = {{"text", ""}};
  EXPECT_TRUE(throws_error_starting_with([&] { DatasetSpec::from_json(j); }, ErrorKind::kInvalidArgument,
                                         "dataset.columns.text: empty"));
}

}  // namespace
}  // namespace mixpeft::data
