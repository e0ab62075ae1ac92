// ADAMIX: expert banks, stochastic routing, sharing, merging, export to
// plain LoRA, the consistency loss, config errors. The conformance table
// covers gradients, save/load and merge on every architecture.
#include <gtest/gtest.h>

#include <cmath>

#include "mixpeft/adamix.h"
#include "mixpeft/error.h"
#include "mixpeft/peft.h"
#include "mixpeft/safetensors.h"
#include "models/test_util.h"
#include "peft/adamix/adamix.h"

namespace mixpeft::peft {
namespace {

using mixpeft::testing::fixture_dir;
using mixpeft::testing::inputs_for;
using mixpeft::testing::main_output;
using mixpeft::testing::max_abs_diff;
using mixpeft::testing::TempDir;
using mixpeft::testing::throws_error;

constexpr int64_t kHidden = 64, kLayers = 2, kKV = 32;

std::shared_ptr<PeftModel> make(const std::string& arch, nlohmann::json config) {
  config["peft_type"] = "ADAMIX";
  return PeftModel::create(load_model(fixture_dir(arch)), config);
}

// Moves every trainable tensor by 0.2 * N(0, 1) so that experts differ (as after training).
void perturb(PeftModel& peft, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  torch::NoGradGuard no_grad;
  for (auto& [n, t] : peft.trainable_parameters()) t.add_(torch::randn(t.sizes(), gen) * 0.2);
}

std::vector<int64_t> choices(PeftModel& peft) {
  std::vector<int64_t> out;
  for (const auto& r : adamix_control(peft).last_routing()) out.push_back(r.expert);
  return out;
}

// ---- One bank, seen through outputs that reveal the expert: expert i has
// weight 0 and bias i, so every output element equals the expert used.
struct BankFixture {
  std::shared_ptr<torch::nn::Module> parent = std::make_shared<torch::nn::Module>();
  std::shared_ptr<RoutingState> routing;
  std::unique_ptr<ExpertBank> bank;
  BankFixture(int64_t M, uint64_t seed, EvalRouting mode) {
    routing = std::make_shared<RoutingState>(RoutingState{at::make_generator<at::CPUGeneratorImpl>(seed), mode});
    torch::nn::Linear proto(2, 3);
    bank = std::make_unique<ExpertBank>(*parent, "bank", "test.bank", proto, M, routing);
    torch::NoGradGuard no_grad;
    auto params = parent->named_parameters();
    for (int64_t i = 0; i < M; ++i) {
      params["bank." + std::to_string(i) + ".weight"].zero_();
      params["bank." + std::to_string(i) + ".bias"].fill_(static_cast<double>(i));
    }
  }
};

TEST(ExpertBank, TrainingDrawsOneExpertPerCallFromItsGenerator) {
  BankFixture f(4, 17, EvalRouting::kAverage);
  f.parent->train();
  auto reference = at::make_generator<at::CPUGeneratorImpl>(17);  // the same seed, drawn independently
  std::set<int64_t> seen;
  for (int call = 0; call < 12; ++call) {
    auto y = f.bank->forward(torch::randn({2, 16, 2}));
    const int64_t expected = at::randint(4, {1}, reference, at::kLong).item<int64_t>();
    EXPECT_EQ(f.bank->last_choice(), expected);
    // One expert serves the whole mini-batch.
    EXPECT_EQ(y.min().item<double>(), static_cast<double>(expected));
    EXPECT_EQ(y.max().item<double>(), static_cast<double>(expected));
    seen.insert(expected);
  }
  EXPECT_GT(seen.size(), 1u);
}

TEST(ExpertBank, EveryExpertGetsAGradientOnlyTheDrawnOneNonZero) {
  BankFixture f(3, 5, EvalRouting::kAverage);
  f.parent->train();
  f.bank->forward(torch::ones({4, 2})).sum().backward();
  auto params = f.parent->named_parameters();
  for (int64_t i = 0; i < 3; ++i) {
    const auto& g = params["bank." + std::to_string(i) + ".bias"].grad();
    ASSERT_TRUE(g.defined()) << i;
    EXPECT_EQ(g.abs().sum().item<double>(), i == f.bank->last_choice() ? 4.0 * 3 : 0.0) << i;
  }
}

TEST(ExpertBank, EvalRoutingModes) {
  auto x = torch::randn({8, 16, 2});
  {
    BankFixture f(3, 1, EvalRouting::kAverage);
    f.parent->eval();
    auto y = f.bank->forward(x);
    EXPECT_NEAR(y.min().item<double>(), 1.0, 1e-6);  // (0 + 1 + 2) / 3
    EXPECT_NEAR(y.max().item<double>(), 1.0, 1e-6);
    EXPECT_EQ(f.bank->last_choice(), -1);  // eval mode draws nothing
  }
  {
    BankFixture f(3, 1, EvalRouting::kRandomToken);
    f.parent->eval();
    auto y = f.bank->forward(x);
    ASSERT_EQ(y.sizes(), (std::vector<int64_t>{8, 16, 3}));
    auto per_token = y.select(-1, 0);
    EXPECT_TRUE(torch::equal(y, per_token.unsqueeze(-1).expand_as(y)));  // one expert per token
    EXPECT_TRUE(torch::equal(per_token, per_token.round()));
    EXPECT_GE(per_token.min().item<double>(), 0.0);
    EXPECT_LE(per_token.max().item<double>(), 2.0);
    // Tokens of one sequence use different experts.
    EXPECT_GT((per_token.select(0, 0) != per_token[0][0]).sum().item<int64_t>(), 0);
    BankFixture again(3, 1, EvalRouting::kRandomToken);
    again.parent->eval();
    EXPECT_TRUE(torch::equal(again.bank->forward(x), y));  // reproducible from the seed
  }
  {
    BankFixture f(3, 1, EvalRouting::kRandomSequence);
    f.parent->eval();
    auto y = f.bank->forward(x);
    auto per_seq = y.select(-1, 0).select(1, 0);  // [8]
    EXPECT_TRUE(torch::equal(y, per_seq.view({8, 1, 1}).expand_as(y)));  // one expert per sequence
    EXPECT_GT((per_seq != per_seq[0]).sum().item<int64_t>(), 0);
  }
}

TEST(ExpertBank, MergeAveragesAndUnmergeRestores) {
  BankFixture f(4, 2, EvalRouting::kAverage);
  {
    torch::NoGradGuard no_grad;
    for (auto& p : f.parent->parameters()) p.add_(torch::randn(p.sizes()));
  }
  auto params = f.parent->named_parameters();
  auto w_mean = (params["bank.0.weight"] + params["bank.1.weight"] + params["bank.2.weight"] + params["bank.3.weight"]) / 4;
  auto b_mean = (params["bank.0.bias"] + params["bank.1.bias"] + params["bank.2.bias"] + params["bank.3.bias"]) / 4;
  f.bank->merge();
  auto merged = f.parent->named_parameters();
  ASSERT_EQ(merged.size(), 2u);
  EXPECT_LT(max_abs_diff(merged["bank.weight"], w_mean), 1e-6);
  EXPECT_LT(max_abs_diff(merged["bank.bias"], b_mean), 1e-6);
  f.bank->unmerge();
  auto back = f.parent->named_parameters();
  ASSERT_EQ(back.size(), 8u);
  for (auto& p : params) EXPECT_TRUE(torch::equal(back[p.key()], p.value())) << p.key();
}

// ---- The adapter variant.

TEST(AdaMixAdapter, NamesShapesAndIdenticalExpertsAtStepZero) {
  auto peft = make("bert", {{"num_experts", 4}, {"bottleneck_size", 8}});
  std::set<std::string> want;
  for (const auto& b : peft->model().blocks()) {
    for (int i = 0; i < 4; ++i)
      for (const char* p : {"weight", "bias"}) want.insert(b.name + ".adamix_ffn.down." + std::to_string(i) + "." + p);
    want.insert(b.name + ".adamix_ffn.up.weight");  // up shared by default
    want.insert(b.name + ".adamix_ffn.up.bias");
  }
  std::set<std::string> got;
  for (auto& [n, t] : peft->trainable_parameters()) got.insert(n);
  EXPECT_EQ(got, want);
  auto p = peft->model().named_parameters();
  const std::string pre = peft->model().blocks()[0].name + ".adamix_ffn.";
  EXPECT_EQ(p[pre + "down.0.weight"].sizes(), (std::vector<int64_t>{8, kHidden}));
  EXPECT_EQ(p[pre + "up.weight"].sizes(), (std::vector<int64_t>{kHidden, 8}));
  for (int i = 1; i < 4; ++i) {
    EXPECT_TRUE(torch::equal(p[pre + "down.0.weight"], p[pre + "down." + std::to_string(i) + ".weight"])) << i;
    EXPECT_TRUE(torch::equal(p[pre + "down.0.bias"], p[pre + "down." + std::to_string(i) + ".bias"])) << i;
  }
  // Distinct tensors, not views of one: training one expert leaves the others.
  EXPECT_NE(p[pre + "down.0.weight"].data_ptr(), p[pre + "down.1.weight"].data_ptr());
}

TEST(AdaMixAdapter, SharingSwitchesFollowTheClosedForm) {
  const int64_t M = 3, m = 8, d = kHidden;
  for (bool share_up : {true, false})
    for (bool share_down : {true, false}) {
      auto peft = make("bert_cls", {{"num_experts", M}, {"bottleneck_size", m}, {"share_up", share_up},
                                    {"share_down", share_down}});
      const int64_t D = share_down ? 1 : M, U = share_up ? 1 : M;
      EXPECT_EQ(peft->num_trainable(), kLayers * (D * (d * m + m) + U * (m * d + d))) << share_up << share_down;
      EXPECT_EQ(adamix_control(*peft).last_routing().size(), static_cast<size_t>(kLayers * ((D > 1) + (U > 1))));
    }
  auto houlsby = make("gpt2", {{"num_experts", M}, {"bottleneck_size", m}, {"placement", "houlsby"}});
  EXPECT_EQ(houlsby->num_trainable(), kLayers * 2 * (M * (d * m + m) + (m * d + d)));
}

TEST(AdaMixAdapter, RoutingIsReproducibleAndFollowsTheSeed) {
  const std::string arch = "bert_cls";
  auto in = inputs_for(arch);
  auto run = [&](uint64_t seed, std::vector<std::vector<int64_t>>* routes, std::vector<at::Tensor>* outs) {
    auto peft = make(arch, {{"num_experts", 4}, {"bottleneck_size", 8}, {"share_up", false}, {"seed", seed}});
    perturb(*peft, 99);  // the same experts for every seed
    peft->model().train();
    torch::NoGradGuard no_grad;
    for (int step = 0; step < 6; ++step) {
      outs->push_back(main_output(peft->forward(in)));
      routes->push_back(choices(*peft));
    }
  };
  std::vector<std::vector<int64_t>> ra, rb, rc;
  std::vector<at::Tensor> oa, ob, oc;
  run(5, &ra, &oa);
  run(5, &rb, &ob);
  run(6, &rc, &oc);
  EXPECT_EQ(ra, rb);
  for (size_t i = 0; i < oa.size(); ++i) EXPECT_TRUE(torch::equal(oa[i], ob[i])) << i;
  EXPECT_NE(ra, rc);
  // The draws are randint(0, M) from a generator seeded with "seed", in
  // forward order: layer 0 down, layer 0 up, layer 1 down, layer 1 up.
  auto reference = at::make_generator<at::CPUGeneratorImpl>(5);
  bool down_ne_up = false;
  for (const auto& step : ra) {
    ASSERT_EQ(step.size(), 4u);
    for (int64_t c : step) EXPECT_EQ(c, at::randint(4, {1}, reference, at::kLong).item<int64_t>());
    down_ne_up = down_ne_up || step[0] != step[1] || step[2] != step[3];
  }
  EXPECT_TRUE(down_ne_up) << "down and up banks should draw independently";
  // Routing changes the output once experts differ.
  bool differs = false;
  for (size_t i = 1; i < oa.size(); ++i) differs = differs || !torch::equal(oa[i], oa[0]);
  EXPECT_TRUE(differs);
}

TEST(AdaMixAdapter, ATrainingForwardUsesExactlyTheLoggedExperts) {
  const std::string arch = "roberta_cls";
  auto in = inputs_for(arch);
  auto peft = make(arch, {{"num_experts", 3}, {"bottleneck_size", 8}, {"share_up", false}, {"seed", 4}});
  perturb(*peft, 7);
  torch::NoGradGuard no_grad;
  peft->model().train();
  auto train_out = main_output(peft->forward(in));
  // Copy each bank's drawn expert over all of its experts: the eval-mode
  // average is then that expert, so the outputs must agree.
  auto params = peft->model().named_parameters();
  for (const auto& r : adamix_control(*peft).last_routing()) {
    ASSERT_GE(r.expert, 0) << r.bank;
    for (const char* p : {"weight", "bias"}) {
      auto chosen = params[r.bank + "." + std::to_string(r.expert) + "." + p].clone();
      for (int i = 0; i < 3; ++i) params[r.bank + "." + std::to_string(i) + "." + p].copy_(chosen);
    }
  }
  peft->model().eval();
  EXPECT_LT(max_abs_diff(main_output(peft->forward(in)), train_out), 1e-5);
}

TEST(AdaMixAdapter, StartsNearTheIdentity) {
  auto in = inputs_for("llama");
  torch::NoGradGuard no_grad;
  auto base = main_output(load_model(fixture_dir("llama"))->forward(in));
  auto exact = make("llama", {{"init_scale", 0.0}});
  exact->model().train();
  EXPECT_TRUE(torch::equal(main_output(exact->forward(in)), base));
  auto near = make("llama", {});
  const double d = max_abs_diff(main_output(near->forward(in)), base);
  EXPECT_GT(d, 0.0);
  EXPECT_LT(d, 0.05);
}

TEST(AdaMixAdapter, MergeLeavesOneAdapterWithTheEvalOutputs) {
  const std::string arch = "bert_cls";
  const int64_t m = 8, d = kHidden;
  auto in = inputs_for(arch);
  auto peft = make(arch, {{"num_experts", 4}, {"bottleneck_size", m}});
  perturb(*peft, 3);
  const int64_t before = peft->num_trainable();
  std::map<std::string, at::Tensor> experts;
  for (auto& [n, t] : peft->trainable_parameters()) experts[n] = t.detach().clone();
  torch::NoGradGuard no_grad;
  peft->model().eval();
  auto unmerged = main_output(peft->forward(in));
  peft->merge();
  EXPECT_EQ(peft->num_trainable(), kLayers * (2 * d * m + m + d));  // one bottleneck adapter per block
  auto p = peft->model().named_parameters();
  for (const auto& b : peft->model().blocks()) {
    const std::string pre = b.name + ".adamix_ffn.down.";
    auto mean = (experts[pre + "0.weight"] + experts[pre + "1.weight"] + experts[pre + "2.weight"] +
                 experts[pre + "3.weight"]) / 4;
    ASSERT_TRUE(p.contains(pre + "weight"));
    EXPECT_LT(max_abs_diff(p[pre + "weight"], mean), 1e-6);
    EXPECT_FALSE(p.contains(pre + "0.weight"));
  }
  EXPECT_TRUE(adamix_control(*peft).last_routing().empty());
  EXPECT_LT(max_abs_diff(main_output(peft->forward(in)), unmerged), 1e-5);
  TempDir tmp;
  EXPECT_TRUE(throws_error([&] { peft->save(tmp.path()); }, ErrorKind::kInvalidArgument,
                           {"ADAMIX", "merged", "unmerge"}));
  peft->unmerge();
  EXPECT_EQ(peft->num_trainable(), before);
  for (auto& [n, t] : peft->trainable_parameters()) EXPECT_TRUE(torch::equal(t, experts[n])) << n;
  EXPECT_TRUE(torch::equal(main_output(peft->forward(in)), unmerged));
  // merge_and_unload keeps the single averaged adapter (it cannot fold into the base weights).
  auto plain = peft->merge_and_unload();
  int adapters = 0;
  for (auto& q : plain->named_parameters()) {
    EXPECT_FALSE(q.value().requires_grad()) << q.key();
    EXPECT_EQ(q.key().find(".down.0."), std::string::npos) << q.key();
    adapters += q.key().find(".adamix_ffn.down.weight") != std::string::npos;
  }
  EXPECT_EQ(adapters, kLayers);
  EXPECT_LT(max_abs_diff(main_output(plain->forward(in)), unmerged), 1e-5);
}

TEST(AdaMixAdapter, EvalRoutingFromConfigAndApi) {
  const std::string arch = "gpt2";
  auto in = inputs_for(arch);
  auto peft = make(arch, {{"num_experts", 4}, {"share_up", false}, {"eval_routing", "random_token"}});
  perturb(*peft, 1);
  auto& control = adamix_control(*peft);
  EXPECT_EQ(control.eval_routing(), "random_token");
  EXPECT_EQ(peft->method().config()["eval_routing"], "random_token");
  EXPECT_EQ(control.num_experts(), 4);
  torch::NoGradGuard no_grad;
  peft->model().eval();
  control.seed_routing(21);
  auto r1 = main_output(peft->forward(in));
  control.seed_routing(21);
  EXPECT_TRUE(torch::equal(main_output(peft->forward(in)), r1));  // reseeding reproduces
  control.set_eval_routing("average");
  auto avg = main_output(peft->forward(in));
  EXPECT_GT(max_abs_diff(r1, avg), 1e-4);
  control.set_eval_routing("random_sequence");
  EXPECT_GT(max_abs_diff(main_output(peft->forward(in)), avg), 1e-4);
  control.set_eval_routing("average");
  peft->merge();
  EXPECT_LT(max_abs_diff(main_output(peft->forward(in)), avg), 1e-5);
  EXPECT_TRUE(throws_error([&] { control.set_eval_routing("top1"); }, ErrorKind::kInvalidArgument,
                           {"eval_routing", "top1"}));
}

// ---- The LoRA variant.

TEST(AdaMixLora, NamesSharingAndIdenticalExperts) {
  auto peft = make("llama", {{"variant", "lora"}, {"num_experts", 4}, {"r", 2}});
  std::set<std::string> got;
  for (auto& [n, t] : peft->trainable_parameters()) got.insert(n);
  std::set<std::string> want;
  for (int l = 0; l < 2; ++l)
    for (const char* proj : {"q_proj", "v_proj"}) {
      const std::string pre = "model.layers." + std::to_string(l) + ".self_attn." + proj;
      for (int i = 0; i < 4; ++i) want.insert(pre + ".adamix_A." + std::to_string(i) + ".weight");
      want.insert(pre + ".adamix_B.weight");
    }
  EXPECT_EQ(got, want);
  auto p = peft->model().named_parameters();
  for (int i = 1; i < 4; ++i)
    EXPECT_TRUE(torch::equal(p["model.layers.0.self_attn.v_proj.adamix_A.0.weight"],
                             p["model.layers.0.self_attn.v_proj.adamix_A." + std::to_string(i) + ".weight"]));
  EXPECT_EQ(p["model.layers.0.self_attn.v_proj.adamix_B.weight"].sizes(), (std::vector<int64_t>{kKV, 2}));
  EXPECT_EQ(p["model.layers.0.self_attn.v_proj.adamix_B.weight"].abs().max().item<double>(), 0.0);
  // Counts: q_proj 64 -> 64 and v_proj 64 -> 32 per layer, r = 2, M = 3.
  for (bool share_A : {true, false})
    for (bool share_B : {true, false}) {
      auto s = make("llama", {{"variant", "lora"}, {"num_experts", 3}, {"r", 2}, {"share_A", share_A},
                              {"share_B", share_B}});
      const int64_t Am = share_A ? 1 : 3, Bm = share_B ? 1 : 3;
      EXPECT_EQ(s->num_trainable(), kLayers * (Am * 2 * kHidden * 2 + Bm * 2 * (kHidden + kKV))) << share_A << share_B;
    }
}

TEST(AdaMixLora, StartsAtTheBaseModelExactly) {
  auto in = inputs_for("qwen2");
  torch::NoGradGuard no_grad;
  auto base = main_output(load_model(fixture_dir("qwen2"))->forward(in));
  auto peft = make("qwen2", {{"variant", "lora"}, {"share_B", false}});
  peft->model().train();
  EXPECT_TRUE(torch::equal(main_output(peft->forward(in)), base));
  peft->model().eval();
  EXPECT_TRUE(torch::equal(main_output(peft->forward(in)), base));
}

TEST(AdaMixLora, MergeFoldsTheAverageAndExportLoadsAsLora) {
  for (const std::string arch : {"llama", "gpt2"}) {
    const int64_t r = 4, M = 4;
    auto in = inputs_for(arch);
    auto peft = make(arch, {{"variant", "lora"}, {"num_experts", M}, {"r", r}, {"lora_alpha", 8}});
    perturb(*peft, 11);
    torch::NoGradGuard no_grad;
    peft->model().eval();
    auto unmerged = main_output(peft->forward(in));
    EXPECT_GT(max_abs_diff(unmerged, main_output(load_model(fixture_dir(arch))->forward(in))), 1e-3);
    auto p = peft->model().named_parameters();
    const std::string target = arch == "gpt2" ? "transformer.h.0.attn.c_attn" : "model.layers.0.self_attn.q_proj";
    auto w0 = p[target + ".weight"].clone();
    auto mean_a = (p[target + ".adamix_A.0.weight"] + p[target + ".adamix_A.1.weight"] +
                   p[target + ".adamix_A.2.weight"] + p[target + ".adamix_A.3.weight"]) / 4;
    auto delta = torch::matmul(p[target + ".adamix_B.weight"], mean_a) * (8.0 / r);  // [out, in]
    // Exported before merging: the same adapter as after.
    TempDir early;
    peft->export_lora(early.path());
    const int64_t unmerged_count = peft->num_trainable();
    peft->merge();
    // One LoRA's parameters: r * (d_in + d_out) per target.
    const int64_t one_lora = arch == "gpt2" ? kLayers * r * (kHidden + 3 * kHidden)
                                            : kLayers * (r * 2 * kHidden + r * (kHidden + kKV));
    EXPECT_EQ(peft->num_trainable(), one_lora);
    EXPECT_GT(unmerged_count, one_lora);
    auto merged_w = peft->model().named_parameters()[target + ".weight"];
    EXPECT_LT(max_abs_diff(merged_w, arch == "gpt2" ? w0 + delta.t() : w0 + delta), 1e-5) << arch;
    EXPECT_LT(max_abs_diff(main_output(peft->forward(in)), unmerged), 1e-5) << arch;
    TempDir dir;
    peft->export_lora(dir.path());
    auto config = nlohmann::json::parse(io::read_file(dir.path() + "/adapter_config.json"));
    EXPECT_EQ(config["peft_type"], "LORA");
    EXPECT_EQ(config["r"], r);
    EXPECT_EQ(config["fan_in_fan_out"], arch == "gpt2");
    for (const auto* d : {&dir, &early}) {
      auto lora = PeftModel::load(load_model(fixture_dir(arch)), d->path());
      EXPECT_EQ(lora->method().peft_type(), "LORA");
      EXPECT_EQ(lora->num_trainable(), one_lora);
      lora->model().eval();
      EXPECT_LT(max_abs_diff(main_output(lora->forward(in)), unmerged), 1e-5) << arch;
    }
    peft->unmerge();
    EXPECT_LT(max_abs_diff(peft->model().named_parameters()[target + ".weight"], w0), 1e-6);
    EXPECT_EQ(peft->num_trainable(), unmerged_count);
    EXPECT_LT(max_abs_diff(main_output(peft->forward(in)), unmerged), 1e-5);
    auto plain = peft->merge_and_unload();
    for (auto& q : plain->named_parameters()) EXPECT_EQ(q.key().find("adamix"), std::string::npos) << q.key();
    EXPECT_LT(max_abs_diff(main_output(plain->forward(in)), unmerged), 1e-5);
  }
}

TEST(AdaMixLora, TrainingDrawsAOnlyWhenBIsShared) {
  auto peft = make("qwen2", {{"variant", "lora"}, {"num_experts", 8}, {"r", 2}, {"seed", 3}});
  auto routes = adamix_control(*peft).last_routing();
  ASSERT_EQ(routes.size(), 4u);  // the A banks of q_proj and v_proj, 2 layers
  EXPECT_EQ(routes[0].bank, "model.layers.0.self_attn.q_proj.adamix_A");
  EXPECT_EQ(routes[0].expert, -1);
  peft->model().train();
  torch::NoGradGuard no_grad;
  peft->forward(inputs_for("qwen2"));
  auto reference = at::make_generator<at::CPUGeneratorImpl>(3);
  for (const auto& r : adamix_control(*peft).last_routing())
    EXPECT_EQ(r.expert, at::randint(8, {1}, reference, at::kLong).item<int64_t>()) << r.bank;
}

TEST(AdaMix, AdapterVariantHasNoLoraExport) {
  auto peft = make("bert", {});
  TempDir dir;
  EXPECT_TRUE(throws_error([&] { peft->export_lora(dir.path()); }, ErrorKind::kUnsupported, {"ADAMIX", "variant"}));
  auto lora = PeftModel::create(load_model(fixture_dir("bert")), {{"peft_type", "LORA"}});
  EXPECT_TRUE(throws_error([&] { adamix_control(*lora); }, ErrorKind::kInvalidArgument, {"LORA", "ADAMIX"}));
}

TEST(AdaMixConfig, BadConfigsAreNamed) {
  EXPECT_TRUE(throws_error([] { make("bert", {{"experts", 4}}); }, ErrorKind::kInvalidArgument,
                           {"unknown key", "\"experts\"", "num_experts"}));
  EXPECT_TRUE(throws_error([] { make("bert", {{"variant", "prefix"}}); }, ErrorKind::kInvalidArgument,
                           {"\"variant\"", "prefix", "adapter, lora"}));
  EXPECT_TRUE(throws_error([] { make("bert", {{"num_experts", 0}}); }, ErrorKind::kInvalidArgument,
                           {"\"num_experts\""}));
  EXPECT_TRUE(throws_error([] { make("bert", {{"variant", "lora"}, {"bottleneck_size", 8}}); },
                           ErrorKind::kInvalidArgument, {"\"bottleneck_size\"", "adapter"}));
  EXPECT_TRUE(throws_error([] { make("bert", {{"share_B", false}}); }, ErrorKind::kInvalidArgument,
                           {"\"share_B\"", "lora"}));
  EXPECT_TRUE(throws_error([] { make("bert", {{"variant", "lora"}, {"r", 0}}); }, ErrorKind::kInvalidArgument,
                           {"\"r\""}));
  EXPECT_TRUE(throws_error([] { make("bert", {{"eval_routing", "top2"}}); }, ErrorKind::kInvalidArgument,
                           {"\"eval_routing\"", "top2", "random_token"}));
  EXPECT_TRUE(throws_error([] { make("bert", {{"share_up", 1}}); }, ErrorKind::kInvalidArgument, {"\"share_up\""}));
  EXPECT_TRUE(throws_error([] { make("llama", {{"variant", "lora"}, {"target_modules", {"c_attn"}}}); },
                           ErrorKind::kInvalidArgument, {"c_attn", "matched no Linear"}));
}

TEST(AdaMixConfig, ConfigRoundTrips) {
  auto peft = make("llama", {{"variant", "lora"}, {"num_experts", 3}, {"r", 2}, {"lora_alpha", 4}, {"share_A", true},
                             {"share_B", false}, {"seed", 8}});
  auto c = peft->method().config();
  EXPECT_EQ(c["peft_type"], "ADAMIX");
  EXPECT_EQ(c["variant"], "lora");
  EXPECT_EQ(c["target_modules"], nlohmann::json({"q_proj", "v_proj"}));
  EXPECT_FALSE(c.contains("bottleneck_size"));
  auto again = PeftModel::create(load_model(fixture_dir("llama")), c);
  EXPECT_EQ(again->method().config(), c);
  EXPECT_EQ(again->num_trainable(), peft->num_trainable());
  auto adapter = make("bert", {});
  auto a = adapter->method().config();
  EXPECT_EQ(a["num_experts"], 4);
  EXPECT_EQ(a["share_up"], true);
  EXPECT_EQ(a["share_down"], false);
  EXPECT_EQ(a["placement"], "pfeiffer");
  EXPECT_EQ(a["bottleneck_size"], 16);
  EXPECT_EQ(a["activation"], "gelu");
  EXPECT_EQ(a["eval_routing"], "average");
}

// ---- The consistency loss.

TEST(AdaMixConsistencyLoss, MatchesAHandComputation) {
  // Row 0: p1 = (1/2, 1/2), p2 = (3/4, 1/4). Row 1: p1 = (1/5, 4/5), p2 = (1/2, 1/2).
  auto l1 = torch::tensor({{0.0, 0.0}, {0.0, std::log(4.0)}}, torch::requires_grad());
  auto l2 = torch::tensor({{std::log(3.0), 0.0}, {0.0, 0.0}}, torch::requires_grad());
  auto kl = [](std::vector<double> p, std::vector<double> q) {  // KL(p || q)
    double s = 0;
    for (size_t i = 0; i < p.size(); ++i) s += p[i] * std::log(p[i] / q[i]);
    return s;
  };
  const std::vector<double> p1a = {0.5, 0.5}, p2a = {0.75, 0.25}, p1b = {0.2, 0.8}, p2b = {0.5, 0.5};
  // batchmean: the sums over the batch divided by B = 2.
  const double expected = 0.5 * ((kl(p2a, p1a) + kl(p2b, p1b)) / 2 + (kl(p1a, p2a) + kl(p1b, p2b)) / 2);
  auto loss = adamix_consistency_loss(l1, l2);
  EXPECT_NEAR(loss.item<double>(), expected, 1e-6);
  // Symmetric.
  EXPECT_NEAR(adamix_consistency_loss(l2, l1).item<double>(), expected, 1e-6);
  // Gradients: only KL(p2 || p1) reaches logits1 (p2 detached): d/dl1 = 0.5 * (p1 - p2) / B.
  loss.backward();
  auto g1 = l1.grad();
  EXPECT_NEAR(g1[0][0].item<double>(), 0.5 * (0.5 - 0.75) / 2, 1e-6);
  EXPECT_NEAR(g1[1][1].item<double>(), 0.5 * (0.8 - 0.5) / 2, 1e-6);
  EXPECT_NEAR(l2.grad()[0][0].item<double>(), 0.5 * (0.75 - 0.5) / 2, 1e-6);
}

// The blockwise CPU computation against the composite formula in float64,
// on rows spread over blocks and threads and a vocabulary of odd size.
TEST(AdaMixConsistencyLoss, MatchesTheCompositeInFloat64OnAWideVocabulary) {
  namespace F = torch::nn::functional;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(12);
  auto x = (torch::randn({3, 37, 1003}, gen) * 3).set_requires_grad(true);
  auto y = (torch::randn({3, 37, 1003}, gen) * 3).set_requires_grad(true);
  auto loss = adamix_consistency_loss(x, y);
  (loss * 2).backward();
  auto xd = x.detach().to(torch::kDouble).set_requires_grad(true);
  auto yd = y.detach().to(torch::kDouble).set_requires_grad(true);
  const auto batchmean = F::KLDivFuncOptions().reduction(torch::kBatchMean);
  auto ref = 0.5 * (F::kl_div(torch::log_softmax(xd, -1), torch::softmax(yd.detach(), -1), batchmean) +
                    F::kl_div(torch::log_softmax(yd, -1), torch::softmax(xd.detach(), -1), batchmean));
  (ref * 2).backward();
  EXPECT_NEAR(loss.item<double>(), ref.item<double>(), 1e-5 * ref.item<double>());
  // Float32 rounding of a row's logsumexp (about 10 here, ulp 1e-6) moves
  // every probability by about that relative amount: 1e-7 seen, 5e-7 allowed.
  EXPECT_LT((x.grad().to(torch::kDouble) - xd.grad()).abs().max().item<double>(), 5e-7);
  EXPECT_LT((y.grad().to(torch::kDouble) - yd.grad()).abs().max().item<double>(), 5e-7);
}

TEST(AdaMixConsistencyLoss, ZeroForIdenticalLogitsAndComputedInFloat) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(11);
  auto x = torch::randn({3, 5, 7}, gen);
  // Zero up to float rounding: the KL target is log(softmax(x)) and the input
  // log_softmax(x), which differ in the last bits (seen up to 1.4e-07 summed
  // over these 105 values with other draws).
  EXPECT_NEAR(adamix_consistency_loss(x, x.clone()).item<double>(), 0.0, 1e-6);
  auto y = torch::randn({3, 5, 7}, gen);
  auto full = adamix_consistency_loss(x, y);
  EXPECT_GT(full.item<double>(), 0.0);
  EXPECT_EQ(full.scalar_type(), torch::kFloat);
  auto half = adamix_consistency_loss(x.to(torch::kBFloat16), y.to(torch::kBFloat16));
  EXPECT_EQ(half.scalar_type(), torch::kFloat);
  EXPECT_NEAR(half.item<double>(), full.item<double>(), 0.05 * full.item<double>());
  EXPECT_TRUE(throws_error([&] { adamix_consistency_loss(x, y.narrow(0, 0, 2)); }, ErrorKind::kInvalidArgument,
                           {"adamix_consistency_loss"}));
}

}  // namespace
}  // namespace mixpeft::peft
