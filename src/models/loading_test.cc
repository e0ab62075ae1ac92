// Strict loading, saving, dtypes and the KV cache.
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "mixpeft/error.h"
#include "mixpeft/model.h"
#include "mixpeft/safetensors.h"
#include "models/test_util.h"

namespace mixpeft {
namespace {

namespace fs = std::filesystem;
using testing::fixture_dir;
using testing::TempDir;
using testing::throws_error;

// Copies a fixture's config and weights into `dir`, letting `edit` change the tensors.
void copy_fixture(const std::string& arch, const std::string& dir,
                  const std::function<void(std::map<std::string, at::Tensor>&)>& edit) {
  fs::copy_file(fixture_dir(arch) + "/config.json", dir + "/config.json");
  auto tensors = io::load_tensors(fixture_dir(arch) + "/model.safetensors");
  edit(tensors);
  std::vector<std::pair<std::string, at::Tensor>> list(tensors.begin(), tensors.end());
  io::save_tensors(dir + "/model.safetensors", list);
}

TEST(Loading, MissingTensorIsNamedWithItsShape) {
  TempDir tmp;
  copy_fixture("llama", tmp.path(), [](auto& t) { t.erase("model.layers.1.mlp.up_proj.weight"); });
  EXPECT_TRUE(throws_error([&] { load_model(tmp.path()); }, ErrorKind::kCorrupt,
                           {"missing", "model.layers.1.mlp.up_proj.weight", "[128, 64]"}));
}

TEST(Loading, UnexpectedTensorIsNamed) {
  TempDir tmp;
  copy_fixture("bert", tmp.path(), [](auto& t) { t["encoder.layer.9.extra.weight"] = torch::zeros({2}); });
  EXPECT_TRUE(throws_error([&] { load_model(tmp.path()); }, ErrorKind::kCorrupt,
                           {"unexpected", "encoder.layer.9.extra.weight"}));
}

TEST(Loading, WrongShapeNamesBothShapes) {
  TempDir tmp;
  copy_fixture("gpt2", tmp.path(), [](auto& t) { t["transformer.h.0.attn.c_attn.weight"] = torch::zeros({192, 64}); });
  EXPECT_TRUE(throws_error([&] { load_model(tmp.path()); }, ErrorKind::kCorrupt,
                           {"transformer.h.0.attn.c_attn.weight", "[192, 64]", "[64, 192]"}));
}

TEST(Loading, UnknownModelTypeListsSupportedOnes) {
  TempDir tmp;
  copy_fixture("llama", tmp.path(), [](auto&) {});
  auto config = nlohmann::json::parse(io::read_file(tmp.path() + "/config.json"));
  config["model_type"] = "mamba";
  io::write_file_atomic(tmp.path() + "/config.json", config.dump());
  EXPECT_TRUE(throws_error([&] { load_model(tmp.path()); }, ErrorKind::kUnsupported,
                           {"mamba", "gpt2", "bert", "roberta", "llama", "qwen2"}));
}

TEST(Loading, BadConfigsNameFileAndField) {
  TempDir tmp;
  copy_fixture("llama", tmp.path(), [](auto&) {});
  const std::string path = tmp.path() + "/config.json";
  auto config = nlohmann::json::parse(io::read_file(path));
  io::write_file_atomic(path, "{\"model_type\": \"llama\",");
  EXPECT_TRUE(throws_error([&] { load_model(tmp.path()); }, ErrorKind::kCorrupt, {path, "malformed JSON"}));
  config["hidden_size"] = "sixty-four";
  io::write_file_atomic(path, config.dump());
  EXPECT_TRUE(throws_error([&] { load_model(tmp.path()); }, ErrorKind::kCorrupt, {path, "hidden_size", "integer"}));
  config.erase("hidden_size");
  io::write_file_atomic(path, config.dump());
  EXPECT_TRUE(throws_error([&] { load_model(tmp.path()); }, ErrorKind::kCorrupt, {"hidden_size", "missing"}));
  fs::remove(path);
  EXPECT_TRUE(throws_error([&] { load_model(tmp.path()); }, ErrorKind::kNotFound, {"config.json"}));
  EXPECT_TRUE(throws_error([&] { load_model(tmp.path() + "/nope"); }, ErrorKind::kNotFound, {"nope"}));
}

TEST(Loading, UnknownArchitectureNamesTheSupportedOnes) {
  EXPECT_TRUE(throws_error(
      [&] { LoadOptions o; o.architecture = "LlamaForTokenClassification"; load_model(fixture_dir("llama"), o); },
      ErrorKind::kUnsupported, {"LlamaForTokenClassification", "LlamaForCausalLM"}));
}

TEST(Loading, FreshHeadOnBaseCheckpointNeedsExplicitPermission) {
  LoadOptions o;
  o.architecture = "BertForSequenceClassification";
  o.num_labels = 5;
  EXPECT_TRUE(throws_error([&] { load_model(fixture_dir("bert"), o); }, ErrorKind::kCorrupt, {"classifier.weight"}));
  o.allow_missing = {"classifier\\..*"};
  auto model = load_model(fixture_dir("bert"), o);
  ModelInputs in;
  in.input_ids = torch::randint(0, 256, {3, 7}, torch::kLong);
  EXPECT_EQ(model->forward(in).logits.sizes(), (std::vector<int64_t>{3, 5}));
}

class RoundTrip : public ::testing::TestWithParam<std::string> {};

// load -> save -> load: identical tensors, and the saved file has exactly the
// names, shapes and dtypes of the HF original, so HF loads it the same way.
TEST_P(RoundTrip, SaveGivesTheHFLayoutBack) {
  const std::string arch = GetParam();
  TempDir tmp;
  auto model = load_model(fixture_dir(arch));
  save_model(*model, tmp.path());
  auto original = io::SafetensorsFile::open(fixture_dir(arch) + "/model.safetensors");
  auto saved = io::SafetensorsFile::open(tmp.path() + "/model.safetensors");
  ASSERT_EQ(original->tensors().size(), saved->tensors().size());
  for (const auto& info : original->tensors()) {
    const auto* other = saved->find(info.name);
    ASSERT_NE(other, nullptr) << info.name;
    EXPECT_EQ(other->shape, info.shape) << info.name;
    EXPECT_EQ(other->dtype, info.dtype) << info.name;
    EXPECT_TRUE(torch::equal(io::read_tensor(*saved, *other), io::read_tensor(*original, info))) << info.name;
  }
  auto config = nlohmann::json::parse(io::read_file(tmp.path() + "/config.json"));
  auto hf_config = nlohmann::json::parse(io::read_file(fixture_dir(arch) + "/config.json"));
  EXPECT_EQ(config["architectures"], hf_config["architectures"]);
  EXPECT_EQ(config["model_type"], hf_config["model_type"]);
  auto again = load_model(tmp.path());
  auto a = model->named_parameters(), b = again->named_parameters();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i].value(), b[i].value())) << a[i].key();
}

