// The torch bridge: dtype mapping, save/load round trips (every dtype, odd
// layouts), the HF fixtures through load -> save -> load, sharded folders.
#include "mixpeft/checkpoint.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "io/test_util.h"

namespace mixpeft::io {
namespace {

using testing::make_file;
using testing::TempDir;
using testing::throws_error_starting_with;

const DType kAllDTypes[] = {DType::kF64, DType::kF32, DType::kF16, DType::kBF16, DType::kI64,
                            DType::kI32, DType::kI16, DType::kI8,  DType::kU8,   DType::kBool};

TEST(Checkpoint, ScalarTypeMapping) {
  for (DType d : kAllDTypes) {
    c10::ScalarType s = to_scalar_type(d);
    EXPECT_EQ(from_scalar_type(s, "ctx"), d) << dtype_name(d);
    EXPECT_EQ(c10::elementSize(s), dtype_size(d)) << dtype_name(d);
  }
  EXPECT_EQ(to_scalar_type(DType::kBF16), c10::kBFloat16);
  EXPECT_EQ(to_scalar_type(DType::kI8), c10::kChar);
  EXPECT_EQ(to_scalar_type(DType::kU8), c10::kByte);
  EXPECT_TRUE(throws_error_starting_with([] { from_scalar_type(c10::kComplexFloat, "out.safetensors: tensor \"z\""); },
                                         ErrorKind::kUnsupported, "out.safetensors: tensor \"z\": ", {"ComplexFloat"}));
}

// A tensor of `dtype` with varied values.
torch::Tensor sample(c10::ScalarType dtype, std::vector<int64_t> shape, int seed) {
  torch::manual_seed(seed);
  if (dtype == c10::kBool) return torch::rand(shape) > 0.5;
  if (c10::isFloatingType(dtype)) return torch::randn(shape).to(dtype);
  int64_t hi = dtype == c10::kByte ? 256 : 128;
  int64_t lo = dtype == c10::kByte ? 0 : -128;
  return torch::randint(lo, hi, shape, torch::TensorOptions().dtype(dtype));
}

TEST(Checkpoint, SaveLoadEveryDtype) {
  TempDir tmp;
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  int seed = 0;
  for (DType d : kAllDTypes) {
    c10::ScalarType s = to_scalar_type(d);
    tensors.emplace_back(cat("w.", dtype_name(d)), sample(s, {3, 4, 5}, ++seed));
    tensors.emplace_back(cat("scalar.", dtype_name(d)), sample(s, {}, ++seed));
    tensors.emplace_back(cat("empty.", dtype_name(d)), sample(s, {2, 0}, ++seed));
  }
  // Layouts that must be made contiguous first.
  torch::Tensor base = torch::arange(24, torch::kFloat).reshape({4, 6});
  tensors.emplace_back("transposed", base.t());
  tensors.emplace_back("sliced", base.index({torch::indexing::Slice(1, 3), torch::indexing::Slice(2, 5)}));
  tensors.emplace_back("strided", base.index({torch::indexing::Slice(), torch::indexing::Slice(0, 6, 2)}));
  tensors.emplace_back("expanded", torch::tensor({1.5, 2.5}).expand({3, 2}));
  tensors.emplace_back("sparse", torch::eye(3).to_sparse());
  tensors.emplace_back("negview", torch::_neg_view(base));
  tensors.emplace_back("grad", torch::ones({2}, torch::requires_grad()));

  const std::string path = tmp.file("all.safetensors");
  save_tensors(path, tensors, {{"format", "pt"}});
  auto loaded = load_tensors(path);
  ASSERT_EQ(loaded.size(), tensors.size());
  for (const auto& [name, want] : tensors) {
    SCOPED_TRACE(name);
    const torch::Tensor& got = loaded.at(name);
    torch::Tensor expect = want.detach();
    if (expect.is_sparse()) expect = expect.to_dense();
    expect = expect.resolve_neg();
    EXPECT_EQ(got.scalar_type(), expect.scalar_type());
    EXPECT_EQ(got.sizes(), expect.sizes());
    EXPECT_TRUE(got.is_contiguous());
    EXPECT_FALSE(got.requires_grad());
    EXPECT_TRUE(torch::equal(got, expect));
  }
  EXPECT_EQ(loaded.at("negview").index({1, 2}).item<float>(), -8.0f);
  EXPECT_EQ(loaded.at("transposed").index({5, 3}).item<float>(), 23.0f);
  EXPECT_EQ(SafetensorsFile::open(path)->metadata().at("format"), "pt");
  // Header order is the given order.
  EXPECT_EQ(SafetensorsFile::open(path)->tensors().front().name, "w.F64");
}

TEST(Checkpoint, SaveRejectsWhatSafetensorsCannotHold) {
  TempDir tmp;
  const std::string path = tmp.file("x.safetensors");
  EXPECT_TRUE(throws_error_starting_with([&] { save_tensors(path, {{"z", torch::zeros({2}, torch::kComplexFloat)}}); },
                                         ErrorKind::kUnsupported, path + ": tensor \"z\": "));
  EXPECT_TRUE(throws_error_starting_with([&] { save_tensors(path, {{"u", torch::Tensor()}}); },
                                         ErrorKind::kInvalidArgument, path + ": tensor \"u\""));
  EXPECT_TRUE(throws_error_starting_with(
      [&] { save_tensors(path, {{"a", torch::zeros({1})}, {"a", torch::zeros({1})}}); }, ErrorKind::kInvalidArgument,
      path + ": tensor \"a\"", {"twice"}));
}

TEST(Checkpoint, BoolBytesMustBeZeroOrOne) {
  auto ok = SafetensorsFile::from_bytes(make_file(R"({"b":{"dtype":"BOOL","shape":[2],"data_offsets":[0,2]}})",
                                                  std::string("\x01\x00", 2)), "ok.safetensors");
  torch::Tensor b = read_tensor(*ok, ok->get("b"));
  EXPECT_TRUE(b.index({0}).item<bool>());
  EXPECT_FALSE(b.index({1}).item<bool>());
  auto bad = SafetensorsFile::from_bytes(make_file(R"({"b":{"dtype":"BOOL","shape":[2],"data_offsets":[0,2]}})",
                                                   "\x01\x02"), "bad.safetensors");
  EXPECT_TRUE(throws_error_starting_with([&] { read_tensor(*bad, bad->get("b")); }, ErrorKind::kCorrupt,
                                         "bad.safetensors: tensor \"b\": BOOL element 1 is 2"));
}

TEST(Checkpoint, ReadTensorChecksForgedInfo) {
  auto f = SafetensorsFile::from_bytes(make_file(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
                                                 std::string(8, '\0')), "f.safetensors");
  TensorInfo forged = f->get("w");
  forged.shape = {4};
  EXPECT_TRUE(throws_error_starting_with(
      [&] { read_tensor(*f, forged); }, ErrorKind::kInvalidArgument,
      "f.safetensors: tensor \"w\": data_offsets hold 8 bytes but F32 [4] needs 16"));
}

TEST(Checkpoint, ShardedFolder) {
  TempDir tmp;
  save_tensors(tmp.file("s1.safetensors"), {{"a", torch::arange(3)}, {"b", torch::ones({2, 2})}});
  save_tensors(tmp.file("s2.safetensors"), {{"c", torch::full({1}, 7.0, torch::kBFloat16)}});
  write_file_atomic(tmp.file("model.safetensors.index.json"),
                    R"({"metadata": {}, "weight_map": {"a": "s1.safetensors", "b": "s1.safetensors",
                        "c": "s2.safetensors"}})");
  auto all = load_tensors(tmp.path());
  ASSERT_EQ(all.size(), 3u);
  EXPECT_TRUE(torch::equal(all.at("a"), torch::arange(3)));
  EXPECT_EQ(all.at("c").scalar_type(), c10::kBFloat16);
  EXPECT_EQ(all.at("c").item<float>(), 7.0f);
  EXPECT_TRUE(throws_error_starting_with([&] { load_tensors(tmp.file("none")); }, ErrorKind::kNotFound,
                                         tmp.file("none")));
}

