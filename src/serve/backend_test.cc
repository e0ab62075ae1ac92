// The LibTorch backend (backend.cc) and its per-row adapters (row_adapters.h):
// a batch mixing rows of LoRA, MoSLoRA, AdaMix and X-PEFT profiles gives each
// row what that profile gives it alone, and what the same adapter gives when
// loaded the ordinary way (PeftModel::load on a fresh model), within 1e-5.
#include "serve/backend.h"

#include <torch/torch.h>

#include <gtest/gtest.h>

#include "mixpeft/error.h"
#include "mixpeft/generate.h"
#include "mixpeft/peft.h"
#include "mixpeft/safetensors.h"
#include "models/test_util.h"
#include "peft/xpeft/xpeft.h"

namespace mixpeft::serve {
namespace {

using json = nlohmann::json;
using mixpeft::testing::fixture_dir;
using mixpeft::testing::TempDir;

const char* kArch = "bert_cls";

// Trains nothing: an adapter with every trainable tensor drawn at random, so
// that each profile moves the logits its own way. Saved into `dir`.
Profile make_profile(const std::string& name, const json& config, uint64_t seed, const std::string& dir) {
  auto peft = peft::PeftModel::create(load_model(fixture_dir(kArch)), config);
  torch::manual_seed(seed);
  {
    torch::NoGradGuard no_grad;
    for (auto& [n, t] : peft->trainable_parameters()) t.normal_(0.0, 0.3);
  }
  peft->save(dir);
  Profile p;
  p.name = name;
  p.kind = config["peft_type"];
  p.config = io::read_file(dir + "/adapter_config.json");
  p.tensors = io::read_file(dir + "/adapter_model.safetensors");
  return p;
}

// The logits of one row with the adapter loaded the ordinary way.
std::vector<float> reference_logits(const std::string& dir, const std::vector<int64_t>& row) {
  auto peft = peft::PeftModel::load(load_model(fixture_dir(kArch)), dir);
  peft->model().eval();
  torch::NoGradGuard no_grad;
  ModelInputs in;
  in.input_ids = torch::tensor(row, torch::kLong).unsqueeze(0);
  at::Tensor l = peft->forward(in).logits[0].contiguous();
  return std::vector<float>(l.data_ptr<float>(), l.data_ptr<float>() + l.numel());
}

double max_diff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double d = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) d = std::max(d, double(std::abs(a[i] - b[i])));
  return d;
}

class BackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = std::make_unique<ProfileStore>(tmp_.file("profiles.db"));
    const json head = json::array({"classifier"});
    const std::vector<std::pair<std::string, json>> configs = {
        {"lora-a", {{"peft_type", "LORA"}, {"r", 4}, {"lora_alpha", 8}, {"target_modules", {"query", "value"}},
                    {"modules_to_save", head}, {"task_type", "SEQ_CLS"}}},
        {"lora-b", {{"peft_type", "LORA"}, {"r", 2}, {"lora_alpha", 4}, {"target_modules", {"query", "dense"}},
                    {"modules_to_save", head}}},
        {"moslora", {{"peft_type", "MOSLORA"}, {"r", 4}, {"lora_alpha", 8}, {"target_modules", {"key", "value"}},
                     {"modules_to_save", head}}},
        {"adamix", {{"peft_type", "ADAMIX"}, {"variant", "lora"}, {"r", 4}, {"num_experts", 2},
                    {"target_modules", {"query", "value"}}, {"modules_to_save", head}}},
        {"xpeft-soft", {{"peft_type", "XPEFT"}, {"num_adapters", 4}, {"bottleneck_size", 8}, {"bank_seed", 3},
                        {"modules_to_save", head}}},
        {"xpeft-hard", {{"peft_type", "XPEFT"}, {"num_adapters", 4}, {"bottleneck_size", 8}, {"bank_seed", 3},
                        {"mask_type", "softmax"}, {"hard", true}, {"top_k", 2}, {"modules_to_save", head}}},
    };
    uint64_t seed = 1;
    for (const auto& [name, config] : configs) {
      const std::string dir = tmp_.file(name);
      profiles_[name] = make_profile(name, config, seed++, dir);
      dirs_[name] = dir;
      store_->put(profiles_[name]);
    }
    BackendOptions o;
    o.model_dir = fixture_dir(kArch);
    backend_ = make_torch_backend(o, *store_);
  }

  ClassifyItem item(const std::string& name, std::vector<std::vector<int64_t>> rows) {
    ClassifyItem it;
    it.meta = store_->get_meta(name);
    it.request.profile = name;
    it.request.input_ids = std::move(rows);
    return it;
  }

  TempDir tmp_;
  std::unique_ptr<ProfileStore> store_;
  std::map<std::string, Profile> profiles_;
  std::map<std::string, std::string> dirs_;
  std::unique_ptr<Backend> backend_;
};

