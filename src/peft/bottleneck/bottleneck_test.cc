// BOTTLENECK: placement, the adapter's formula, near-identity init, naming,
// unload and config errors. The conformance table covers gradients, counts,
// save/load and the refusal to merge on every architecture.
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
using mixpeft::testing::max_abs_diff;
using mixpeft::testing::throws_error;

constexpr int64_t kHidden = 64, kLayers = 2;

std::shared_ptr<PeftModel> make(const std::string& arch, nlohmann::json config) {
  config["peft_type"] = "BOTTLENECK";
  return PeftModel::create(load_model(fixture_dir(arch)), config);
}

std::set<std::string> trainable_names(PeftModel& peft) {
  std::set<std::string> out;
  for (auto& [n, t] : peft.trainable_parameters()) out.insert(n);
  return out;
}

// Records how often a slot runs, then runs the adapter it wraps.
class CountingSite : public nn::SiteAdapter {
 public:
  explicit CountingSite(std::shared_ptr<nn::SiteAdapter> inner) : inner_(std::move(inner)) {}
  at::Tensor forward(const at::Tensor& h) override {
    ++calls;
    last_input = h;
    return inner_->forward(h);
  }
  int calls = 0;
  at::Tensor last_input;

 private:
  std::shared_ptr<nn::SiteAdapter> inner_;
};

TEST(Bottleneck, HoulsbyHasTwoAdaptersPerBlockAndPfeifferOne) {
  for (const std::string arch : {"bert", "gpt2", "llama"}) {
    auto houlsby = make(arch, {{"placement", "houlsby"}, {"bottleneck_size", 8}});
    auto pfeiffer = make(arch, {{"bottleneck_size", 8}});  // pfeiffer is the default
    std::set<std::string> want_h, want_p;
    for (const auto& b : houlsby->model().blocks())
      for (const char* site : {"adapter_attn", "adapter_ffn"})
        for (const char* p : {"down.weight", "down.bias", "up.weight", "up.bias"}) {
          want_h.insert(b.name + "." + site + "." + p);
          if (std::string(site) == "adapter_ffn") want_p.insert(b.name + "." + site + "." + p);
        }
    EXPECT_EQ(trainable_names(*houlsby), want_h) << arch;
    EXPECT_EQ(trainable_names(*pfeiffer), want_p) << arch;
    auto params = houlsby->model().named_parameters();
    const std::string b0 = houlsby->model().blocks()[0].name;
    EXPECT_EQ(params[b0 + ".adapter_ffn.down.weight"].sizes(), (std::vector<int64_t>{8, kHidden}));
    EXPECT_EQ(params[b0 + ".adapter_ffn.up.weight"].sizes(), (std::vector<int64_t>{kHidden, 8}));
    EXPECT_EQ(params[b0 + ".adapter_attn.down.bias"].sizes(), (std::vector<int64_t>{8}));
    EXPECT_EQ(params[b0 + ".adapter_attn.up.bias"].sizes(), (std::vector<int64_t>{kHidden}));
    // Trainable count: per adapter 2 d m + m + d.
    EXPECT_EQ(houlsby->num_trainable(), kLayers * 2 * (2 * kHidden * 8 + 8 + kHidden)) << arch;
    EXPECT_EQ(pfeiffer->num_trainable(), kLayers * (2 * kHidden * 8 + 8 + kHidden)) << arch;
  }
}

