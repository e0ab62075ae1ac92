#include <gtest/gtest.h>

#include "mixpeft/error.h"
#include "mixpeft/train.h"

namespace mixpeft::train {
namespace {

nlohmann::json minimal() {
  return {{"output_dir", "runs/x"},
          {"model", {{"path", "models/base"}}},
          {"dataset", {{"task", "classification"}, {"train", "d/train.jsonl"}, {"validation", "d/dev.jsonl"}}},
          {"peft", {{"peft_type", "LORA"}, {"r", 4}}}};
}

std::string error_of(const nlohmann::json& j, ErrorKind* kind = nullptr) {
  try {
    JobSpec::from_json(j, "");
  } catch (const Error& e) {
    if (kind) *kind = e.kind();
    return e.what();
  }
  return "(no error)";
}

TEST(JobSpec, DefaultsAndRoundTrip) {
  JobSpec s = JobSpec::from_json(minimal(), "");
  EXPECT_EQ(s.output_dir, "runs/x");
  EXPECT_EQ(s.seed, 42u);
  EXPECT_EQ(s.method(), "LORA");
  EXPECT_EQ(s.train.batch_size, 8);
  EXPECT_EQ(s.train.schedule, "linear");
  JobSpec again = JobSpec::from_json(s.to_json(), "");
  EXPECT_EQ(again.to_json(), s.to_json());
}

TEST(JobSpec, RelativePathsFollowTheBaseDir) {
  JobSpec s = JobSpec::from_json(minimal(), "/jobs");
  EXPECT_EQ(s.output_dir, "/jobs/runs/x");
  EXPECT_EQ(s.model.path, "/jobs/models/base");
  EXPECT_EQ(s.dataset.train, "/jobs/d/train.jsonl");
}

TEST(JobSpec, UnknownKeysAreNamedWithTheValidOnes) {
  auto j = minimal();
  j["train"] = {{"lrr", 1e-3}};
  const std::string m = error_of(j);
  EXPECT_NE(m.find("train: unknown key(s) \"lrr\""), std::string::npos) << m;
  EXPECT_NE(m.find("lr"), std::string::npos) << m;
  EXPECT_NE(m.find("batch_size"), std::string::npos) << m;

  j = minimal();
  j["modell"] = {{"path", "x"}};
  EXPECT_NE(error_of(j).find("job: unknown key(s) \"modell\""), std::string::npos) << error_of(j);

  j = minimal();
  j["peft"]["rank"] = 8;  // LoRA calls it r
  EXPECT_NE(error_of(j).find("rank"), std::string::npos) << error_of(j);
}

TEST(JobSpec, BadValuesNameTheirKey) {
  auto j = minimal();
  j["train"] = {{"lr", -1}};
  EXPECT_NE(error_of(j).find("train: \"lr\" must be > 0"), std::string::npos) << error_of(j);
  j["train"] = {{"schedule", "exponential"}};
  EXPECT_NE(error_of(j).find("linear, cosine, constant"), std::string::npos) << error_of(j);
  j["train"] = {{"batch_size", 0}};
  EXPECT_NE(error_of(j).find("\"batch_size\" must be >= 1"), std::string::npos) << error_of(j);
  j["train"] = {{"metric", "bleu"}};
  EXPECT_NE(error_of(j).find("accuracy"), std::string::npos) << error_of(j);
  j = minimal();
  j.erase("output_dir");
  EXPECT_NE(error_of(j).find("output_dir"), std::string::npos) << error_of(j);
  j = minimal();
  j["peft"] = {{"r", 4}};
  EXPECT_NE(error_of(j).find("\"peft_type\" is required"), std::string::npos) << error_of(j);
  j = minimal();
  j["peft"] = {{"peft_type", "FULL"}, {"r", 4}};
  EXPECT_NE(error_of(j).find("\"r\""), std::string::npos) << error_of(j);
  j = minimal();
  j["dataset"]["task"] = "causal_lm";
  j["dataset"].erase("columns");
  j["peft"] = {{"peft_type", "HEAD"}};
  EXPECT_NE(error_of(j).find("HEAD"), std::string::npos) << error_of(j);
}

TEST(TaskHeads, AClassifierFromACausalLmCheckpointGetsAFreshHead) {
  nlohmann::json config = {{"model_type", "llama"}, {"architectures", {"LlamaForCausalLM"}}};
  LoadOptions o = load_options_for_task(config, data::Task::kClassification, 3, 7, "cfg");
  EXPECT_EQ(o.architecture, "LlamaForSequenceClassification");
  EXPECT_EQ(o.num_labels, 3);
  EXPECT_EQ(o.init_seed, 7u);
  EXPECT_FALSE(o.allow_missing.empty());
  EXPECT_FALSE(o.ignore_unexpected.empty());
  // A BERT checkpoint has no causal LM head.
  nlohmann::json bert = {{"model_type", "bert"}, {"architectures", {"BertModel"}}};
  EXPECT_THROW(load_options_for_task(bert, data::Task::kCausalLm, 0, 0, "cfg"), Error);
  // A classifier checkpoint with another label count is refused, naming both.
  nlohmann::json cls = {{"model_type", "bert"}, {"architectures", {"BertForSequenceClassification"}}, {"num_labels", 2}};
  try {
    load_options_for_task(cls, data::Task::kClassification, 5, 0, "cfg");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("has 2 label(s), the dataset 5"), std::string::npos) << e.what();
  }
  // Same labels: the checkpoint's own head is kept.
  LoadOptions keep = load_options_for_task(cls, data::Task::kClassification, 2, 0, "cfg");
  EXPECT_TRUE(keep.architecture.empty());
  EXPECT_TRUE(keep.allow_missing.empty());
}

}  // namespace
}  // namespace mixpeft::train
