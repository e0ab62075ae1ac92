// The conformance table: every PEFT method x every fixture architecture it
// applies to, through the same checks.
//
//  - forward and backward run in training mode; only the method's parameters
//    (and modules_to_save) get gradients;
//  - after an AdamW step the base weights are bit-identical;
//  - save -> load onto a fresh base gives identical outputs;
//  - merge (where the method merges) gives the unmerged outputs within 1e-5;
//  - the trainable parameter count equals the closed form written in the row.
//
// Adding a method = one row in Cases().
#include <functional>

#include <gtest/gtest.h>

#include "mixpeft/error.h"
#include "mixpeft/nn.h"
#include "mixpeft/peft.h"
#include "models/test_util.h"

namespace mixpeft::peft {
namespace {

using mixpeft::testing::fixture_dir;
using mixpeft::testing::inputs_for;
using mixpeft::testing::main_output;
using mixpeft::testing::TempDir;

// Shapes of the fixtures (tests/data/fixtures/README.txt): hidden 64, 2 layers,
// 4 heads, intermediate 128; llama/qwen2 have 2 kv heads of 16 (k/v_proj 64 -> 32).
constexpr int64_t kHidden = 64, kLayers = 2, kInter = 128, kKV = 32;

struct Case {
  std::string name;
  nlohmann::json config;
  std::vector<std::string> archs;
  bool mergeable;
  // The trainable parameter count, in closed form, for an architecture.
  std::function<int64_t(const std::string& arch)> expected_trainable;
};

// LoRA on the default targets: r * (d_in + d_out) per target.
int64_t lora_default_count(const std::string& arch, int64_t r, int64_t extra_per_target) {
  if (arch == "gpt2") return kLayers * (r * (kHidden + 3 * kHidden) + extra_per_target);          // c_attn 64 -> 192
  if (arch == "llama" || arch == "qwen2")
    return kLayers * (r * (kHidden + kHidden) + r * (kHidden + kKV) + 2 * extra_per_target);  // q_proj, v_proj
  return kLayers * 2 * (r * (kHidden + kHidden) + extra_per_target);                            // query, value
}

const std::vector<std::string> kAllArchs = {"gpt2", "bert", "bert_cls", "roberta_cls", "llama", "qwen2"};

std::vector<Case> Cases() {
  return {
      {"lora", {{"peft_type", "LORA"}, {"r", 4}, {"lora_alpha", 8}}, kAllArchs, true,
       [](const std::string& a) { return lora_default_count(a, 4, 0); }},
      {"lora_rslora_gaussian", {{"peft_type", "LORA"}, {"r", 2}, {"use_rslora", true}, {"init_lora_weights", "gaussian"}},
       kAllArchs, true, [](const std::string& a) { return lora_default_count(a, 2, 0); }},
      // MoSLoRA: LoRA + an r x r mixer, r^2 more per target.
      {"moslora", {{"peft_type", "MOSLORA"}, {"r", 4}, {"lora_alpha", 8}}, kAllArchs, true,
       [](const std::string& a) { return lora_default_count(a, 4, 4 * 4); }},
      {"moslora_orthogonal_rslora", {{"peft_type", "MOSLORA"}, {"r", 2}, {"use_rslora", true}, {"mixer_init", "orthogonal"}},
       kAllArchs, true, [](const std::string& a) { return lora_default_count(a, 2, 2 * 2); }},
      // X-PEFT, N = 6 random adapters (m = 8) per layer: 2 L N mask logits; the bank is frozen.
      {"xpeft_soft", {{"peft_type", "XPEFT"}, {"num_adapters", 6}, {"bottleneck_size", 8}}, kAllArchs, false,
       [](const std::string&) { return 2 * kLayers * 6; }},
      {"xpeft_hard",
       {{"peft_type", "XPEFT"}, {"num_adapters", 6}, {"bottleneck_size", 8}, {"hard", true}, {"top_k", 2}, {"mask_type", "sigmoid"}},
       kAllArchs, false, [](const std::string&) { return 2 * kLayers * 6; }},
      // Bottleneck adapters, m = 8: 2 d m + m + d per adapter; houlsby 2 per block, pfeiffer 1.
      {"bottleneck_houlsby", {{"peft_type", "BOTTLENECK"}, {"placement", "houlsby"}, {"bottleneck_size", 8}},
       kAllArchs, false, [](const std::string&) { return kLayers * 2 * (2 * kHidden * 8 + 8 + kHidden); }},
      {"bottleneck_pfeiffer", {{"peft_type", "BOTTLENECK"}, {"bottleneck_size", 8}, {"activation", "gelu"}},
       kAllArchs, false, [](const std::string&) { return kLayers * (2 * kHidden * 8 + 8 + kHidden); }},
      // AdaMix adapters, M = 4, m = 8, pfeiffer, up shared: L * (M * (d m + m) + (m d + d)).
      {"adamix_adapter", {{"peft_type", "ADAMIX"}, {"num_experts", 4}, {"bottleneck_size", 8}}, kAllArchs, true,
       [](const std::string&) { return kLayers * (4 * (kHidden * 8 + 8) + (8 * kHidden + kHidden)); }},
      // M = 3, houlsby, nothing shared: L * 2 sites * M * (2 d m + m + d).
      {"adamix_adapter_houlsby_unshared",
       {{"peft_type", "ADAMIX"}, {"num_experts", 3}, {"bottleneck_size", 8}, {"placement", "houlsby"}, {"share_up", false}},
       kAllArchs, true, [](const std::string&) { return kLayers * 2 * 3 * (2 * kHidden * 8 + 8 + kHidden); }},
      // AdaMix-LoRA, M = 4, r = 4, B shared: M r d_in + r d_out = r (d_in + d_out) + (M - 1) r d_in per target.
      {"adamix_lora", {{"peft_type", "ADAMIX"}, {"variant", "lora"}, {"num_experts", 4}, {"r", 4}, {"lora_alpha", 8}},
       kAllArchs, true, [](const std::string& a) { return lora_default_count(a, 4, 3 * 4 * kHidden); }},
      // M = 2, r = 2, nothing shared: M r (d_in + d_out) per target.
      {"adamix_lora_unshared",
       {{"peft_type", "ADAMIX"}, {"variant", "lora"}, {"num_experts", 2}, {"r", 2}, {"share_B", false}},
       kAllArchs, true, [](const std::string& a) { return lora_default_count(a, 2 * 2, 0); }},
  };
}

struct Param {
  Case c;
  std::string arch;
};

// Keeps CTest's test names readable (gtest would print the struct's bytes).
void PrintTo(const Param& p, std::ostream* os) { *os << p.c.name << " on " << p.arch; }

std::string ParamName(const ::testing::TestParamInfo<Param>& info) {
  return info.param.c.name + "_" + info.param.arch;
}

std::vector<Param> AllParams() {
  std::vector<Param> out;
  for (const auto& c : Cases())
    for (const auto& a : c.archs) out.push_back({c, a});
  return out;
}

// A scalar that depends on every output the architecture has.
at::Tensor loss_of(const ModelOutputs& out) {
  if (out.logits.defined()) return out.logits.pow(2).mean();
  return out.last_hidden_state.pow(2).mean();
}

class Conformance : public ::testing::TestWithParam<Param> {
 protected:
  std::shared_ptr<PeftModel> make() {
    return PeftModel::create(load_model(fixture_dir(GetParam().arch)), GetParam().c.config);
  }
  // One AdamW step on the trainable parameters, so adapters are non-trivial.
  void train_step(PeftModel& peft) {
    std::vector<at::Tensor> params;
    for (auto& [n, t] : peft.trainable_parameters()) params.push_back(t);
    torch::optim::AdamW opt(params, torch::optim::AdamWOptions(1e-2));
    peft.model().train();
    auto loss = loss_of(peft.forward(inputs_for(GetParam().arch)));
    opt.zero_grad();
    loss.backward();
    opt.step();
    peft.model().eval();
  }
};

TEST_P(Conformance, OnlyTheMethodTrainsAndTheBaseStaysBitIdentical) {
  auto peft = make();
  std::map<std::string, at::Tensor> before;
  std::set<std::string> trainable;
  for (auto& [n, t] : peft->trainable_parameters()) trainable.insert(n);
  ASSERT_FALSE(trainable.empty());
  for (auto& p : peft->model().named_parameters())
    if (!trainable.count(p.key())) before[p.key()] = p.value().detach().clone();

  peft->model().train();
  auto loss = loss_of(peft->forward(inputs_for(GetParam().arch)));
  loss.backward();
  for (auto& p : peft->model().named_parameters()) {
    if (trainable.count(p.key())) {
      EXPECT_TRUE(p.value().requires_grad()) << p.key();
      EXPECT_TRUE(p.value().grad().defined()) << p.key() << " got no gradient";
    } else {
      EXPECT_FALSE(p.value().requires_grad()) << p.key();
      EXPECT_FALSE(p.value().grad().defined()) << p.key() << " is frozen but got a gradient";
    }
  }
  train_step(*peft);
  for (auto& p : peft->model().named_parameters()) {
    if (trainable.count(p.key())) continue;
    EXPECT_TRUE(torch::equal(p.value(), before.at(p.key()))) << p.key() << " changed";
  }
}

TEST_P(Conformance, TrainableCountIsTheClosedForm) {
  auto peft = make();
  EXPECT_EQ(peft->num_trainable(), GetParam().c.expected_trainable(GetParam().arch));
}

TEST_P(Conformance, SaveThenLoadGivesIdenticalOutputs) {
  auto peft = make();
  train_step(*peft);
  TempDir tmp;
  peft->save(tmp.path());
  auto again = PeftModel::load(load_model(fixture_dir(GetParam().arch)), tmp.path());
  again->model().eval();
  torch::NoGradGuard no_grad;
  auto in = inputs_for(GetParam().arch);
  EXPECT_TRUE(torch::equal(main_output(peft->forward(in)), main_output(again->forward(in))));
}

TEST_P(Conformance, MergeKeepsTheOutputs) {
  auto peft = make();
  if (!GetParam().c.mergeable) {
    EXPECT_THROW(peft->merge(), Error);
    return;
  }
  train_step(*peft);
  torch::NoGradGuard no_grad;
  auto in = inputs_for(GetParam().arch);
  auto base_out = main_output(load_model(fixture_dir(GetParam().arch))->forward(in));
  auto unmerged = main_output(peft->forward(in));
  EXPECT_GT(mixpeft::testing::max_abs_diff(unmerged, base_out), 1e-6) << "the adapter changes nothing";
  peft->merge();
  EXPECT_LT(mixpeft::testing::max_abs_diff(main_output(peft->forward(in)), unmerged), 1e-5);
  peft->unmerge();
  EXPECT_LT(mixpeft::testing::max_abs_diff(main_output(peft->forward(in)), unmerged), 1e-5);
  auto plain = peft->merge_and_unload();
  EXPECT_LT(mixpeft::testing::max_abs_diff(main_output(plain->forward(in)), unmerged), 1e-5);
}

INSTANTIATE_TEST_SUITE_P(Table, Conformance, ::testing::ValuesIn(AllParams()), ParamName);

}  // namespace
}  // namespace mixpeft::peft