TEST(Bottleneck, SlotsRunOncePerForwardAtTheirSites) {
  for (const std::string placement : {"houlsby", "pfeiffer"}) {
    auto peft = make("roberta_cls", {{"placement", placement}, {"bottleneck_size", 4}});
    std::vector<std::shared_ptr<CountingSite>> attn, ffn;
    for (const auto& b : peft->model().blocks()) {
      EXPECT_EQ(b.slots->after_attention != nullptr, placement == "houlsby") << b.name;
      ASSERT_TRUE(b.slots->after_ffn) << b.name;
      if (b.slots->after_attention) {
        attn.push_back(std::make_shared<CountingSite>(b.slots->after_attention));
        b.slots->after_attention = attn.back();
      }
      ffn.push_back(std::make_shared<CountingSite>(b.slots->after_ffn));
      b.slots->after_ffn = ffn.back();
    }
    torch::NoGradGuard no_grad;
    peft->forward(inputs_for("roberta_cls"));
    for (auto& c : attn) EXPECT_EQ(c->calls, 1);
    for (auto& c : ffn) {
      EXPECT_EQ(c->calls, 1);
      EXPECT_EQ(c->last_input.sizes(), (std::vector<int64_t>{2, 16, kHidden}));
    }
    EXPECT_EQ(attn.size(), placement == "houlsby" ? 2u : 0u);
  }
}

TEST(Bottleneck, AdapterComputesHPlusUpActDownH) {
  for (const std::string act : {"relu", "gelu"}) {
    auto peft = make("gpt2", {{"bottleneck_size", 6}, {"init_scale", 0.5}, {"activation", act}, {"seed", 3}});
    const auto block = peft->model().blocks()[1];
    auto p = peft->model().named_parameters();
    const std::string pre = block.name + ".adapter_ffn.";
    auto h = torch::randn({2, 5, kHidden}, at::make_generator<at::CPUGeneratorImpl>(7));
    torch::NoGradGuard no_grad;
    auto z = torch::matmul(h, p[pre + "down.weight"].t()) + p[pre + "down.bias"];
    z = act == "relu" ? torch::relu(z) : torch::gelu(z);
    auto expected = h + torch::matmul(z, p[pre + "up.weight"].t()) + p[pre + "up.bias"];
    auto got = block.slots->after_ffn->forward(h);
    EXPECT_LT(max_abs_diff(got, expected), 1e-5) << act;
    EXPECT_GT(max_abs_diff(got, h), 1e-2) << act << ": the adapter should change h with init_scale 0.5";
  }
}

TEST(Bottleneck, StartsAtOrNearTheIdentity) {
  for (const std::string arch : {"bert_cls", "gpt2", "qwen2"}) {
    auto in = inputs_for(arch);
    torch::NoGradGuard no_grad;
    auto base = main_output(load_model(fixture_dir(arch))->forward(in));
    // init_scale 0: up = 0, so every adapter is exactly the identity.
    auto exact = make(arch, {{"placement", "houlsby"}, {"init_scale", 0.0}});
    EXPECT_TRUE(torch::equal(main_output(exact->forward(in)), base)) << arch;
    // Default init_scale 1e-3: close to the base model, but not equal.
    auto near = make(arch, {{"placement", "houlsby"}});
    const double d = max_abs_diff(main_output(near->forward(in)), base);
    EXPECT_GT(d, 0.0) << arch;
    EXPECT_LT(d, 0.05) << arch;
    // The down projection is Kaiming-uniform (bound 1/sqrt(d)), the up projection N(0, 1e-3^2), biases 0.
    auto p = near->model().named_parameters();
    const std::string pre = near->model().blocks()[0].name + ".adapter_ffn.";
    EXPECT_LE(p[pre + "down.weight"].abs().max().item<double>(), 1.0 / std::sqrt(double(kHidden)));
    EXPECT_GT(p[pre + "down.weight"].abs().max().item<double>(), 0.5 / std::sqrt(double(kHidden)));
    EXPECT_NEAR(p[pre + "up.weight"].std().item<double>(), 1e-3, 2e-4);
    EXPECT_EQ(p[pre + "down.bias"].abs().max().item<double>(), 0.0);
    EXPECT_EQ(p[pre + "up.bias"].abs().max().item<double>(), 0.0);
  }
}