std::vector<int64_t> row(int64_t length, int64_t start) {
  std::vector<int64_t> r;
  for (int64_t i = 0; i < length; ++i) r.push_back(5 + (start * 7 + i * 13) % 200);
  return r;
}

TEST_F(BackendTest, MixedBatchEqualsEachProfileAloneAndTheOrdinaryLoad) {
  std::vector<ClassifyItem> items = {
      item("lora-a", {row(5, 1), row(12, 2)}), item("xpeft-soft", {row(9, 3)}), item("lora-b", {row(3, 4)}),
      item("moslora", {row(16, 5)}),           item("adamix", {row(7, 6)}),     item("xpeft-hard", {row(11, 7)}),
      item("lora-a", {row(4, 8)}),
  };
  std::vector<ClassifyOutcome> mixed = backend_->classify_batch(items);
  ASSERT_EQ(mixed.size(), items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    const std::string& name = items[i].meta.name;
    if (mixed[i].error) {
      try {
        std::rethrow_exception(mixed[i].error);
      } catch (const std::exception& e) {
        FAIL() << name << ": " << e.what();
      }
    }
    ASSERT_EQ(mixed[i].result.logits.size(), items[i].request.input_ids.size()) << name;
    for (size_t k = 0; k < items[i].request.input_ids.size(); ++k) {
      const auto& r = items[i].request.input_ids[k];
      std::vector<ClassifyOutcome> alone = backend_->classify_batch({item(name, {r})});
      ASSERT_FALSE(alone[0].error) << name;
      EXPECT_LE(max_diff(mixed[i].result.logits[k], alone[0].result.logits[0]), 1e-5) << name << " row " << k;
      EXPECT_LE(max_diff(mixed[i].result.logits[k], reference_logits(dirs_[name], r)), 1e-5) << name << " row " << k;
    }
  }
  // The profiles really differ on one input (the test would not see a
  // profile's adapters applied to another's rows otherwise).
  const auto r = row(8, 9);
  std::vector<std::vector<float>> per_profile;
  for (const auto& [name, p] : profiles_) per_profile.push_back(reference_logits(dirs_[name], r));
  for (size_t a = 0; a < per_profile.size(); ++a)
    for (size_t b = a + 1; b < per_profile.size(); ++b) EXPECT_GT(max_diff(per_profile[a], per_profile[b]), 1e-3);
  // Every profile was materialised once, then came from the cache.
  BackendStats s = backend_->stats();
  EXPECT_EQ(s.cache_misses, int64_t(profiles_.size()));
  EXPECT_GT(s.cache_hits, 0);
}

TEST_F(BackendTest, PerItemErrorsLeaveTheOtherItemsAlone) {
  std::vector<ClassifyItem> items = {item("lora-a", {row(5, 1)}), item("lora-b", {{3, 100000}}),
                                     item("xpeft-soft", {row(6, 2)})};
  auto out = backend_->classify_batch(items);
  EXPECT_FALSE(out[0].error);
  ASSERT_TRUE(out[1].error);
  EXPECT_FALSE(out[2].error);
  try {
    std::rethrow_exception(out[1].error);
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("vocabulary"), std::string::npos) << e.what();
  }
  // A classifier cannot generate.
  GenerateItem g;
  g.meta = store_->get_meta("lora-a");
  g.request.input_ids = {1, 2};
  auto gen = backend_->generate_batch({g});
  ASSERT_EQ(gen.size(), 1u);
  EXPECT_TRUE(gen[0].error);
}

TEST_F(BackendTest, RefusesProfilesItCannotApply) {
  Profile bad = profiles_["lora-a"];
  bad.name = "wrong-shapes";
  // lora-b's tensors under lora-a's config: the shapes do not match.
  bad.tensors = profiles_["lora-b"].tensors;
  EXPECT_THROW(backend_->check_servable(bad), Error);
  Profile xp = profiles_["xpeft-soft"];
  json c = json::parse(xp.config);
  c["bank_checksum"] = "fnv1a64w:0000000000000000";
  xp.config = c.dump();
  EXPECT_THROW(backend_->check_servable(xp), Error);
  EXPECT_NO_THROW(backend_->check_servable(profiles_["moslora"]));
}

