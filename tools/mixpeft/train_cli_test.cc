// `mixpeft train | eval | merge | export` end to end through the built
// binary, on the tiny fixture models with generated data: the loss falls,
// eval reproduces the logged metric, merge keeps it, export writes an HF
// PEFT adapter, a run killed during a save resumes to the same losses, two
// data-parallel processes match one, and bad input gets a clear message.
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "cli_test_util.h"
#include "mixpeft/checkpoint.h"
#include "mixpeft/report.h"
#include "mixpeft/train.h"
#include "models/test_util.h"
#include "train/test_util.h"

namespace {

namespace fs = std::filesystem;
using mixpeft::testing::CliRun;
using mixpeft::testing::has;
using mixpeft::testing::run_cli;

class TrainCli : public ::testing::Test {
 protected:
  void SetUp() override {
    mixpeft::testing::write_byte_tokenizer(dir + "/tok");
    mixpeft::testing::write_classification_jsonl(dir + "/train.jsonl", 64, 1);
    mixpeft::testing::write_classification_jsonl(dir + "/dev.jsonl", 32, 2);
    mixpeft::testing::write_classification_jsonl(dir + "/test.jsonl", 24, 3);
  }
  // A TOML job for the llama fixture; `peft` is the [peft] table's body.
  std::string job(const std::string& name, const std::string& peft, const std::string& extra_train = "") {
    const std::string path = dir + "/" + name + ".toml";
    std::ofstream out(path);
    out << "output_dir = \"" << dir << "/" << name << "\"\nseed = 3\n\n"
        << "[model]\npath = \"" << mixpeft::testing::fixture_dir("llama") << "\"\ntokenizer = \"" << dir << "/tok\"\n\n"
        << "[dataset]\ntask = \"classification\"\ntrain = \"" << dir << "/train.jsonl\"\nvalidation = \"" << dir
        << "/dev.jsonl\"\ntest = \"" << dir << "/test.jsonl\"\n\n"
        << "[peft]\n" << peft << "\n\n"
        << "[train]\nepochs = 4\nbatch_size = 8\nlr = 5e-3\neval_every = 8\nlog_every = 1\n" << extra_train;
    return path;
  }
  std::vector<double> losses(const std::string& name) {
    std::vector<double> v;
    for (const auto& r : mixpeft::report::read_jsonl(dir + "/" + name + "/metrics.jsonl"))
      if (r.value("event", "") == "train") v.push_back(r["loss"].get<double>());
    return v;
  }
  nlohmann::json eval_json(const std::string& args) {
    CliRun r = run_cli("--threads 1 eval " + args + " --json");
    EXPECT_EQ(r.code, 0) << r.err;
    return r.code == 0 ? nlohmann::json::parse(r.out)["metrics"] : nlohmann::json();
  }
  mixpeft::testing::TempDir tmp;
  std::string dir = tmp.path();
};

// train -> eval -> merge -> eval -> export, for one method.
void train_eval_merge_export(TrainCli& t, const std::string& name, const std::string& job,
                             const std::vector<double>& losses, const std::string& dir,
                             const std::function<nlohmann::json(const std::string&)>& eval_json) {
  ASSERT_EQ(losses.size(), 32u) << name;
  const double first = (losses[0] + losses[1] + losses[2] + losses[3]) / 4;
  const double last = (losses[28] + losses[29] + losses[30] + losses[31]) / 4;
  EXPECT_LT(last, 0.5 * first) << name << ": the loss did not fall (" << first << " -> " << last << ")";

  // The best validation metric in the log...
  double best_accuracy = -1, best_loss = 0;
  for (const auto& r : mixpeft::report::read_jsonl(dir + "/" + name + "/metrics.jsonl"))
    if (r.value("event", "") == "end") {
      best_accuracy = r["best_metrics"]["accuracy"].get<double>();
      best_loss = r["best_metrics"]["loss"].get<double>();
    }
  ASSERT_GE(best_accuracy, 0) << name << ": no end record";
  // ...is what eval measures on the saved best adapter,
  nlohmann::json m = eval_json(job);
  EXPECT_EQ(m["accuracy"].get<double>(), best_accuracy) << name;
  EXPECT_NEAR(m["loss"].get<double>(), best_loss, 1e-6) << name;
  // result.json: the test split was measured with the best weights, as eval measures it.
  auto result = nlohmann::json::parse(mixpeft::testing::slurp(dir + "/" + name + "/result.json"));
  EXPECT_EQ(result["test_step"], result["best_step"]) << name;
  EXPECT_EQ(result["best_metrics"]["accuracy"].get<double>(), best_accuracy) << name;
  nlohmann::json tm = eval_json(job + " --split test");
  EXPECT_EQ(result["test_metrics"]["examples"], 24) << name;
  EXPECT_EQ(tm["accuracy"].get<double>(), result["test_metrics"]["accuracy"].get<double>()) << name;
  EXPECT_NEAR(tm["loss"].get<double>(), result["test_metrics"]["loss"].get<double>(), 1e-6) << name;
  EXPECT_EQ(result["artifact_bytes"].get<int64_t>(),
            static_cast<int64_t>(fs::file_size(dir + "/" + name + "/best/adapter_model.safetensors"))) << name;
  EXPECT_GT(result["trainable_parameters"].get<int64_t>(), 0) << name;
  EXPECT_GT(result["total_parameters"].get<int64_t>(), result["trainable_parameters"].get<int64_t>()) << name;
  // and on the model with the adapter merged in.
  const std::string fixture = mixpeft::testing::fixture_dir("llama");
  CliRun merge = run_cli("--threads 1 merge --model " + fixture + " --adapter " + dir + "/" + name + "/best --out " +
                         dir + "/" + name + "-merged");
  ASSERT_EQ(merge.code, 0) << merge.err;
  nlohmann::json mm = eval_json(job + " --no-adapter --set model.path=" + dir + "/" + name + "-merged");
  EXPECT_EQ(mm["accuracy"].get<double>(), best_accuracy) << name;
  EXPECT_NEAR(mm["loss"].get<double>(), best_loss, 1e-5) << name;
  // export: an HF PEFT LoRA adapter with the classification head.
  const std::string out = dir + "/" + name + "-hf";
  CliRun exp = run_cli("export --model " + fixture + " --adapter " + dir + "/" + name + "/best --out " + out);
  ASSERT_EQ(exp.code, 0) << exp.err;
  auto config = nlohmann::json::parse(mixpeft::testing::slurp(out + "/adapter_config.json"));
  EXPECT_EQ(config["peft_type"], "LORA");
  EXPECT_EQ(config["task_type"], "SEQ_CLS");
  EXPECT_EQ(config["modules_to_save"], nlohmann::json::array({"score"}));
  auto tensors = mixpeft::io::load_tensors(out + "/adapter_model.safetensors");
  EXPECT_TRUE(tensors.count("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight")) << name;
  EXPECT_TRUE(tensors.count("base_model.model.score.weight")) << name;
  (void)t;
}

TEST_F(TrainCli, LoraTrainEvalMergeExport) {
  const std::string j = job("lora", "peft_type = \"LORA\"\nr = 4\nlora_alpha = 8");
  CliRun r = run_cli("--threads 1 train " + j + " --progress plain");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(has(r.err, "step 8/32 (25%)")) << r.err;      // plain progress lines
  EXPECT_TRUE(has(r.out, "best accuracy")) << r.out;        // the summary table
  EXPECT_TRUE(fs::exists(dir + "/lora/curves.svg"));
  train_eval_merge_export(*this, "lora", j, losses("lora"), dir,
                          [&](const std::string& a) { return eval_json(a); });
  // inspect: the adapter on its base, with what trains.
  CliRun ins = run_cli("inspect " + dir + "/lora/best --model " + mixpeft::testing::fixture_dir("llama"));
  ASSERT_EQ(ins.code, 0) << ins.err;
  EXPECT_TRUE(has(ins.out, "LlamaForSequenceClassification")) << ins.out;
  EXPECT_TRUE(has(ins.out, "task          SEQ_CLS")) << ins.out;
  EXPECT_TRUE(has(ins.out, "trainable     ")) << ins.out;
  EXPECT_TRUE(has(ins.out, "%)")) << ins.out;
  // report: the run's test accuracy, in percent, and a chart.
  CliRun rep = run_cli("report " + dir + "/lora --json --svg " + dir + "/cmp.svg");
  ASSERT_EQ(rep.code, 0) << rep.err;
  auto rows = nlohmann::json::parse(rep.out);
  auto result = nlohmann::json::parse(mixpeft::testing::slurp(dir + "/lora/result.json"));
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0]["method"], "LoRA r4");
  EXPECT_DOUBLE_EQ(rows[0]["accuracy %"].get<double>(), 100 * result["test_metrics"]["accuracy"].get<double>());
  EXPECT_TRUE(has(mixpeft::testing::slurp(dir + "/cmp.svg"), "<svg"));
  CliRun missing = run_cli("report " + dir + "/lora " + dir + "/nope");
  EXPECT_EQ(missing.code, 1);
  EXPECT_TRUE(has(missing.err, dir + "/nope/result.json: not found (has the run finished?)")) << missing.err;
}

