// X-PEFT: mask weightings, hard masks and their straight-through gradient,
// bit-packed profiles and their size, banks (random, saved, from BOTTLENECK
// adapters) and the refusal of a profile on the wrong bank, the cache of
// combined adapters, and config errors.
#include <filesystem>
#include <functional>

#include <gtest/gtest.h>

#include "mixpeft/checkpoint.h"
#include "mixpeft/error.h"
#include "mixpeft/nn.h"
#include "mixpeft/peft.h"
#include "mixpeft/safetensors.h"
#include "models/test_util.h"
#include "peft/xpeft/xpeft.h"

namespace mixpeft::peft::xpeft {
namespace {

using mixpeft::testing::fixture_dir;
using mixpeft::testing::inputs_for;
using mixpeft::testing::main_output;
using mixpeft::testing::max_abs_diff;
using mixpeft::testing::TempDir;
using mixpeft::testing::throws_error;

constexpr int64_t kLayers = 2, kHidden = 64;  // every fixture

XpeftMethod& xpeft_of(PeftModel& peft) { return dynamic_cast<XpeftMethod&>(peft.method()); }

// Random logits, so that masks are neither uniform nor tied.
void randomize_masks(PeftModel& peft, uint64_t seed, double std = 2.0) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  torch::NoGradGuard no_grad;
  xpeft_of(peft).module()->mask_A.normal_(0.0, std, gen);
  xpeft_of(peft).module()->mask_B.normal_(0.0, std, gen);
}

nlohmann::json read_json(const std::string& path) { return nlohmann::json::parse(io::read_file(path)); }

// ---- mask weightings --------------------------------------------------------

TEST(XpeftMasks, SoftWeightsAreNormalisedPerRow) {
  auto z = torch::randn({3, 7}) * 3;
  auto sm = soft_weights(z, "softmax");
  EXPECT_LT(max_abs_diff(sm.sum(-1), torch::ones({3})), 1e-6);
  EXPECT_LT(max_abs_diff(sm, torch::exp(z) / torch::exp(z).sum(-1, true)), 1e-6);
  auto sg = soft_weights(z, "sigmoid");
  EXPECT_LT(max_abs_diff(sg.sum(-1), torch::ones({3})), 1e-6);
  auto gates = 1 / (1 + torch::exp(-z));
  EXPECT_LT(max_abs_diff(sg, gates / gates.sum(-1, true)), 1e-6);
  EXPECT_TRUE((sm > 0).all().item<bool>() && (sg > 0).all().item<bool>());
}

TEST(XpeftMasks, HardMaskKeepsExactlyTheKLargestPerRow) {
  auto z = torch::randn({4, 9});
  for (int64_t k : {1, 3, 9}) {
    auto b = top_k_mask(z, k);
    EXPECT_TRUE(torch::equal(b.sum(-1), torch::full({4}, static_cast<float>(k)))) << k;
    EXPECT_TRUE(((b == 0) | (b == 1)).all().item<bool>());
    for (int64_t row = 0; row < 4; ++row) {
      auto sel = z[row].masked_select(b[row] > 0), rest = z[row].masked_select(b[row] == 0);
      if (rest.numel() > 0) {
        EXPECT_GT(sel.min().item<float>(), rest.max().item<float>()) << "k " << k;
      }
    }
    // The forward value is exactly the binary mask divided by k.
    auto w = mask_weights(z, {"softmax", true, k});
    EXPECT_TRUE(torch::equal(w, b / static_cast<double>(k)));
  }
  // Ties go to the lower index: all-zero logits select adapters 0..k-1.
  auto b = top_k_mask(torch::zeros({2, 5}), 2);
  EXPECT_TRUE(torch::equal(b[1], torch::tensor({1.f, 1.f, 0.f, 0.f, 0.f})));
}

TEST(XpeftMasks, StraightThroughGradientIsTheSoftOne) {
  for (const std::string type : {"softmax", "sigmoid"}) {
    auto z = (torch::randn({3, 6}) * 2).requires_grad_(true);
    auto c = torch::randn({3, 6});
    (mask_weights(z, {type, true, 2}) * c).sum().backward();
    ASSERT_TRUE(z.grad().defined());
    auto z2 = z.detach().clone().requires_grad_(true);
    (soft_weights(z2, type) * c).sum().backward();
    EXPECT_GT(z.grad().abs().max().item<double>(), 1e-4) << type;
    EXPECT_LT(max_abs_diff(z.grad(), z2.grad()), 1e-7) << type;
  }
}

TEST(XpeftMasks, BitPackingIsLeastSignificantBitFirst) {
  auto bits = torch::zeros({10});
  bits[0] = 1;
  bits[9] = 1;
  bits[7] = 1;
  auto packed = pack_bits(bits);
  ASSERT_EQ(packed.scalar_type(), torch::kByte);
  ASSERT_EQ(packed.numel(), 2);
  EXPECT_EQ(packed[0].item<int64_t>(), 0x81);
  EXPECT_EQ(packed[1].item<int64_t>(), 0x02);
  EXPECT_TRUE(torch::equal(unpack_bits(packed, 10), bits));
}

// ---- the method on the fixtures ----------------------------------------------

TEST(Xpeft, TrainableCountIsTwoLN) {
  auto peft = PeftModel::create(load_model(fixture_dir("qwen2")),
                                {{"peft_type", "XPEFT"}, {"num_adapters", 5}, {"bottleneck_size", 4}});
  EXPECT_EQ(peft->num_trainable(), 2 * kLayers * 5);
  std::set<std::string> names;
  for (auto& [n, t] : peft->trainable_parameters()) names.insert(n);
  EXPECT_EQ(names, (std::set<std::string>{"model.xpeft.mask_A", "model.xpeft.mask_B"}));
  EXPECT_FALSE(peft->method().mergeable());
  EXPECT_THROW(peft->merge(), Error);
}

TEST(Xpeft, HardMasksGetGradientsThroughTheModel) {
  auto peft = PeftModel::create(load_model(fixture_dir("bert_cls")),
                                {{"peft_type", "XPEFT"}, {"num_adapters", 6}, {"bottleneck_size", 8}, {"hard", true},
                                 {"top_k", 2}, {"mask_type", "sigmoid"}});
  randomize_masks(*peft, 1);
  peft->model().train();
  main_output(peft->forward(inputs_for("bert_cls"))).pow(2).mean().backward();
  for (auto* m : {&xpeft_of(*peft).module()->mask_A, &xpeft_of(*peft).module()->mask_B}) {
    ASSERT_TRUE(m->grad().defined());
    // Each layer's row gets a gradient, on unselected adapters too (that is how selections change).
    EXPECT_TRUE((m->grad().abs().sum(-1) > 0).all().item<bool>()) << m->grad();
    auto unselected = top_k_mask(*m, 2) == 0;
    EXPECT_GT(m->grad().masked_select(unselected).abs().max().item<double>(), 0);
  }
}

TEST(Xpeft, ForwardIsTheMaskedCombinationOfTheBank) {
  // The combined adapter, computed here by a plain loop over the bank, equals
  // what the module uses; and the block's after_ffn site applies it.
  auto peft = PeftModel::create(load_model(fixture_dir("llama")),
                                {{"peft_type", "XPEFT"}, {"num_adapters", 4}, {"bottleneck_size", 8}});
  randomize_masks(*peft, 2);
  auto& mod = *xpeft_of(*peft).module();
  const auto& bank = xpeft_of(*peft).bank();
  torch::NoGradGuard no_grad;
  auto wa = torch::softmax(mod.mask_A, -1), wb = torch::softmax(mod.mask_B, -1);
  for (int64_t l = 0; l < kLayers; ++l) {
    auto dw = torch::zeros({8, kHidden}), db = torch::zeros({8}), uw = torch::zeros({kHidden, 8}), ub = torch::zeros({kHidden});
    for (int64_t i = 0; i < 4; ++i) {
      dw += wa[l][i] * bank.down_weight[l][i];
      db += wa[l][i] * bank.down_bias[l][i];
      uw += wb[l][i] * bank.up_weight[l][i];
      ub += wb[l][i] * bank.up_bias[l][i];
    }
    auto c = mod.combined(l);
    EXPECT_LT(max_abs_diff(c.down_weight, dw), 1e-6);
    EXPECT_LT(max_abs_diff(c.down_bias, db), 1e-6);
    EXPECT_LT(max_abs_diff(c.up_weight, uw), 1e-6);
    EXPECT_LT(max_abs_diff(c.up_bias, ub), 1e-6);
    auto h = torch::randn({2, 3, kHidden});
    auto expected = h + torch::matmul(torch::relu(torch::matmul(h, dw.t()) + db), uw.t()) + ub;
    auto block = peft->model().blocks()[l];
    EXPECT_LT(max_abs_diff(block.slots->apply_after_ffn(h), expected), 1e-5);
  }
}

TEST(Xpeft, EvalForwardsReuseTheCombinedAdapters) {
  auto peft = PeftModel::create(load_model(fixture_dir("gpt2")),
                                {{"peft_type", "XPEFT"}, {"num_adapters", 5}, {"bottleneck_size", 8}});
  randomize_masks(*peft, 3);
  auto& mod = *xpeft_of(*peft).module();
  auto in = inputs_for("gpt2");
  peft->model().eval();
  at::Tensor first, second;
  {
    torch::NoGradGuard no_grad;
    EXPECT_EQ(mod.materializations(), 0);
    first = peft->forward(in).logits;
    EXPECT_EQ(mod.materializations(), 1);
    second = peft->forward(in).logits;
    EXPECT_EQ(mod.materializations(), 1) << "the second eval forward recomputed the combined adapters";
  }
  EXPECT_TRUE(torch::equal(first, second));
  // The uncached path (gradient wanted: computed with the autograd graph) gives the same outputs.
  auto uncached = peft->forward(in).logits;
  EXPECT_EQ(mod.materializations(), 1);
  EXPECT_LT(max_abs_diff(uncached, first), 1e-6);
  for (int64_t l = 0; l < kLayers; ++l) {
    torch::NoGradGuard no_grad;
    auto cached = mod.combined(l), fresh = mod.compute(l);
    EXPECT_TRUE(torch::equal(cached.down_weight, fresh.down_weight) && torch::equal(cached.up_weight, fresh.up_weight));
  }
  // A training step changes the masks: the next eval forward recomputes once.
  std::vector<at::Tensor> params;
  for (auto& [n, t] : peft->trainable_parameters()) params.push_back(t);
  torch::optim::AdamW opt(params, torch::optim::AdamWOptions(0.1));
  peft->model().train();
  peft->forward(in).logits.pow(2).mean().backward();
  opt.step();
  EXPECT_EQ(mod.materializations(), 1) << "training forwards must not use or fill the cache";
  peft->model().eval();
  torch::NoGradGuard no_grad;
  auto after = peft->forward(in).logits;
  EXPECT_EQ(mod.materializations(), 2);
  EXPECT_GT(max_abs_diff(after, first), 1e-6);
  peft->forward(in);
  EXPECT_EQ(mod.materializations(), 2);
}

// ---- profiles -----------------------------------------------------------------

TEST(XpeftProfile, HardProfileIsBitsPlusHead) {
  // bert_cls: L = 2, N = 12 -> 2 * 2 * 12 = 48 bits = 6 bytes, plus the classifier head.
  const int64_t N = 12;
  auto peft = PeftModel::create(load_model(fixture_dir("bert_cls")),
                                {{"peft_type", "XPEFT"}, {"num_adapters", N}, {"bottleneck_size", 8}, {"hard", true},
                                 {"top_k", 3}, {"modules_to_save", {"classifier"}}});
  randomize_masks(*peft, 4);
  int64_t head_bytes = 0;
  for (auto& p : peft->model().named_parameters())
    if (p.key().rfind("classifier.", 0) == 0) head_bytes += p.value().numel() * 4;
  ASSERT_EQ(head_bytes, (kHidden * 3 + 3) * 4);
  EXPECT_EQ(xpeft_of(*peft).mask_bytes(), 2 * kLayers * N / 8);
  EXPECT_LE(profile_bytes(*peft), 2 * kLayers * N / 8 + head_bytes);
  EXPECT_EQ(profile_bytes(*peft), 6 + head_bytes);

  TempDir tmp;
  peft->save(tmp.path());
  auto saved = io::load_tensors(tmp.path() + "/adapter_model.safetensors");
  std::set<std::string> names;
  for (auto& [n, t] : saved) names.insert(n);
  EXPECT_EQ(names, (std::set<std::string>{"base_model.model.bert.xpeft.mask_bits", "base_model.model.classifier.weight",
                                          "base_model.model.classifier.bias"}));
  EXPECT_EQ(saved.at("base_model.model.bert.xpeft.mask_bits").scalar_type(), torch::kByte);
  EXPECT_EQ(saved.at("base_model.model.bert.xpeft.mask_bits").numel(), 6);
  const auto file_bytes = std::filesystem::file_size(tmp.path() + "/adapter_model.safetensors");
  const auto config_bytes = std::filesystem::file_size(tmp.path() + "/adapter_config.json");
  std::printf("hard profile (L=2, N=%lld, top_k=3, bert_cls head): tensors %lld bytes (masks %lld + head %lld); "
              "adapter_model.safetensors %llu bytes, adapter_config.json %llu bytes\n",
              static_cast<long long>(N), static_cast<long long>(profile_bytes(*peft)), 6LL,
              static_cast<long long>(head_bytes), static_cast<unsigned long long>(file_bytes),
              static_cast<unsigned long long>(config_bytes));

  // Without the head: the masks alone.
  auto bare = PeftModel::create(load_model(fixture_dir("bert_cls")),
                                {{"peft_type", "XPEFT"}, {"num_adapters", N}, {"bottleneck_size", 8}, {"hard", true}, {"top_k", 3}});
  TempDir bare_dir;
  bare->save(bare_dir.path());
  EXPECT_EQ(profile_bytes(*bare), 6);
  std::printf("hard profile without head: tensors %lld bytes; adapter_model.safetensors %llu bytes\n",
              static_cast<long long>(profile_bytes(*bare)),
              static_cast<unsigned long long>(std::filesystem::file_size(bare_dir.path() + "/adapter_model.safetensors")));

  auto again = PeftModel::load(load_model(fixture_dir("bert_cls")), tmp.path());
  auto& a = *xpeft_of(*peft).module();
  auto& b = *xpeft_of(*again).module();
  EXPECT_TRUE(torch::equal(top_k_mask(a.mask_A, 3), top_k_mask(b.mask_A, 3)));
  EXPECT_TRUE(torch::equal(top_k_mask(a.mask_B, 3), top_k_mask(b.mask_B, 3)));
  torch::NoGradGuard no_grad;
  auto in = inputs_for("bert_cls");
  EXPECT_TRUE(torch::equal(peft->forward(in).logits, again->forward(in).logits));
}

TEST(XpeftProfile, SoftProfilesStoreLogits) {
  for (const std::string dtype : {"float32", "float16"}) {
    auto peft = PeftModel::create(load_model(fixture_dir("roberta_cls")),
                                  {{"peft_type", "XPEFT"}, {"num_adapters", 7}, {"bottleneck_size", 8}, {"mask_dtype", dtype}});
    randomize_masks(*peft, 5);
    const int64_t per = dtype == "float16" ? 2 : 4;
    EXPECT_EQ(profile_bytes(*peft), 2 * kLayers * 7 * per);
    TempDir tmp;
    peft->save(tmp.path());
    auto saved = io::load_tensors(tmp.path() + "/adapter_model.safetensors");
    ASSERT_EQ(saved.size(), 2u);
    EXPECT_EQ(saved.at("base_model.model.roberta.xpeft.mask_A").scalar_type(),
              dtype == "float16" ? torch::kHalf : torch::kFloat);
    auto again = PeftModel::load(load_model(fixture_dir("roberta_cls")), tmp.path());
    auto& a = *xpeft_of(*peft).module();
    auto& b = *xpeft_of(*again).module();
    if (dtype == "float32") {
      EXPECT_TRUE(torch::equal(a.mask_A, b.mask_A));
    } else {
      EXPECT_TRUE(torch::equal(a.mask_A.to(torch::kHalf).to(torch::kFloat), b.mask_A));
    }
  }
}

TEST(XpeftProfile, CorruptMaskBitsAreRefused) {
  auto peft = PeftModel::create(load_model(fixture_dir("llama")),
                                {{"peft_type", "XPEFT"}, {"num_adapters", 8}, {"bottleneck_size", 4}, {"hard", true}, {"top_k", 2}});
  TempDir tmp;
  peft->save(tmp.path());
  // 2 * 2 * 8 = 32 bits; row A[0] = adapters 0, 1 (byte 0 = 0b11). Select a third adapter.
  auto t = io::load_tensors(tmp.path() + "/adapter_model.safetensors");
  auto bits = t.at("base_model.model.model.xpeft.mask_bits").clone();
  EXPECT_EQ(bits[0].item<int64_t>(), 0x03);
  bits[0] = 0x07;
  io::save_tensors(tmp.path() + "/adapter_model.safetensors", {{"base_model.model.model.xpeft.mask_bits", bits}});
  EXPECT_TRUE(throws_error(
      [&] { PeftModel::load(load_model(fixture_dir("llama")), tmp.path()); }, ErrorKind::kCorrupt,
      {"adapter_model.safetensors", "mask_bits", "row 0 of mask A selects 3 adapters", "top_k is 2"}));
}

TEST(XpeftProfile, ActivatingAnotherProfileReusesTheBank) {
  // Two profiles on one bank (bert_cls, N = 5, same seed), each with its head:
  // a soft one and a hard one.
  const nlohmann::json soft{{"peft_type", "XPEFT"}, {"num_adapters", 5}, {"bottleneck_size", 8},
                            {"modules_to_save", {"classifier"}}};
  nlohmann::json hard = soft;
  hard["hard"] = true;
  hard["top_k"] = 2;
  hard["mask_type"] = "sigmoid";
  TempDir dir_soft, dir_hard, dir_other_bank;
  auto train = [](const nlohmann::json& config, uint64_t seed, const std::string& dir) {
    auto p = PeftModel::create(load_model(fixture_dir("bert_cls")), config);
    randomize_masks(*p, seed);
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    torch::NoGradGuard no_grad;
    for (auto& [n, t] : p->trainable_parameters())
      if (n.rfind("classifier.", 0) == 0) t.normal_(0.0, 0.3, gen);
    p->save(dir);
  };
  train(soft, 7, dir_soft.path());
  train(hard, 8, dir_hard.path());
  nlohmann::json other = soft;
  other["bank_seed"] = 3;
  train(other, 9, dir_other_bank.path());

  auto in = inputs_for("bert_cls");
  torch::NoGradGuard no_grad;
  auto serving = PeftModel::load(load_model(fixture_dir("bert_cls")), dir_soft.path());
  auto soft_out = serving->forward(in).logits;
  auto& mod = *xpeft_of(*serving).module();
  const int64_t before = mod.materializations();
  activate_profile(*serving, dir_hard.path());
  EXPECT_EQ(mod.materializations(), before + 1);
  auto hard_out = serving->forward(in).logits;
  EXPECT_EQ(mod.materializations(), before + 1) << "activation should have materialised the adapters";
  auto reference = PeftModel::load(load_model(fixture_dir("bert_cls")), dir_hard.path());
  EXPECT_TRUE(torch::equal(hard_out, reference->forward(in).logits));
  EXPECT_GT(max_abs_diff(hard_out, soft_out), 1e-4);
  EXPECT_EQ(serving->method().config()["hard"], true);
  EXPECT_EQ(serving->method().config()["top_k"], 2);
  // And back.
  activate_profile(*serving, dir_soft.path());
  EXPECT_TRUE(torch::equal(serving->forward(in).logits, soft_out));

  // A profile of another bank is refused, and the model keeps its profile.
  EXPECT_TRUE(throws_error([&] { activate_profile(*serving, dir_other_bank.path()); }, ErrorKind::kInvalidArgument,
                           {"adapter_config.json", "\"bank_checksum\"", "this model's bank", "seed 0"}));
  EXPECT_TRUE(torch::equal(serving->forward(in).logits, soft_out));
  // So is one whose file does not hold what its config says.
  auto config = read_json(dir_hard.path() + "/adapter_config.json");
  config["top_k"] = 3;
  io::write_file_atomic(dir_hard.path() + "/adapter_config.json", config.dump());
  EXPECT_TRUE(throws_error([&] { activate_profile(*serving, dir_hard.path()); }, ErrorKind::kCorrupt, {"top_k is 3"}));
  EXPECT_TRUE(torch::equal(serving->forward(in).logits, soft_out));
  EXPECT_EQ(serving->method().config()["hard"], false);
}

// ---- banks ------------------------------------------------------------------------

TEST(XpeftBank, RandomAdaptersHaveTheDocumentedScale) {
  // One adapter's residual RMS ~ init_scale * RMS(h); the uniform average of N ~ init_scale / N.
  const double s = 0.5;
  const int64_t N = 4, d = 256, m = 64;
  auto bank = random_bank(1, N, d, m, "relu", s, 11);
  auto h = torch::randn({512, d});
  auto residual = [&](const at::Tensor& dw, const at::Tensor& uw) {
    return torch::matmul(torch::relu(torch::matmul(h, dw.t())), uw.t());
  };
  auto rms = [](const at::Tensor& t) { return t.pow(2).mean().sqrt().item<double>(); };
  for (int64_t i = 0; i < N; ++i) {
    const double ratio = rms(residual(bank.down_weight[0][i], bank.up_weight[0][i])) / rms(h);
    EXPECT_GT(ratio, 0.75 * s) << i;
    EXPECT_LT(ratio, 1.25 * s) << i;
  }
  const double avg = rms(residual(bank.down_weight[0].mean(0), bank.up_weight[0].mean(0))) / rms(h);
  EXPECT_GT(avg, 0.7 * s / N);
  EXPECT_LT(avg, 1.3 * s / N);
  EXPECT_TRUE(torch::equal(bank.down_bias, torch::zeros({1, N, m})));
  // Seeded and checksummed: same seed, same bank; another seed, another checksum.
  EXPECT_TRUE(torch::equal(random_bank(1, N, d, m, "relu", s, 11).up_weight, bank.up_weight));
  EXPECT_EQ(random_bank(1, N, d, m, "relu", s, 11).checksum, bank.checksum);
  EXPECT_NE(random_bank(1, N, d, m, "relu", s, 12).checksum, bank.checksum);
  EXPECT_NE(random_bank(1, N, d, m, "gelu", s, 11).checksum, bank.checksum);
}

TEST(XpeftBank, SavedBankGivesTheSameModelAsItsSeed) {
  auto seeded = PeftModel::create(load_model(fixture_dir("qwen2")),
                                  {{"peft_type", "XPEFT"}, {"num_adapters", 3}, {"bottleneck_size", 8}, {"bank_seed", 4}});
  randomize_masks(*seeded, 6);
  TempDir bank_dir, profile_dir;
  xpeft_of(*seeded).save_bank(bank_dir.path());
  auto loaded = load_bank(bank_dir.path());
  EXPECT_EQ(loaded.checksum, xpeft_of(*seeded).bank().checksum);
  EXPECT_TRUE(torch::equal(loaded.up_weight, xpeft_of(*seeded).bank().up_weight));
  // A profile on the saved bank, with the same masks.
  auto from_path = PeftModel::create(load_model(fixture_dir("qwen2")), {{"peft_type", "XPEFT"}, {"bank_path", bank_dir.path()}});
  {
    torch::NoGradGuard no_grad;
    xpeft_of(*from_path).module()->mask_A.copy_(xpeft_of(*seeded).module()->mask_A);
    xpeft_of(*from_path).module()->mask_B.copy_(xpeft_of(*seeded).module()->mask_B);
  }
  from_path->save(profile_dir.path());
  auto config = read_json(profile_dir.path() + "/adapter_config.json");
  EXPECT_EQ(config["bank_path"], bank_dir.path());
  EXPECT_FALSE(config.contains("bank_seed"));
  EXPECT_EQ(config["bank_checksum"], loaded.checksum);
  EXPECT_EQ(config["num_adapters"], 3);
  auto again = PeftModel::load(load_model(fixture_dir("qwen2")), profile_dir.path());
  torch::NoGradGuard no_grad;
  auto in = inputs_for("qwen2");
  auto expected = seeded->forward(in).logits;
  EXPECT_TRUE(torch::equal(from_path->forward(in).logits, expected));
  EXPECT_TRUE(torch::equal(again->forward(in).logits, expected));
}

TEST(XpeftBank, AProfileIsRefusedOnAnotherBank) {
  auto peft = PeftModel::create(load_model(fixture_dir("gpt2")),
                                {{"peft_type", "XPEFT"}, {"num_adapters", 4}, {"bottleneck_size", 8}});
  TempDir profile;
  peft->save(profile.path());
  auto config = read_json(profile.path() + "/adapter_config.json");
  EXPECT_EQ(config["bank_checksum"], xpeft_of(*peft).bank().checksum);
  // Another seed: same shapes, other adapters.
  config["bank_seed"] = 1;
  io::write_file_atomic(profile.path() + "/adapter_config.json", config.dump());
  EXPECT_TRUE(throws_error([&] { PeftModel::load(load_model(fixture_dir("gpt2")), profile.path()); },
                           ErrorKind::kInvalidArgument,
                           {"adapter_config.json", "\"bank_checksum\"", xpeft_of(*peft).bank().checksum, "seed 1",
                            "only works on its own bank"}));

  // A bank folder replaced after the profile was trained on it.
  TempDir bank_dir, profile2;
  xpeft_of(*peft).save_bank(bank_dir.path());
  auto on_path = PeftModel::create(load_model(fixture_dir("gpt2")), {{"peft_type", "XPEFT"}, {"bank_path", bank_dir.path()}});
  on_path->save(profile2.path());
  save_bank(random_bank(kLayers, 4, kHidden, 8, "relu", 1.0, 99), bank_dir.path());
  EXPECT_TRUE(throws_error([&] { PeftModel::load(load_model(fixture_dir("gpt2")), profile2.path()); },
                           ErrorKind::kInvalidArgument, {"\"bank_checksum\"", "bank folder"}));

  // A bank whose tensors no longer match its recorded checksum is corrupt.
  auto cfg = read_json(bank_dir.path() + "/bank_config.json");
  save_bank(random_bank(kLayers, 4, kHidden, 8, "relu", 1.0, 100), bank_dir.path());
  io::write_file_atomic(bank_dir.path() + "/bank_config.json", cfg.dump());
  EXPECT_TRUE(throws_error([&] { load_bank(bank_dir.path()); }, ErrorKind::kCorrupt,
                           {"bank.safetensors", "damaged or edited"}));

  // A bank for another model shape.
  save_bank(random_bank(3, 4, kHidden, 8, "relu", 1.0, 1), bank_dir.path());
  EXPECT_TRUE(throws_error(
      [&] { PeftModel::create(load_model(fixture_dir("gpt2")), {{"peft_type", "XPEFT"}, {"bank_path", bank_dir.path()}}); },
      ErrorKind::kInvalidArgument, {"L=3", "does not fit", "2 layers"}));
}

// BOTTLENECK adapters (pfeiffer, m = 8) saved from the base BERT model, with random weights.
std::vector<std::string> save_bottlenecks(const std::vector<std::string>& dirs, const std::string& arch) {
  std::vector<std::string> out;
  for (size_t i = 0; i < dirs.size(); ++i) {
    auto a = PeftModel::create(load_model(fixture_dir(arch)),
                               {{"peft_type", "BOTTLENECK"}, {"bottleneck_size", 8}, {"seed", static_cast<int>(i)}});
    auto gen = at::make_generator<at::CPUGeneratorImpl>(100 + i);
    torch::NoGradGuard no_grad;
    for (auto& [n, t] : a->trainable_parameters()) t.normal_(0.0, 0.2, gen);
    a->save(dirs[i]);
    out.push_back(dirs[i]);
  }
  return out;
}

TEST(XpeftBank, BuiltFromBottleneckAdaptersSelectsEachOfThem) {
  TempDir d0, d1, d2;
  const std::vector<std::string> dirs = {d0.path(), d1.path(), d2.path()};
  save_bottlenecks(dirs, "bert");  // a base model: saved names without "bert."
  auto peft = PeftModel::create(load_model(fixture_dir("bert")),
                                {{"peft_type", "XPEFT"}, {"bank_adapters", dirs}, {"hard", true}, {"top_k", 1}});
  const auto& bank = xpeft_of(*peft).bank();
  EXPECT_EQ(bank.num_adapters, 3);
  EXPECT_EQ(bank.bottleneck_size, 8);
  EXPECT_EQ(peft->method().config()["bank_adapters"], nlohmann::json(dirs));
  auto in = inputs_for("bert");
  for (int64_t i = 0; i < 3; ++i) {
    auto tensors = io::load_tensors(dirs[i] + "/adapter_model.safetensors");
    EXPECT_TRUE(torch::equal(bank.down_weight[1][i], tensors.at("base_model.model.encoder.layer.1.adapter_ffn.down.weight")));
    EXPECT_TRUE(torch::equal(bank.up_bias[0][i], tensors.at("base_model.model.encoder.layer.0.adapter_ffn.up.bias")));
    // A hard top-1 mask on adapter i in every layer is exactly BOTTLENECK adapter i.
    torch::NoGradGuard no_grad;
    auto& mod = *xpeft_of(*peft).module();
    mod.mask_A.zero_();
    mod.mask_B.zero_();
    mod.mask_A.select(1, i).fill_(1);
    mod.mask_B.select(1, i).fill_(1);
    auto single = PeftModel::load(load_model(fixture_dir("bert")), dirs[i]);
    auto got = peft->forward(in).last_hidden_state;
    EXPECT_LT(max_abs_diff(got, single->forward(in).last_hidden_state), 1e-5) << "adapter " << i;
    EXPECT_GT(max_abs_diff(got, load_model(fixture_dir("bert"))->forward(in).last_hidden_state), 1e-3);
  }
  // The same folders build the same bank for the task model (names with "bert.").
  auto cls = PeftModel::create(load_model(fixture_dir("bert_cls")), {{"peft_type", "XPEFT"}, {"bank_adapters", dirs}});
  EXPECT_EQ(xpeft_of(*cls).bank().checksum, bank.checksum);
}

TEST(XpeftBank, BottleneckListsAreChecked) {
  TempDir d0, d1, houlsby, lora;
  save_bottlenecks({d0.path()}, "llama");
  auto h = PeftModel::create(load_model(fixture_dir("llama")), {{"peft_type", "BOTTLENECK"}, {"placement", "houlsby"}, {"bottleneck_size", 8}});
  h->save(houlsby.path());
  auto other_m = PeftModel::create(load_model(fixture_dir("llama")), {{"peft_type", "BOTTLENECK"}, {"bottleneck_size", 4}});
  other_m->save(d1.path());
  PeftModel::create(load_model(fixture_dir("llama")), {{"peft_type", "LORA"}})->save(lora.path());
  auto make = [](const std::vector<std::string>& dirs, nlohmann::json extra = nlohmann::json::object()) {
    nlohmann::json c{{"peft_type", "XPEFT"}, {"bank_adapters", dirs}};
    c.update(extra);
    PeftModel::create(load_model(fixture_dir("llama")), c);
  };
  EXPECT_TRUE(throws_error([&] { make({d0.path(), houlsby.path()}); }, ErrorKind::kUnsupported,
                           {"bank_adapters[1]", "placement \"houlsby\""}));
  EXPECT_TRUE(throws_error([&] { make({d0.path(), d1.path()}); }, ErrorKind::kInvalidArgument,
                           {"down.weight", "[4, 64]", "[8, 64]"}));
  EXPECT_TRUE(throws_error([&] { make({lora.path()}); }, ErrorKind::kInvalidArgument,
                           {"bank_adapters[0]", "peft_type is \"LORA\""}));
  EXPECT_TRUE(throws_error([&] { make({d0.path()}, {{"num_adapters", 2}}); }, ErrorKind::kInvalidArgument,
                           {"\"num_adapters\" is 2"}));
  EXPECT_TRUE(throws_error([&] { make({d0.path()}, {{"bank_seed", 3}}); }, ErrorKind::kInvalidArgument,
                           {"\"bank_seed\"", "random bank"}));
  // Saved from gpt2: no tensor for llama's blocks.
  TempDir g;
  save_bottlenecks({g.path()}, "gpt2");
  EXPECT_TRUE(throws_error([&] { make({g.path()}); }, ErrorKind::kCorrupt,
                           {"missing tensor", "model.layers.0.adapter_ffn.down.weight"}));
}

// ---- config -----------------------------------------------------------------------

TEST(XpeftConfigErrors, NameTheField) {
  auto make = [](nlohmann::json extra) {
    nlohmann::json c{{"peft_type", "XPEFT"}, {"num_adapters", 4}, {"bottleneck_size", 8}};
    c.update(extra);
    PeftModel::create(load_model(fixture_dir("llama")), c);
  };
  EXPECT_TRUE(throws_error([&] { make({{"hard", true}}); }, ErrorKind::kInvalidArgument, {"\"top_k\"", "required"}));
  EXPECT_TRUE(throws_error([&] { make({{"hard", true}, {"top_k", 5}}); }, ErrorKind::kInvalidArgument,
                           {"\"top_k\" 5", "num_adapters 4"}));
  EXPECT_TRUE(throws_error([&] { make({{"hard", true}, {"top_k", 0}}); }, ErrorKind::kInvalidArgument,
                           {"\"top_k\"", "at least 1"}));
  EXPECT_TRUE(throws_error([&] { make({{"top_k", 2}}); }, ErrorKind::kInvalidArgument, {"\"top_k\"", "hard"}));
  EXPECT_TRUE(throws_error([&] { make({{"mask_type", "gumbel"}}); }, ErrorKind::kInvalidArgument,
                           {"\"mask_type\"", "gumbel", "sigmoid"}));
  EXPECT_TRUE(throws_error([&] { make({{"num_adapters", 0}}); }, ErrorKind::kInvalidArgument,
                           {"\"num_adapters\"", "positive"}));
  EXPECT_TRUE(throws_error([&] { make({{"bank_init_scale", -1}}); }, ErrorKind::kInvalidArgument,
                           {"\"bank_init_scale\""}));
  EXPECT_TRUE(throws_error([&] { make({{"activation", "swiglu"}}); }, ErrorKind::kUnsupported,
                           {"activation", "swiglu"}));
  EXPECT_TRUE(throws_error([&] { make({{"hard", true}, {"top_k", 1}, {"mask_dtype", "float16"}}); },
                           ErrorKind::kInvalidArgument, {"\"mask_dtype\"", "soft masks only"}));
  EXPECT_TRUE(throws_error([&] { make({{"bank_path", "/x"}, {"bank_adapters", {"/y"}}}); }, ErrorKind::kInvalidArgument,
                           {"\"bank_path\"", "bank_adapters"}));
  EXPECT_TRUE(throws_error([&] { make({{"placement", "houlsby"}}); }, ErrorKind::kInvalidArgument,
                           {"\"placement\"", "pfeiffer"}));
  EXPECT_TRUE(throws_error([&] { make({{"masks", 3}}); }, ErrorKind::kInvalidArgument,
                           {"unknown key", "\"masks\"", "top_k"}));
  EXPECT_TRUE(throws_error([&] { make({{"bank_path", "/nonexistent/bank"}}); }, ErrorKind::kNotFound,
                           {"/nonexistent/bank/bank_config.json"}));
  // X-PEFT and another adapter at the same slot.
  auto peft = PeftModel::create(load_model(fixture_dir("llama")), {{"peft_type", "XPEFT"}, {"num_adapters", 2}, {"bottleneck_size", 4}});
  EXPECT_TRUE(throws_error([&] { xpeft_of(*peft).attach(peft->model()); }, ErrorKind::kInvalidArgument,
                           {"one method per model"}));
}

}  // namespace
}  // namespace mixpeft::peft::xpeft
