// `mixpeft convert` through the built binary: the stored dtype changes, every
// weight is the original rounded to that dtype, tokenizer files travel along,
// and a bad request changes nothing.
#include <filesystem>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "cli_test_util.h"
#include "core/test_util.h"
#include "mixpeft/model.h"
#include "mixpeft/safetensors.h"
#include "models/test_util.h"

namespace {

namespace fs = std::filesystem;
using mixpeft::testing::CliRun;
using mixpeft::testing::has;
using mixpeft::testing::run_cli;

void expect_stored(const std::string& dir, mixpeft::io::DType dtype) {
  auto file = mixpeft::io::SafetensorsFile::open(dir + "/model.safetensors");
  ASSERT_FALSE(file->tensors().empty());
  for (const auto& t : file->tensors()) EXPECT_EQ(t.dtype, dtype) << t.name;
}

TEST(ConvertCli, Bfloat16RoundsEveryWeightAndRoundTrips) {
  mixpeft::testing::TempDir tmp;
  const std::string src = mixpeft::testing::fixture_dir("llama");
  const std::string bf16 = tmp.path() + "/bf16", back = tmp.path() + "/f32";
  CliRun r = run_cli("--threads 1 convert --model " + src + " --out " + bf16);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(has(r.out, "to bfloat16: " + bf16)) << r.out;
  expect_stored(bf16, mixpeft::io::DType::kBF16);
  EXPECT_EQ(mixpeft::load_model(bf16)->config()["torch_dtype"], "bfloat16");

  auto original = mixpeft::load_model(src);
  auto converted = mixpeft::load_model(bf16);  // computes in float32
  auto want = original->named_parameters();
  auto got = converted->named_parameters();
  ASSERT_EQ(want.size(), got.size());
  bool some_rounded = false;
  for (const auto& p : want) {
    const at::Tensor rounded = p.value().to(torch::kBFloat16).to(torch::kFloat);
    EXPECT_TRUE(torch::equal(got[p.key()], rounded)) << p.key();
    some_rounded = some_rounded || !torch::equal(rounded, p.value());
  }
  EXPECT_TRUE(some_rounded) << "the fixture's float32 weights should not all be bfloat16 already";

  r = run_cli("--threads 1 convert --model " + bf16 + " --out " + back + " --dtype float32");
  ASSERT_EQ(r.code, 0) << r.err;
  expect_stored(back, mixpeft::io::DType::kF32);
  auto again = mixpeft::load_model(back)->named_parameters();
  for (const auto& p : got) EXPECT_TRUE(torch::equal(again[p.key()], p.value())) << p.key();
}

TEST(ConvertCli, BadRequestsChangeNothing) {
  mixpeft::testing::TempDir tmp;
  const std::string src = mixpeft::testing::fixture_dir("llama");
  CliRun same = run_cli("--threads 1 convert --model " + src + " --out " + src + "/");
  EXPECT_EQ(same.code, 1);
  EXPECT_TRUE(has(same.err, "--out must differ from --model")) << same.err;
  CliRun missing = run_cli("--threads 1 convert --model " + tmp.path() + "/nope --out " + tmp.path() + "/out");
  EXPECT_EQ(missing.code, 1);
  EXPECT_TRUE(has(missing.err, tmp.path() + "/nope")) << missing.err;
  EXPECT_FALSE(fs::exists(tmp.path() + "/out"));
  CliRun dtype = run_cli("--threads 1 convert --model " + src + " --out " + tmp.path() + "/out --dtype float16");
  EXPECT_EQ(dtype.code, 2);
  EXPECT_FALSE(fs::exists(tmp.path() + "/out"));
}

}  // namespace