TEST_F(BackendTest, ABankFolderServesTheProfilesOfThatBankOnly) {
  // The bank of the X-PEFT profiles (bank_seed 3), saved as a bank folder.
  auto peft = peft::PeftModel::create(load_model(fixture_dir(kArch)), json::parse(profiles_["xpeft-soft"].config));
  auto& method = dynamic_cast<peft::xpeft::XpeftMethod&>(peft->method());
  const std::string bank = tmp_.file("bank");
  method.save_bank(bank);
  BackendOptions o;
  o.model_dir = fixture_dir(kArch);
  o.bank_dir = bank;
  auto with_bank = make_torch_backend(o, *store_);
  EXPECT_NE(with_bank->describe_json().find(method.bank().checksum), std::string::npos);
  // Same bank, same answers as the backend that rebuilt it from the seed.
  for (const char* name : {"xpeft-soft", "xpeft-hard"}) {
    auto a = with_bank->classify_batch({item(name, {row(9, 1)})});
    auto b = backend_->classify_batch({item(name, {row(9, 1)})});
    if (a[0].error) {
      try {
        std::rethrow_exception(a[0].error);
      } catch (const std::exception& e) {
        FAIL() << name << ": " << e.what();
      }
    }
    EXPECT_LE(max_diff(a[0].result.logits[0], b[0].result.logits[0]), 1e-6) << name;
  }
  // A profile of another bank (another seed) is refused, naming the bank.
  json other = json::parse(profiles_["xpeft-soft"].config);
  other.erase("bank_checksum");
  other["bank_seed"] = 4;
  Profile p = make_profile("other-bank", other, 99, tmp_.file("other-bank"));
  try {
    with_bank->check_servable(p);
    ADD_FAILURE() << "a profile of another bank was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("bank"), std::string::npos) << e.what();
  }
  // LoRA profiles do not care about the bank.
  EXPECT_FALSE(with_bank->classify_batch({item("lora-a", {row(4, 2)})})[0].error);
}