class Fixture : public ::testing::TestWithParam<std::string> {};

// load -> save -> load gives the same names, dtypes, shapes and values, and
// the data bytes of the re-saved file equal the original's.
TEST_P(Fixture, LoadSaveLoadRoundTrip) {
  const std::string dir = std::string(MIXPEFT_TEST_DATA) + "/fixtures/" + GetParam();
  TempDir tmp;
  for (const char* file : {"model.safetensors", "reference.safetensors"}) {
    SCOPED_TRACE(file);
    const std::string path = dir + "/" + file;
    auto original = SafetensorsFile::open(path);
    auto first = load_tensors(path);
    ASSERT_EQ(first.size(), original->tensors().size());
    std::vector<std::pair<std::string, torch::Tensor>> ordered;
    for (const TensorInfo& t : original->tensors()) ordered.emplace_back(t.name, first.at(t.name));
    const std::string copy = tmp.file(file);
    save_tensors(copy, ordered, original->metadata());

    auto second = load_tensors(copy);
    ASSERT_EQ(second.size(), first.size());
    for (const auto& [name, a] : first) {
      ASSERT_EQ(second.count(name), 1u) << name;
      const torch::Tensor& b = second.at(name);
      EXPECT_EQ(a.scalar_type(), b.scalar_type()) << name;
      EXPECT_EQ(a.sizes(), b.sizes()) << name;
      EXPECT_TRUE(torch::equal(a, b)) << name;
    }
    auto reread = SafetensorsFile::open(copy);
    EXPECT_EQ(reread->metadata(), original->metadata());
    for (const TensorInfo& t : original->tensors()) {
      const TensorInfo& u = reread->get(t.name);
      ASSERT_EQ(u.end - u.begin, t.end - t.begin) << t.name;
      EXPECT_EQ(std::memcmp(reread->data(u), original->data(t), t.end - t.begin), 0) << t.name;
    }
  }
  // Values read correctly, not just copied: README says the batch rows hold
  // 16 and 9 real tokens, and norm weights / biases are ~1 / ~0 + 0.1 N(0,1).
  auto ref = load_tensors(dir + "/reference.safetensors");
  torch::Tensor mask = ref.at("attention_mask");
  EXPECT_EQ(mask.scalar_type(), c10::kLong);
  EXPECT_EQ(mask.sum(1).index({0}).item<int64_t>(), 16);
  EXPECT_EQ(mask.sum(1).index({1}).item<int64_t>(), 9);
  auto model = load_tensors(dir);  // the folder: picks model.safetensors
  int norms = 0;
  for (const auto& [name, t] : model) {
    if (name.find("LayerNorm.weight") != std::string::npos || name.find("ln_f.weight") != std::string::npos ||
        name.find("norm.weight") != std::string::npos) {
      EXPECT_NEAR(t.mean().item<float>(), 1.0f, 0.1f) << name;
      ++norms;
    }
  }
  EXPECT_GE(norms, 1);
}

INSTANTIATE_TEST_SUITE_P(HF, Fixture,
                         ::testing::Values("gpt2", "bert", "bert_cls", "roberta_cls", "llama", "qwen2"));

}  // namespace
}  // namespace mixpeft::io