TEST_F(TrainCli, AdaMixTrainEvalMergeExport) {
  const std::string j = job("adamix", "peft_type = \"ADAMIX\"\nvariant = \"lora\"\nnum_experts = 4\nr = 4");
  CliRun r = run_cli("--threads 1 train " + j + " --progress off");
  ASSERT_EQ(r.code, 0) << r.err;
  train_eval_merge_export(*this, "adamix", j, losses("adamix"), dir,
                          [&](const std::string& a) { return eval_json(a); });
}

TEST_F(TrainCli, KilledDuringASaveResumesToTheSameLosses) {
  const std::string extra = "max_steps = 8\nsave_every = 2\n";
  const std::string peft = "peft_type = \"LORA\"\nr = 4\nlora_dropout = 0.1";
  ASSERT_EQ(run_cli("--threads 1 train " + job("straight", peft, extra) + " --progress off").code, 0);
  const std::string j = job("killed", peft, extra);
  // The process dies half-way through writing the checkpoint of step 6.
  CliRun killed = run_cli("--threads 1 train " + j + " --progress off", "MIXPEFT_TEST_CRASH_IN_SAVE=6");
  ASSERT_EQ(killed.code, 86) << killed.err;
  auto left = mixpeft::train::list_checkpoints(dir + "/killed");
  ASSERT_FALSE(left.empty());
  EXPECT_TRUE(has(left.back(), "step-00000004")) << left.back();  // the last good one
  CliRun resumed = run_cli("--threads 1 train " + j + " --resume --progress off");
  ASSERT_EQ(resumed.code, 0) << resumed.err;
  EXPECT_TRUE(has(resumed.err, "resuming from")) << resumed.err;
  EXPECT_EQ(losses("killed"), losses("straight"));
  auto a = mixpeft::io::load_tensors(dir + "/straight/final/adapter_model.safetensors");
  auto b = mixpeft::io::load_tensors(dir + "/killed/final/adapter_model.safetensors");
  for (auto& [k, v] : a) EXPECT_TRUE(torch::equal(v, b.at(k))) << k;
}

