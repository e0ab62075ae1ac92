// The trainer end to end, in process, on the tiny fixture models.
#include <cmath>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "mixpeft/error.h"
#include "mixpeft/peft.h"
#include "mixpeft/report.h"
#include "mixpeft/tokenizer.h"
#include "mixpeft/train.h"
#include "models/test_util.h"
#include "train/test_util.h"

namespace mixpeft::train {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

struct Workspace {
  TempDir tmp;
  std::string dir = tmp.path();
  Workspace() {
    testing::write_byte_tokenizer(dir + "/tok");
    testing::write_classification_jsonl(dir + "/train.jsonl", 64, 1);
    testing::write_classification_jsonl(dir + "/dev.jsonl", 32, 2);
    testing::write_causal_jsonl(dir + "/lm_train.jsonl", 32, 3);
    testing::write_causal_jsonl(dir + "/lm_dev.jsonl", 8, 4);
  }
  nlohmann::json job(const std::string& arch, const nlohmann::json& peft, const std::string& out) const {
    return {{"output_dir", dir + "/" + out},
            {"seed", 3},
            {"model", {{"path", testing::fixture_dir(arch)}, {"tokenizer", dir + "/tok"}}},
            {"dataset",
             {{"task", "classification"}, {"train", dir + "/train.jsonl"}, {"validation", dir + "/dev.jsonl"}}},
            {"peft", peft},
            {"train",
             {{"batch_size", 8}, {"lr", 5e-3}, {"epochs", 2}, {"log_every", 1}, {"progress", "off"},
              {"eval_every", 4}}}};
  }
};

std::vector<double> logged(const std::string& out, const std::string& event, const std::string& key) {
  std::vector<double> v;
  for (const auto& r : report::read_jsonl(out + "/metrics.jsonl"))
    if (r.value("event", "") == event) v.push_back(event == "eval" ? r["metrics"][key].get<double>() : r[key].get<double>());
  return v;
}

TEST(Trainer, LoraClassifierLearnsAndEvalReproducesTheLoggedMetric) {
  Workspace s;
  auto j = s.job("llama", {{"peft_type", "LORA"}, {"r", 4}, {"lora_alpha", 8}}, "lora");
  j["train"]["epochs"] = 4;
  JobSpec job = JobSpec::from_json(j);
  RunResult r = run_training(job, {});
  EXPECT_EQ(r.steps, 32);  // 64 rows / 8 per batch * 4 epochs
  auto loss = logged(job.output_dir, "train", "loss");
  ASSERT_EQ(loss.size(), 32u);
  const double first = (loss[0] + loss[1] + loss[2] + loss[3]) / 4, last = (loss[28] + loss[29] + loss[30] + loss[31]) / 4;
  EXPECT_LT(last, 0.6 * first) << "first " << first << " last " << last;
  EXPECT_GE(r.best_metrics["accuracy"].get<double>(), 0.9);
  EXPECT_TRUE(fs::exists(job.output_dir + "/curves.svg"));
  EXPECT_TRUE(fs::exists(job.output_dir + "/final/adapter_model.safetensors"));

  // The saved best adapter, loaded fresh, gives the logged validation metrics exactly.
  auto peft = load_adapter(job.model.path, r.best_dir);
  EXPECT_EQ(peft->task_type(), "SEQ_CLS");
  auto tokenizer = tok::Tokenizer::load(job.model.tokenizer);
  data::Dataset ds = data::load_dataset(job.dataset, *tokenizer);
  EvalOptions eo;
  eo.batch_size = 8;
  eo.pad_id = data::pad_id_for(*tokenizer);
  nlohmann::json m = evaluate(peft->model(), ds, ds.validation, eo);
  EXPECT_EQ(m["accuracy"], r.best_metrics["accuracy"]);
  EXPECT_NEAR(m["loss"].get<double>(), r.best_metrics["loss"].get<double>(), 1e-6);
  // Merged into the base weights: the same predictions.
  auto merged = peft->merge_and_unload();
  nlohmann::json mm = evaluate(*merged, ds, ds.validation, eo);
  EXPECT_EQ(mm["accuracy"], m["accuracy"]);
  EXPECT_NEAR(mm["loss"].get<double>(), m["loss"].get<double>(), 1e-5);
}

// N steps straight, or N/2, stop, resume: the same losses, bit for bit.
void expect_resume_identical(const Workspace& s, const nlohmann::json& peft, const std::string& name) {
  auto j = s.job("qwen2", peft, name + "-straight");
  j["train"]["max_steps"] = 8;
  j["train"]["save_every"] = 2;
  JobSpec straight = JobSpec::from_json(j);
  run_training(straight, {});

  j["output_dir"] = s.dir + "/" + name + "-resumed";
  JobSpec resumed = JobSpec::from_json(j);
  RunOptions stop;
  stop.stop_after_steps = 5;  // the newest checkpoint is step 4; step 5 is lost, as in a kill
  RunResult half = run_training(resumed, stop);
  EXPECT_EQ(half.steps, 5);
  EXPECT_TRUE(half.final_dir.empty());
  RunOptions again;
  again.resume = true;
  RunResult rest = run_training(resumed, again);
  EXPECT_EQ(rest.resumed_from_step, 4);
  EXPECT_EQ(rest.steps, 8);
  auto a = logged(straight.output_dir, "train", "loss"), b = logged(resumed.output_dir, "train", "loss");
  ASSERT_EQ(a.size(), 8u);
  ASSERT_EQ(b.size(), 8u);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i], b[i]) << name << ": step " << i + 1;
  auto fa = io::load_tensors(straight.output_dir + "/final/adapter_model.safetensors");
  auto fb = io::load_tensors(resumed.output_dir + "/final/adapter_model.safetensors");
  ASSERT_EQ(fa.size(), fb.size());
  for (auto& [k, t] : fa) EXPECT_TRUE(torch::equal(t, fb.at(k))) << name << ": " << k;
}

