// LoRA against HF PEFT 0.10.0: the fixtures' adapter/ folders (gpt2, llama,
// qwen2) and the logits, loss, gradients and merged weights PEFT computed.
#include <gtest/gtest.h>

#include "mixpeft/checkpoint.h"
#include "mixpeft/error.h"
#include "mixpeft/peft.h"
#include "mixpeft/safetensors.h"
#include "models/test_util.h"

namespace mixpeft::peft {
namespace {

using mixpeft::testing::fixture_dir;
using mixpeft::testing::max_abs_diff;
using mixpeft::testing::max_abs_diff_at;
using mixpeft::testing::TempDir;
using mixpeft::testing::throws_error;

at::Tensor causal_lm_loss(const at::Tensor& logits, const at::Tensor& labels) {
  const int64_t T = labels.size(1);
  return torch::nn::functional::cross_entropy(
      logits.narrow(1, 0, T - 1).reshape({-1, logits.size(-1)}), labels.narrow(1, 1, T - 1).reshape({-1}),
      torch::nn::functional::CrossEntropyFuncOptions().ignore_index(-100));
}

class PeftFixture : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    ref = mixpeft::testing::reference(GetParam());
    peft = PeftModel::load(load_model(fixture_dir(GetParam())), fixture_dir(GetParam()) + "/adapter");
    in.input_ids = ref.at("input_ids");
    in.attention_mask = ref.at("attention_mask");
  }
  std::map<std::string, at::Tensor> ref;
  std::shared_ptr<PeftModel> peft;
  ModelInputs in;
};

TEST_P(PeftFixture, LogitsLossAndGradientsMatchPeft) {
  auto out = peft->forward(in);
  EXPECT_LT(max_abs_diff_at(out.logits, ref.at("logits_lora"), in.attention_mask), 1e-4);
  auto loss = causal_lm_loss(out.logits, ref.at("labels"));
  EXPECT_NEAR(loss.item<double>(), ref.at("loss_lora").item<double>(), 1e-4);
  loss.backward();
  int grads = 0;
  for (auto& [name, param] : peft->trainable_parameters()) {
    const auto& expected = ref.at("grad." + peft->saved_name(name));
    ASSERT_TRUE(param.grad().defined()) << name;
    const double rel = (param.grad() - expected).abs().max().item<double>() /
                       std::max(expected.abs().max().item<double>(), 1e-12);
    EXPECT_LT(rel, 1e-4) << name;
    ++grads;
  }
  EXPECT_EQ(grads, 8 - 4 * (GetParam() == "gpt2"));  // c_attn x 2 layers, or q/v x 2 layers
  for (auto& p : peft->model().named_parameters())
    if (!p.value().requires_grad()) {
      EXPECT_FALSE(p.value().grad().defined()) << p.key();
    }
}

TEST_P(PeftFixture, MergeMatchesPeftMergeAndUnload) {
  torch::NoGradGuard no_grad;
  peft->merge();
  auto merged = peft->forward(in).logits;
  EXPECT_LT(max_abs_diff_at(merged, ref.at("logits_merged"), in.attention_mask), 1e-5);
  auto params = peft->model().named_parameters();
  int checked = 0;
  for (const auto& [key, expected] : ref) {
    if (key.rfind("merged_weight.", 0) != 0) continue;
    const std::string name = key.substr(std::string("merged_weight.").size());
    EXPECT_LT(max_abs_diff(params[name], expected), 1e-5) << name;
    ++checked;
  }
  EXPECT_GT(checked, 0);
  peft->unmerge();
  EXPECT_LT(max_abs_diff_at(peft->forward(in).logits, ref.at("logits_lora"), in.attention_mask), 1e-4);
  auto plain = peft->merge_and_unload();
  for (auto& p : plain->named_parameters()) EXPECT_EQ(p.key().find("lora_"), std::string::npos) << p.key();
  EXPECT_LT(max_abs_diff_at(plain->forward(in).logits, ref.at("logits_merged"), in.attention_mask), 1e-5);
}

TEST_P(PeftFixture, ExportWritesTheOriginalTensors) {
  TempDir tmp;
  peft->export_lora(tmp.path());
  auto original = io::load_tensors(fixture_dir(GetParam()) + "/adapter/adapter_model.safetensors");
  auto written = io::load_tensors(tmp.path() + "/adapter_model.safetensors");
  ASSERT_EQ(original.size(), written.size());
  for (const auto& [name, t] : original) {
    ASSERT_TRUE(written.count(name)) << name;
    EXPECT_TRUE(torch::equal(written.at(name), t)) << name;
  }
  auto config = nlohmann::json::parse(io::read_file(tmp.path() + "/adapter_config.json"));
  auto hf = nlohmann::json::parse(io::read_file(fixture_dir(GetParam()) + "/adapter/adapter_config.json"));
  for (const char* k : {"peft_type", "r", "lora_alpha", "target_modules", "fan_in_fan_out", "bias"})
    EXPECT_EQ(config[k], hf[k]) << k;
  // And it loads back to the same outputs.
  auto again = PeftModel::load(load_model(fixture_dir(GetParam())), tmp.path());
  torch::NoGradGuard no_grad;
  EXPECT_LT(max_abs_diff(again->forward(in).logits, peft->forward(in).logits), 1e-6);
}