TEST_F(TrainCli, TwoProcessesMatchOne) {
  const std::string extra = "max_steps = 6\n";
  const std::string peft = "peft_type = \"LORA\"\nr = 4";
  ASSERT_EQ(run_cli("--threads 1 train " + job("one", peft, extra) + " --progress off").code, 0);
  CliRun two = run_cli("train " + job("two", peft, extra) + " --nproc 2 --progress off");
  ASSERT_EQ(two.code, 0) << two.err;
  auto a = mixpeft::io::load_tensors(dir + "/one/final/adapter_model.safetensors");
  auto b = mixpeft::io::load_tensors(dir + "/two/final/adapter_model.safetensors");
  ASSERT_EQ(a.size(), b.size());
  double worst = 0;
  for (auto& [k, v] : a) worst = std::max(worst, (v - b.at(k)).abs().max().item<double>());
  EXPECT_LT(worst, 1e-5);
  auto la = losses("one"), lb = losses("two");
  ASSERT_EQ(la.size(), lb.size());
  for (size_t i = 0; i < la.size(); ++i) EXPECT_NEAR(la[i], lb[i], 1e-5) << "step " << i + 1;
}

TEST_F(TrainCli, BadInputGetsAClearMessage) {
  const std::string peft = "peft_type = \"LORA\"\nr = 4";
  struct Case {
    std::string name, args, expect;
  };
  std::ofstream(dir + "/empty.jsonl").close();
  {
    std::ofstream bad(dir + "/bad.jsonl");
    bad << R"({"text": "good sun", "label": "pos"})" << "\n" << R"({"text": "oops", "label": )" << "\n";
    std::ofstream unknown(dir + "/unknown.jsonl");
    unknown << R"({"text": "good sun", "label": "pos"})" << "\n" << R"({"text": "so so", "label": "meh"})" << "\n";
    std::ofstream nocol(dir + "/nocol.jsonl");
    nocol << R"({"sentence": "good sun", "label": "pos"})" << "\n";
    std::ofstream typo(dir + "/typo.toml");
    typo << "output_dir = \"x\"\n[model]\npath = \"m\"\n[dataset]\ntask = \"classification\"\ntrain = \"a\"\n"
         << "validation = \"b\"\n[peft]\npeft_type = \"LORA\"\n[train]\nlearning_rate = 1e-3\n";
    std::ofstream syntax(dir + "/syntax.toml");
    syntax << "output_dir = \"x\"\n[model\npath = \"m\"\n";
  }
  const std::string j = job("bad", peft);
  const std::vector<Case> cases = {
      {"malformed line", j + " --set dataset.validation=" + dir + "/bad.jsonl", "bad.jsonl:2: malformed JSON"},
      {"unknown label", j + " --set dataset.validation=" + dir + "/unknown.jsonl",
       "unknown.jsonl:2: label \"meh\" is not a known label"},
      {"empty split", j + " --set dataset.validation=" + dir + "/empty.jsonl", "the validation split has no records"},
      {"missing column", j + " --set dataset.train=" + dir + "/nocol.jsonl", "no column \"text\""},
      {"unknown key", dir + "/typo.toml", "unknown key(s) \"learning_rate\""},
      {"toml syntax", dir + "/syntax.toml", "syntax.toml:2:"},
      {"bad value", j + " --set train.lr=-1", "\"lr\" must be > 0"},
      {"bad override", j + " --set train.lr", "--set train.lr"},
      {"missing model", j + " --set model.path=" + dir + "/nowhere", "nowhere"},
      {"unknown method key", j + " --set peft.rank=8", "\"rank\""},
  };
  for (const auto& c : cases) {
    CliRun r = run_cli("--threads 1 train " + c.args + " --progress off");
    EXPECT_EQ(r.code, 1) << c.name << "\n" << r.err;
    EXPECT_TRUE(has(r.err, c.expect)) << c.name << ": expected \"" << c.expect << "\" in:\n" << r.err;
    EXPECT_FALSE(has(r.err, "internal error")) << c.name << "\n" << r.err;
  }
  EXPECT_FALSE(fs::exists(dir + "/bad/metrics.jsonl"));  // nothing trained
  CliRun help = run_cli("train --help");
  EXPECT_EQ(help.code, 0);
  EXPECT_TRUE(has(help.out, "--resume")) << help.out;
  EXPECT_TRUE(has(help.out, "--nproc")) << help.out;
}

}  // namespace