TEST(Trainer, ResumeIsBitExactWithDropout) {
  Workspace s;
  expect_resume_identical(s, {{"peft_type", "LORA"}, {"r", 4}, {"lora_dropout", 0.1}}, "lora");
}

TEST(Trainer, ResumeIsBitExactForAdaMixRouting) {
  Workspace s;
  expect_resume_identical(s, {{"peft_type", "ADAMIX"}, {"num_experts", 4}, {"bottleneck_size", 8}}, "adamix");
}

// The loss of a step is its summed terms over their count, so 2 micro-batches
// of 4 rows are the same step as 1 batch of 8 (up to float summation order).
TEST(Trainer, GradientAccumulationEqualsOneLargeBatch) {
  Workspace s;
  auto j = s.job("llama", {{"peft_type", "LORA"}, {"r", 4}}, "big");
  j["train"]["max_steps"] = 6;
  JobSpec big = JobSpec::from_json(j);
  run_training(big, {});
  j["output_dir"] = s.dir + "/accum";
  j["train"]["batch_size"] = 4;
  j["train"]["grad_accum"] = 2;
  JobSpec accum = JobSpec::from_json(j);
  run_training(accum, {});
  auto a = logged(big.output_dir, "train", "loss"), b = logged(accum.output_dir, "train", "loss");
  ASSERT_EQ(a.size(), 6u);
  ASSERT_EQ(b.size(), 6u);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-6) << "step " << i + 1;
  auto fa = io::load_tensors(big.output_dir + "/final/adapter_model.safetensors");
  auto fb = io::load_tensors(accum.output_dir + "/final/adapter_model.safetensors");
  for (auto& [k, t] : fa) EXPECT_LT((t - fb.at(k)).abs().max().item<double>(), 1e-5) << k;
}

TEST(Trainer, CausalLmLossFallsOnCompletions) {
  Workspace s;
  auto j = s.job("gpt2", {{"peft_type", "LORA"}, {"r", 8}}, "lm");
  j["dataset"] = {{"task", "causal_lm"}, {"train", s.dir + "/lm_train.jsonl"}, {"validation", s.dir + "/lm_dev.jsonl"}};
  j["train"]["epochs"] = 6;
  j["train"]["lr"] = 1e-2;
  JobSpec job = JobSpec::from_json(j);
  RunResult r = run_training(job, {});
  auto ppl = logged(job.output_dir, "eval", "perplexity");
  ASSERT_GE(ppl.size(), 2u);
  EXPECT_LT(ppl.back(), 0.5 * ppl.front());
  EXPECT_EQ(r.final_metrics["perplexity"], ppl.back());
}