// merge_and_unload, saved as an HF checkpoint, loads back as a plain model
// with HF PEFT's merged logits and the base checkpoint's names and shapes.
TEST_P(PeftFixture, MergedModelSavesAsAnHFCheckpoint) {
  auto merged = peft->merge_and_unload();
  TempDir tmp;
  save_model(*merged, tmp.path());
  auto again = load_model(tmp.path());
  torch::NoGradGuard no_grad;
  EXPECT_LT(max_abs_diff_at(again->forward(in).logits, ref.at("logits_merged"), in.attention_mask), 1e-5);
  auto saved = io::SafetensorsFile::open(tmp.path() + "/model.safetensors");
  auto original = io::SafetensorsFile::open(fixture_dir(GetParam()) + "/model.safetensors");
  ASSERT_EQ(saved->tensors().size(), original->tensors().size());
  for (const auto& info : original->tensors()) {
    const auto* other = saved->find(info.name);
    ASSERT_NE(other, nullptr) << info.name;
    EXPECT_EQ(other->shape, info.shape) << info.name;
  }
}

INSTANTIATE_TEST_SUITE_P(PeftFixtures, PeftFixture, ::testing::Values("gpt2", "llama", "qwen2"));

TEST(LoraConfig, BadConfigsAreNamed) {
  auto base = [] { return load_model(fixture_dir("llama")); };
  EXPECT_TRUE(throws_error([&] { PeftModel::create(base(), {{"peft_type", "LORA"}, {"rank", 4}}); },
                           ErrorKind::kInvalidArgument, {"unknown key", "\"rank\"", "lora_alpha"}));
  EXPECT_TRUE(throws_error([&] { PeftModel::create(base(), {{"peft_type", "LORA"}, {"r", 0}}); },
                           ErrorKind::kInvalidArgument, {"\"r\"", "positive"}));
  EXPECT_TRUE(throws_error([&] { PeftModel::create(base(), {{"peft_type", "LORA"}, {"use_dora", true}}); },
                           ErrorKind::kUnsupported, {"use_dora"}));
  EXPECT_TRUE(throws_error([&] { PeftModel::create(base(), {{"peft_type", "PREFIX_TUNING"}}); },
                           ErrorKind::kUnsupported, {"PREFIX_TUNING", "LORA"}));
  EXPECT_TRUE(throws_error([&] { PeftModel::create(base(), {{"peft_type", "LORA"}, {"target_modules", {"c_attn"}}}); },
                           ErrorKind::kInvalidArgument, {"c_attn", "matched no Linear", "q_proj"}));
  EXPECT_TRUE(throws_error(
      [&] { PeftModel::create(base(), {{"peft_type", "LORA"}, {"modules_to_save", {"classifier"}}}); },
      ErrorKind::kInvalidArgument, {"classifier"}));
}

TEST(LoraConfig, RegexTargetsAndBiasModes) {
  auto peft = PeftModel::create(load_model(fixture_dir("qwen2")),
                                {{"peft_type", "LORA"}, {"r", 2}, {"target_modules", ".*\\.1\\.self_attn\\.(k|v)_proj"},
                                 {"bias", "lora_only"}});
  std::vector<std::string> names;
  for (auto& [n, t] : peft->trainable_parameters()) names.push_back(n);
  std::vector<std::string> expected = {"model.layers.1.self_attn.k_proj.bias", "model.layers.1.self_attn.k_proj.lora_A.weight",
                                       "model.layers.1.self_attn.k_proj.lora_B.weight", "model.layers.1.self_attn.v_proj.bias",
                                       "model.layers.1.self_attn.v_proj.lora_A.weight", "model.layers.1.self_attn.v_proj.lora_B.weight"};
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, expected);
}

TEST(LoraLoad, MismatchedAdapterFilesAreNamed) {
  TempDir tmp;
  std::filesystem::copy(fixture_dir("llama") + "/adapter", tmp.path(), std::filesystem::copy_options::recursive);
  auto config = nlohmann::json::parse(io::read_file(tmp.path() + "/adapter_config.json"));
  config["r"] = 8;
  io::write_file_atomic(tmp.path() + "/adapter_config.json", config.dump());
  EXPECT_TRUE(throws_error([&] { PeftModel::load(load_model(fixture_dir("llama")), tmp.path()); }, ErrorKind::kCorrupt,
                           {"adapter_model.safetensors", "q_proj.lora_A.weight", "[4, 64]", "[8, 64]"}));
  config["r"] = 4;
  config["target_modules"] = {"q_proj", "v_proj", "k_proj"};
  io::write_file_atomic(tmp.path() + "/adapter_config.json", config.dump());
  EXPECT_TRUE(throws_error([&] { PeftModel::load(load_model(fixture_dir("llama")), tmp.path()); }, ErrorKind::kCorrupt,
                           {"missing tensor", "k_proj.lora_A.weight"}));
  io::write_file_atomic(tmp.path() + "/adapter_config.json", "{\"peft_type\": ");
  EXPECT_TRUE(throws_error([&] { PeftModel::load(load_model(fixture_dir("llama")), tmp.path()); }, ErrorKind::kCorrupt,
                           {"adapter_config.json", "malformed JSON"}));
}

}  // namespace
}  // namespace mixpeft::peft