INSTANTIATE_TEST_SUITE_P(AllArchitectures, RoundTrip,
                         ::testing::Values("gpt2", "bert", "bert_cls", "roberta_cls", "llama", "qwen2"));

TEST(Loading, HalfPrecisionCheckpointsLoadAndBF16Computes) {
  TempDir tmp;
  copy_fixture("llama", tmp.path(), [](auto& t) {
    for (auto& kv : t) kv.second = kv.second.to(torch::kBFloat16);
  });
  auto f32 = load_model(tmp.path());
  EXPECT_EQ(f32->named_parameters()[0].value().scalar_type(), torch::kFloat);
  LoadOptions o;
  o.dtype = torch::kBFloat16;
  auto bf16 = load_model(fixture_dir("llama"), o);
  EXPECT_EQ(bf16->named_parameters()[0].value().scalar_type(), torch::kBFloat16);
  auto ref = testing::reference("llama");
  ModelInputs in;
  in.input_ids = ref.at("input_ids");
  in.attention_mask = ref.at("attention_mask");
  torch::NoGradGuard no_grad;
  auto out = bf16->forward(in);
  EXPECT_EQ(out.logits.scalar_type(), torch::kBFloat16);
  // bf16 keeps ~3 significant digits: the logits stay close to HF's fp32 ones.
  EXPECT_LT(testing::max_abs_diff_at(out.logits, ref.at("logits"), in.attention_mask), 0.1);
}

class CacheTest : public ::testing::TestWithParam<std::string> {};

// Decoding token by token with the KV cache gives the full forward's logits.
TEST_P(CacheTest, IncrementalEqualsFullForward) {
  auto model = load_model(fixture_dir(GetParam()));
  torch::NoGradGuard no_grad;
  auto ids = torch::randint(3, 256, {2, 12}, torch::kLong);
  ModelInputs full;
  full.input_ids = ids;
  auto expected = model->forward(full).logits;
  KVCache cache;
  ModelInputs first;
  first.input_ids = ids.narrow(1, 0, 5);
  first.cache = &cache;
  std::vector<at::Tensor> pieces{model->forward(first).logits};
  for (int64_t t = 5; t < 12; ++t) {
    ModelInputs step;
    step.input_ids = ids.narrow(1, t, 1);
    step.cache = &cache;
    pieces.push_back(model->forward(step).logits);
  }
  EXPECT_EQ(cache.length(), 12);
  EXPECT_LT(testing::max_abs_diff(torch::cat(pieces, 1), expected), 1e-5);
}

INSTANTIATE_TEST_SUITE_P(CausalLMs, CacheTest, ::testing::Values("gpt2", "llama", "qwen2"));

}  // namespace
}  // namespace mixpeft