// AdaMix's consistency step on a causal LM (the cross-entropy and the KL term
// in one function over both passes' logits): it learns, and the term is in
// the logged loss (the same run without it logs other losses once the
// experts have drifted apart; at step 1 they are copies and the KL is 0).
TEST(Trainer, AdaMixConsistencyOnACausalLmLearns) {
  Workspace s;
  const nlohmann::json peft{{"peft_type", "ADAMIX"}, {"variant", "lora"}, {"num_experts", 4}, {"r", 8},
                            {"share_B", false}};
  auto j = s.job("gpt2", peft, "kl");
  j["dataset"] = {{"task", "causal_lm"}, {"train", s.dir + "/lm_train.jsonl"}, {"validation", s.dir + "/lm_dev.jsonl"}};
  j["train"]["epochs"] = 6;
  j["train"]["lr"] = 1e-2;
  JobSpec with = JobSpec::from_json(j);
  ASSERT_EQ(with.train.consistency_weight, 1.0);
  run_training(with, {});
  auto ppl = logged(with.output_dir, "eval", "perplexity");
  ASSERT_GE(ppl.size(), 2u);
  EXPECT_LT(ppl.back(), 0.75 * ppl.front());
  j["output_dir"] = s.dir + "/no_kl";
  j["train"]["consistency_weight"] = 0.0;
  JobSpec without = JobSpec::from_json(j);
  run_training(without, {});
  const auto a = logged(with.output_dir, "train", "loss"), b = logged(without.output_dir, "train", "loss");
  ASSERT_EQ(a.size(), b.size());
  ASSERT_GE(a.size(), 3u);
  EXPECT_NEAR(a[0], b[0], 1e-6);
  double gap = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_TRUE(std::isfinite(a[i])) << "step " << i + 1;
    gap = std::max(gap, std::abs(a[i] - b[i]));
  }
  EXPECT_GT(gap, 1e-4);
}

TEST(Trainer, ANanLossStopsTheRunAndKeepsTheLastCheckpoint) {
  Workspace s;
  auto j = s.job("llama", {{"peft_type", "LORA"}, {"r", 4}}, "nan");
  j["train"]["lr"] = 1e12;
  j["train"]["max_grad_norm"] = 0;
  j["train"]["save_every"] = 1;
  j["train"]["schedule"] = "constant";
  JobSpec job = JobSpec::from_json(j);
  try {
    run_training(job, {});
    FAIL() << "the run did not stop";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_TRUE(m.find("the training loss is") != std::string::npos ||
                m.find("the training gradient norm is") != std::string::npos) << m;
    EXPECT_NE(m.find("last good checkpoint"), std::string::npos) << m;
  }
  auto ckpts = list_checkpoints(job.output_dir);
  ASSERT_FALSE(ckpts.empty());
  // The checkpoint left behind is finite.
  for (auto& [k, t] : io::load_tensors(ckpts.back() + "/trainer_state.safetensors"))
    if (t.is_floating_point()) {
      EXPECT_TRUE(torch::isfinite(t).all().item<bool>()) << k;
    }
}

TEST(Trainer, BadDataFailsBeforeTraining) {
  Workspace s;
  {
    std::ofstream out(s.dir + "/bad_dev.jsonl");
    out << R"({"text": "good sun", "label": "pos"})" << "\n" << R"({"text": "so so", "label": "meh"})" << "\n";
  }
  auto j = s.job("llama", {{"peft_type", "LORA"}, {"r", 4}}, "bad");
  j["dataset"]["validation"] = s.dir + "/bad_dev.jsonl";
  JobSpec job = JobSpec::from_json(j);
  try {
    run_training(job, {});
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("bad_dev.jsonl:2: label \"meh\" is not a known label"), std::string::npos) << m;
  }
  EXPECT_FALSE(fs::exists(job.output_dir + "/metrics.jsonl"));
}

TEST(Trainer, ResumeRefusesAChangedJob) {
  Workspace s;
  auto j = s.job("llama", {{"peft_type", "LORA"}, {"r", 4}}, "changed");
  j["train"]["max_steps"] = 2;
  run_training(JobSpec::from_json(j), {});
  j["train"]["lr"] = 1e-4;
  j["train"]["max_steps"] = 4;  // may change
  RunOptions o;
  o.resume = true;
  try {
    run_training(JobSpec::from_json(j), o);
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("differs from the one that wrote this checkpoint in: train.lr"), std::string::npos) << m;
  }
}

}  // namespace
}  // namespace mixpeft::train