TEST(Bottleneck, SeedChoosesTheInit) {
  auto a = make("llama", {{"seed", 1}}), b = make("llama", {{"seed", 1}}), c = make("llama", {{"seed", 2}});
  const std::string name = a->model().blocks()[0].name + ".adapter_ffn.down.weight";
  auto pa = a->model().named_parameters(), pb = b->model().named_parameters(), pc = c->model().named_parameters();
  EXPECT_TRUE(torch::equal(pa[name], pb[name]));
  EXPECT_FALSE(torch::equal(pa[name], pc[name]));
}

TEST(Bottleneck, CannotMergeAndUnloadRestoresTheBaseModel) {
  auto peft = make("bert", {{"placement", "houlsby"}, {"init_scale", 0.1}});
  EXPECT_FALSE(peft->method().mergeable());
  try {
    peft->merge();
    FAIL() << "merge should throw";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kUnsupported);
    EXPECT_NE(std::string(e.what()).find("BOTTLENECK"), std::string::npos) << e.what();
  }
  auto in = inputs_for("bert");
  torch::NoGradGuard no_grad;
  auto base = main_output(load_model(fixture_dir("bert"))->forward(in));
  EXPECT_GT(max_abs_diff(main_output(peft->forward(in)), base), 1e-4);
  peft->method().unload(peft->model());
  for (auto& p : peft->model().named_parameters()) EXPECT_EQ(p.key().find("adapter_"), std::string::npos) << p.key();
  for (const auto& b : peft->model().blocks()) {
    EXPECT_FALSE(b.slots->after_attention);
    EXPECT_FALSE(b.slots->after_ffn);
  }
  EXPECT_TRUE(torch::equal(main_output(peft->forward(in)), base));
}

TEST(BottleneckConfig, BadConfigsAreNamed) {
  EXPECT_TRUE(throws_error([] { make("bert", {{"adapter_size", 8}}); }, ErrorKind::kInvalidArgument,
                           {"unknown key", "\"adapter_size\"", "bottleneck_size"}));
  EXPECT_TRUE(throws_error([] { make("bert", {{"placement", "parallel"}}); }, ErrorKind::kInvalidArgument,
                           {"\"placement\"", "parallel", "houlsby, pfeiffer"}));
  EXPECT_TRUE(throws_error([] { make("bert", {{"bottleneck_size", 0}}); }, ErrorKind::kInvalidArgument,
                           {"\"bottleneck_size\"", "positive"}));
  EXPECT_TRUE(throws_error([] { make("bert", {{"init_scale", -1}}); }, ErrorKind::kInvalidArgument,
                           {"\"init_scale\""}));
  EXPECT_TRUE(throws_error([] { make("bert", {{"activation", "softplus"}}); }, ErrorKind::kUnsupported,
                           {"activation", "softplus"}));
  EXPECT_TRUE(throws_error([] { make("bert", {{"seed", "x"}}); }, ErrorKind::kInvalidArgument,
                           {"\"seed\"", "integer"}));
}

TEST(BottleneckConfig, ConfigRoundTrips) {
  auto peft = make("gpt2", {{"placement", "houlsby"}, {"bottleneck_size", 5}, {"activation", "silu"},
                            {"init_scale", 0.01}, {"seed", 9}});
  auto c = peft->method().config();
  EXPECT_EQ(c["peft_type"], "BOTTLENECK");
  EXPECT_EQ(c["placement"], "houlsby");
  EXPECT_EQ(c["bottleneck_size"], 5);
  EXPECT_EQ(c["activation"], "silu");
  EXPECT_EQ(c["init_scale"], 0.01);
  EXPECT_EQ(c["seed"], 9);
  auto again = PeftModel::create(load_model(fixture_dir("gpt2")), c);
  EXPECT_EQ(again->num_trainable(), peft->num_trainable());
  auto pa = peft->model().named_parameters(), pb = again->model().named_parameters();
  for (auto& [n, t] : peft->trainable_parameters()) EXPECT_TRUE(torch::equal(t, pb[n])) << n;
}

}  // namespace
}  // namespace mixpeft::peft