// Generation on the llama fixture: a batch of greedy requests of different
// profiles, prompt lengths and limits, with sampled ones of other settings
// among them, gives each what it gets alone, and what mixpeft::generate gives
// on PeftModel::load.
TEST(BackendGenerate, MixedBatchEqualsEachAloneAndTheOrdinaryLoad) {
  TempDir tmp;
  ProfileStore store(tmp.file("p.db"));
  const std::string llama = fixture_dir("llama");
  std::map<std::string, std::string> dirs = {{"fixture", llama + "/adapter"}};
  auto put = [&](const std::string& name, const std::string& dir) {
    Profile p;
    p.name = name;
    json config = json::parse(io::read_file(dir + "/adapter_config.json"));
    p.kind = config["peft_type"];
    p.config = config.dump();
    p.tensors = io::read_file(dir + "/adapter_model.safetensors");
    store.put(p);
  };
  put("fixture", dirs["fixture"]);
  for (const auto& [name, config] :
       std::vector<std::pair<std::string, json>>{{"lora", {{"peft_type", "LORA"}, {"r", 4}, {"target_modules", {"q_proj", "o_proj"}}}},
                                                 {"xpeft", {{"peft_type", "XPEFT"}, {"num_adapters", 4}, {"bottleneck_size", 8}}}}) {
    auto peft = peft::PeftModel::create(load_model(llama), config);
    torch::manual_seed(7);
    {
      torch::NoGradGuard no_grad;
      for (auto& [n, t] : peft->trainable_parameters()) t.normal_(0.0, 0.5);
    }
    dirs[name] = tmp.file(name);
    peft->save(dirs[name]);
    put(name, dirs[name]);
  }
  BackendOptions o;
  o.model_dir = llama;
  auto backend = make_torch_backend(o, store);
  auto gen_item = [&](const std::string& name, std::vector<int64_t> prompt, int64_t n, double temperature = 0,
                      int64_t top_k = 0, uint64_t seed = 5) {
    GenerateItem it;
    it.meta = store.get_meta(name);
    it.request.profile = name;
    it.request.input_ids = std::move(prompt);
    it.request.max_new_tokens = n;
    it.request.temperature = temperature;
    it.request.top_k = top_k;
    it.request.seed = seed;
    return it;
  };
  std::vector<GenerateItem> items = {gen_item("fixture", {5, 17, 42}, 8), gen_item("lora", {9, 8, 7, 6, 5, 4}, 5),
                                     gen_item("xpeft", {3}, 10), gen_item("fixture", {100, 2}, 3),
                                     gen_item("lora", {11, 12, 13}, 6, /*temperature=*/0.8),
                                     gen_item("xpeft", {11, 12, 13}, 7, /*temperature=*/1.2, /*top_k=*/5, /*seed=*/9),
                                     gen_item("fixture", {4, 4}, 9, /*temperature=*/1.0, /*top_k=*/0, /*seed=*/3)};
  std::vector<std::vector<int64_t>> streamed(items.size());
  for (size_t i = 0; i < items.size(); ++i) items[i].request.on_token = [&streamed, i](int64_t t) { streamed[i].push_back(t); };
  auto mixed = backend->generate_batch(items);
  ASSERT_EQ(mixed.size(), items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    const std::string& name = items[i].meta.name;
    ASSERT_FALSE(mixed[i].error) << name;
    const auto& tokens = mixed[i].result.tokens;
    EXPECT_EQ(int64_t(tokens.size()), items[i].request.max_new_tokens) << name;  // no eos in the fixture's config
    EXPECT_EQ(streamed[i], tokens) << name;
    GenerateItem alone = items[i];
    alone.request.on_token = nullptr;
    auto single = backend->generate_batch({alone});
    ASSERT_FALSE(single[0].error) << name;
    EXPECT_EQ(single[0].result.tokens, tokens) << name << " item " << i;
    // The ordinary way: the adapter loaded on a fresh model, mixpeft::generate.
    auto peft = peft::PeftModel::load(load_model(llama), dirs[name]);
    peft->model().eval();
    GenerateOptions g;
    g.max_new_tokens = items[i].request.max_new_tokens;
    g.temperature = items[i].request.temperature;
    g.top_k = items[i].request.top_k;
    g.seed = items[i].request.seed;
    auto ref = mixpeft::generate(peft->model(), {items[i].request.input_ids}, g);
    EXPECT_EQ(ref.tokens[0], tokens) << name << " item " << i;
  }
  // The profiles differ: the same prompt continues differently.
  EXPECT_NE(backend->generate_batch({gen_item("fixture", {5, 17, 42}, 8)})[0].result.tokens,
            backend->generate_batch({gen_item("lora", {5, 17, 42}, 8)})[0].result.tokens);
}

// A request whose client goes away ends early ("cancelled") with the tokens
// it had; the rest of its batch runs on and gets what it gets alone.
TEST(BackendGenerate, CancelledRequestEndsAloneInItsBatch) {
  TempDir tmp;
  ProfileStore store(tmp.file("p.db"));
  const std::string llama = fixture_dir("llama");
  Profile p;
  p.name = "fixture";
  p.kind = "LORA";
  p.config = io::read_file(llama + "/adapter/adapter_config.json");
  p.tensors = io::read_file(llama + "/adapter/adapter_model.safetensors");
  store.put(p);
  BackendOptions o;
  o.model_dir = llama;
  auto backend = make_torch_backend(o, store);
  auto gen_item = [&](std::vector<int64_t> prompt) {
    GenerateItem it;
    it.meta = store.get_meta("fixture");
    it.request.profile = "fixture";
    it.request.input_ids = std::move(prompt);
    it.request.max_new_tokens = 12;
    return it;
  };
  std::vector<GenerateItem> items = {gen_item({5, 17, 42}), gen_item({9, 8, 7})};
  const auto free_run = backend->generate_batch(items);
  int seen = 0;
  items[1].request.on_token = [&seen](int64_t) { ++seen; };
  items[1].request.cancelled = [&seen] { return seen >= 4; };
  const auto cut = backend->generate_batch(items);
  ASSERT_FALSE(cut[0].error);
  ASSERT_FALSE(cut[1].error);
  EXPECT_EQ(cut[0].result.tokens, free_run[0].result.tokens);
  EXPECT_EQ(cut[0].result.finish_reason, "length");
  EXPECT_EQ(cut[1].result.finish_reason, "cancelled");
  EXPECT_EQ(cut[1].result.tokens,
            std::vector<int64_t>(free_run[1].result.tokens.begin(), free_run[1].result.tokens.begin() + 4));
}

}  // namespace
}  // namespace mixpeft::serve
