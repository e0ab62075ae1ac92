// MoSLoRA: the forward formula, merge, exact export to plain LoRA, mixer
// initialisations and the parameter count, on the fixture models.
#include <functional>

#include <gtest/gtest.h>

#include "mixpeft/checkpoint.h"
#include "mixpeft/error.h"
#include "mixpeft/nn.h"
#include "mixpeft/peft.h"
#include "mixpeft/safetensors.h"
#include "models/test_util.h"

namespace mixpeft::peft {
namespace {

using mixpeft::testing::fixture_dir;
using mixpeft::testing::inputs_for;
using mixpeft::testing::main_output;
using mixpeft::testing::max_abs_diff;
using mixpeft::testing::TempDir;
using mixpeft::testing::throws_error;

// B starts at 0, which would make every check below trivially pass: give
// every trainable tensor random values.
void randomize(PeftModel& peft, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  torch::NoGradGuard no_grad;
  for (auto& [name, t] : peft.trainable_parameters()) t.normal_(0.0, 0.2, gen);
}

std::map<std::string, at::Tensor> params_of(PeftModel& peft) {
  std::map<std::string, at::Tensor> out;
  for (auto& p : peft.model().named_parameters()) out[p.key()] = p.value();
  return out;
}

nn::LinearImpl& linear_at(Model& model, const std::string& name) {
  for (auto& m : model.named_modules("", false))
    if (m.key() == name) return *std::dynamic_pointer_cast<nn::LinearImpl>(m.value());
  throw std::runtime_error("no module " + name);
}

TEST(Moslora, ForwardIsBasePlusScaledBMA) {
  for (bool rslora : {false, true}) {
    auto peft = PeftModel::create(load_model(fixture_dir("llama")),
                                  {{"peft_type", "MOSLORA"}, {"r", 4}, {"lora_alpha", 8}, {"use_rslora", rslora}});
    randomize(*peft, 1);
    const std::string q = "model.layers.1.self_attn.q_proj";
    auto& linear = linear_at(peft->model(), q);
    auto p = params_of(*peft);
    const auto& A = p.at(q + ".lora_A.weight");
    const auto& M = p.at(q + ".moslora_mixer.weight");
    const auto& B = p.at(q + ".lora_B.weight");
    ASSERT_EQ(M.sizes(), at::IntArrayRef({4, 4}));
    const double s = rslora ? 8.0 / 2.0 : 8.0 / 4.0;  // alpha / sqrt(r) or alpha / r
    torch::NoGradGuard no_grad;
    auto x = torch::randn({3, 5, 64});
    // Column-vector form y = W0 x + b0 + s B M A x, written with row vectors.
    auto expected = linear.base_forward(x) + s * torch::matmul(x, torch::matmul(B, torch::matmul(M, A)).t());
    EXPECT_LT(max_abs_diff(linear.forward(x), expected), 1e-5) << "rslora " << rslora;
  }
}

class MosloraArch : public ::testing::TestWithParam<std::string> {};

TEST_P(MosloraArch, MergeGivesTheUnmergedOutputsAndFoldsScaledBMA) {
  const std::string arch = GetParam();
  auto peft = PeftModel::create(load_model(fixture_dir(arch)), {{"peft_type", "MOSLORA"}, {"r", 4}, {"lora_alpha", 16}});
  randomize(*peft, 2);
  torch::NoGradGuard no_grad;
  auto in = inputs_for(arch);
  auto unmerged = main_output(peft->forward(in));
  auto base_out = main_output(load_model(fixture_dir(arch))->forward(in));
  ASSERT_GT(max_abs_diff(unmerged, base_out), 1e-3) << "the adapter changes nothing";
  auto before = params_of(*peft);
  std::map<std::string, at::Tensor> w0;
  for (auto& [n, t] : before) w0[n] = t.clone();
  peft->merge();
  EXPECT_LT(max_abs_diff(main_output(peft->forward(in)), unmerged), 1e-5);
  // Every target's weight moved by exactly s B M A (transposed for Conv1D).
  int targets = 0;
  for (auto& [name, t] : before) {
    const std::string suffix = ".lora_A.weight";
    if (name.size() < suffix.size() || name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0) continue;
    const std::string mod = name.substr(0, name.size() - suffix.size());
    auto delta = torch::matmul(before.at(mod + ".lora_B.weight"),
                               torch::matmul(before.at(mod + ".moslora_mixer.weight"), t)) * (16.0 / 4.0);
    auto& linear = linear_at(peft->model(), mod);
    auto moved = before.at(mod + ".weight") - w0.at(mod + ".weight");
    EXPECT_LT(max_abs_diff(linear.conv1d ? moved.t() : moved, delta), 1e-5) << mod;
    ++targets;
  }
  EXPECT_EQ(targets, arch == "gpt2" ? 2 : 4);
  peft->unmerge();
  for (auto& [n, t] : before)
    if (n.find("lora_") == std::string::npos) {
      EXPECT_LT(max_abs_diff(t, w0.at(n)), 1e-6) << n;
    }
  EXPECT_LT(max_abs_diff(main_output(peft->forward(in)), unmerged), 1e-5);
  auto plain = peft->merge_and_unload();
  for (auto& p : plain->named_parameters()) {
    EXPECT_EQ(p.key().find("lora_"), std::string::npos) << p.key();
    EXPECT_EQ(p.key().find("moslora_"), std::string::npos) << p.key();
  }
  EXPECT_LT(max_abs_diff(main_output(plain->forward(in)), unmerged), 1e-5);
}

TEST_P(MosloraArch, ExportIsAPlainLoraAdapterWithTheSameOutputs) {
  const std::string arch = GetParam();
  auto peft = PeftModel::create(load_model(fixture_dir(arch)),
                                {{"peft_type", "MOSLORA"}, {"r", 3}, {"lora_alpha", 6}, {"mixer_init", "orthogonal"}});
  // A (Kaiming) and M (a random rotation) keep their init; B gets the scale
  // of the HF PEFT fixtures' trained-looking B, N(0, 0.1).
  {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(3);
    torch::NoGradGuard no_grad;
    for (auto& [name, t] : peft->trainable_parameters())
      if (name.find(".lora_B.") != std::string::npos) t.normal_(0.0, 0.1, gen);
  }
  TempDir tmp;
  peft->export_lora(tmp.path());
  auto config = nlohmann::json::parse(io::read_file(tmp.path() + "/adapter_config.json"));
  EXPECT_EQ(config["peft_type"], "LORA");
  EXPECT_FALSE(config.contains("mixer_init"));
  EXPECT_EQ(config["r"], 3);
  auto written = io::load_tensors(tmp.path() + "/adapter_model.safetensors");
  auto p = params_of(*peft);
  int pairs = 0;
  for (const auto& [name, t] : written) {
    EXPECT_EQ(name.find("moslora"), std::string::npos) << name;
    const std::string suffix = ".lora_A.weight";
    if (name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0) continue;
    const std::string mod = peft->parameter_name(name.substr(0, name.size() - suffix.size()));
    // A' = M A, B' = B.
    EXPECT_LT(max_abs_diff(t, torch::matmul(p.at(mod + ".moslora_mixer.weight"), p.at(mod + ".lora_A.weight"))), 1e-6);
    EXPECT_TRUE(torch::equal(written.at(peft->saved_name(mod + ".lora_B.weight")), p.at(mod + ".lora_B.weight")));
    ++pairs;
  }
  EXPECT_EQ(static_cast<size_t>(pairs) * 2, written.size());
  auto lora = PeftModel::load(load_model(fixture_dir(arch)), tmp.path());
  EXPECT_EQ(lora->method().peft_type(), "LORA");
  torch::NoGradGuard no_grad;
  auto in = inputs_for(arch);
  auto expected = main_output(peft->forward(in));
  EXPECT_GT(max_abs_diff(expected, main_output(load_model(fixture_dir(arch))->forward(in))), 1e-3);
  // Each adapted layer computes the same function within 1e-6.
  auto x = torch::randn({2, 5, 64});
  for (const auto& [name, t] : written) {
    const std::string suffix = ".lora_A.weight";
    if (name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0) continue;
    const std::string mod = peft->parameter_name(name.substr(0, name.size() - suffix.size()));
    EXPECT_LT(max_abs_diff(linear_at(lora->model(), mod).forward(x), linear_at(peft->model(), mod).forward(x)), 1e-6)
        << mod;
  }
  // The whole model within 1e-6 relative to its output scale: B (M A x) and
  // B (A' x) round differently in float32, which after two blocks and the
  // head is a few ulps of logits of magnitude ~4 (measured: up to 1.8e-6).
  const double scale = std::max(1.0, expected.abs().max().item<double>());
  EXPECT_LT(max_abs_diff(main_output(lora->forward(in)), expected), 1e-6 * scale);
  // Merged, both fold the very same s B A' into W0: bit-identical models.
  peft->merge();
  lora->merge();
  EXPECT_TRUE(torch::equal(main_output(lora->forward(in)), main_output(peft->forward(in))));
}

INSTANTIATE_TEST_SUITE_P(Archs, MosloraArch, ::testing::Values("gpt2", "llama", "bert_cls"));

TEST(Moslora, MixerInitialisations) {
  auto mixers = [](const std::string& init, int64_t r) {
    auto peft = PeftModel::create(load_model(fixture_dir("qwen2")),
                                  {{"peft_type", "MOSLORA"}, {"r", r}, {"mixer_init", init}, {"init_seed", 7}});
    std::vector<at::Tensor> out;
    for (auto& [name, t] : peft->trainable_parameters())
      if (name.find(".moslora_mixer.weight") != std::string::npos) out.push_back(t.detach().clone());
    return out;
  };
  const int64_t r = 6;
  auto orth = mixers("orthogonal", r);
  ASSERT_EQ(orth.size(), 4u);
  for (const auto& m : orth) {
    EXPECT_LT(max_abs_diff(torch::matmul(m, m.t()), torch::eye(r)), 1e-5);
    EXPECT_GT(max_abs_diff(m, torch::eye(r)), 0.1) << "orthogonal init should be a random rotation, not I";
  }
  EXPECT_GT(max_abs_diff(orth[0], orth[1]), 0.1) << "targets should get different mixers";
  for (const auto& m : mixers("identity", r)) EXPECT_TRUE(torch::equal(m, torch::eye(r)));
  // Kaiming-uniform (a = sqrt 5): U(-1/sqrt(r), 1/sqrt(r)).
  for (const auto& m : mixers("kaiming", r)) {
    EXPECT_LE(m.abs().max().item<double>(), 1.0 / std::sqrt(static_cast<double>(r)));
    EXPECT_GT(m.abs().max().item<double>(), 0.5 / std::sqrt(static_cast<double>(r)));
  }
  // Seeded: the same config gives the same mixers.
  EXPECT_TRUE(torch::equal(mixers("kaiming", r)[2], mixers("kaiming", r)[2]));
}

TEST(Moslora, IdentityMixerIsExactlyLora) {
  // Same seed: the identity init draws nothing, so A matches LoRA's A.
  auto mos = PeftModel::create(load_model(fixture_dir("llama")),
                               {{"peft_type", "MOSLORA"}, {"r", 4}, {"mixer_init", "identity"}, {"init_seed", 5}});
  auto lora = PeftModel::create(load_model(fixture_dir("llama")), {{"peft_type", "LORA"}, {"r", 4}, {"init_seed", 5}});
  auto lp = params_of(*lora);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(9);
  torch::NoGradGuard no_grad;
  for (auto& [name, t] : mos->trainable_parameters()) {
    if (name.find(".lora_B.") == std::string::npos) continue;
    t.normal_(0.0, 0.2, gen);
    lp.at(name).copy_(t);
  }
  for (auto& [name, t] : lora->trainable_parameters()) EXPECT_TRUE(torch::equal(t, params_of(*mos).at(name))) << name;
  auto in = inputs_for("llama");
  EXPECT_LT(max_abs_diff(mos->forward(in).logits, lora->forward(in).logits), 1e-6);
}

TEST(Moslora, TrainableCountAndNames) {
  // Per target r (in + out) + r^2; llama's defaults are q_proj 64->64 and v_proj 64->32, 2 layers.
  const int64_t r = 5;
  auto peft = PeftModel::create(load_model(fixture_dir("llama")), {{"peft_type", "MOSLORA"}, {"r", r}});
  EXPECT_EQ(peft->num_trainable(), 2 * (r * (64 + 64) + r * r + r * (64 + 32) + r * r));
  std::set<std::string> names;
  for (auto& [n, t] : peft->trainable_parameters()) names.insert(n);
  for (const char* p : {"lora_A.weight", "moslora_mixer.weight", "lora_B.weight"})
    EXPECT_TRUE(names.count(std::string("model.layers.0.self_attn.v_proj.") + p)) << p;
  EXPECT_EQ(names.size(), 12u);
  EXPECT_EQ(peft->method().config()["mixer_init"], "kaiming");
  EXPECT_TRUE(peft->method().mergeable());
}

TEST(Moslora, SaveLoadKeepsTheMixer) {
  auto peft = PeftModel::create(load_model(fixture_dir("gpt2")), {{"peft_type", "MOSLORA"}, {"r", 2}});
  randomize(*peft, 4);
  TempDir tmp;
  peft->save(tmp.path());
  auto saved = io::load_tensors(tmp.path() + "/adapter_model.safetensors");
  EXPECT_TRUE(saved.count("base_model.model.transformer.h.1.attn.c_attn.moslora_mixer.weight"));
  auto again = PeftModel::load(load_model(fixture_dir("gpt2")), tmp.path());
  EXPECT_EQ(again->method().peft_type(), "MOSLORA");
  torch::NoGradGuard no_grad;
  auto in = inputs_for("gpt2");
  EXPECT_TRUE(torch::equal(again->forward(in).logits, peft->forward(in).logits));
}

TEST(Moslora, BadConfigsAreNamed) {
  auto base = [] { return load_model(fixture_dir("llama")); };
  EXPECT_TRUE(throws_error([&] { PeftModel::create(base(), {{"peft_type", "MOSLORA"}, {"mixer_init", "xavier"}}); },
                           ErrorKind::kInvalidArgument, {"\"mixer_init\"", "xavier", "orthogonal"}));
  EXPECT_TRUE(throws_error([&] { PeftModel::create(base(), {{"peft_type", "MOSLORA"}, {"mixer", "identity"}}); },
                           ErrorKind::kInvalidArgument, {"unknown key", "\"mixer\"", "mixer_init"}));
  EXPECT_TRUE(throws_error([&] { PeftModel::create(base(), {{"peft_type", "MOSLORA"}, {"r", -1}}); },
                           ErrorKind::kInvalidArgument, {"\"r\"", "positive"}));
}

}  // namespace
}  // namespace mixpeft::peft
