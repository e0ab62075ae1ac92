// Every architecture against Hugging Face's own outputs (tests/data/fixtures,
// made with transformers 4.40.2; see its README.txt), at real (unpadded)
// tokens. With ATen's matrix products (MIXPEFT_GEMM=aten, which ctest runs as
// models_fixture_bit_exact) the outputs are HF's to the bit; with oneDNN's
// (the default where LibTorch brings it, src/core/gemm.h) products sum in
// another order, and the outputs may differ by float rounding: at most 1e-5
// (about 3e-6 seen).
#include <algorithm>
#include <iostream>
#include <set>

#include <gtest/gtest.h>

#include "core/gemm.h"
#include "mixpeft/model.h"
#include "mixpeft/reference.h"
#include "models/test_util.h"

namespace mixpeft {
namespace {

// 0 (bit for bit) with ATen's GEMM, rounding with oneDNN's.
double tolerance() { return onednn_gemm_available() ? 1e-5 : 0.0; }

class FixtureTest : public ::testing::TestWithParam<std::string> {};

TEST_P(FixtureTest, MatchesHuggingFace) {
  const std::string arch = GetParam();
  auto model = load_model(testing::fixture_dir(arch));
  auto ref = testing::reference(arch);
  auto rows = check_against_reference(*model, ref);

  // Every output the reference holds was compared.
  std::set<std::string> compared;
  double worst = 0;  // reported, so a drift shows before it fails
  for (const auto& r : rows) {
    EXPECT_LE(r.max_abs_error, tolerance()) << arch << " " << r.name << " (GEMM: " << cpu_gemm_backend() << ")";
    EXPECT_GT(r.values, 0) << r.name;
    compared.insert(r.name);
    worst = std::max(worst, r.max_abs_error);
  }
  for (const auto& [name, t] : ref) {
    const bool output = name.rfind("hidden_states.", 0) == 0 || name == "last_hidden_state" ||
                        name == "pooler_output" || name == "logits" || name == "loss_base";
    if (output) {
      EXPECT_TRUE(compared.count(name)) << name << " was not compared";
    }
  }
  EXPECT_GE(compared.size(), 4u);
  std::cout << "[ max |mixpeft - HF| ] " << arch << ": " << worst << " over " << rows.size() << " outputs\n";
  RecordProperty("max_abs_error", std::to_string(worst));
}

INSTANTIATE_TEST_SUITE_P(AllArchitectures, FixtureTest,
                         ::testing::Values("gpt2", "bert", "bert_cls", "roberta_cls", "llama", "qwen2"));

// logits_rows: the LM head on some positions only gives those positions'
// logits (the same products on fewer rows, so within rounding), in the
// order asked; a position outside [0, B T) is refused, naming the range.
class LogitsRowsTest : public ::testing::TestWithParam<std::string> {};

TEST_P(LogitsRowsTest, TheLmHeadOnChosenPositionsGivesTheirLogits) {
  auto model = load_model(testing::fixture_dir(GetParam()));
  torch::NoGradGuard no_grad;
  ModelInputs in = testing::inputs_for(GetParam());
  const at::Tensor full = model->forward(in).logits;
  const int64_t B = full.size(0), T = full.size(1), V = full.size(2);
  in.logits_rows = torch::tensor({T - 1, int64_t{0}, B * T - 1, T}, torch::kLong);
  const at::Tensor part = model->forward(in).logits;
  ASSERT_EQ(part.sizes().vec(), (std::vector<int64_t>{4, V}));
  const at::Tensor want = full.reshape({B * T, V}).index_select(0, in.logits_rows);
  EXPECT_LE((part - want).abs().max().item<double>(), 1e-5);
  EXPECT_GT(want.abs().max().item<double>(), 0.0);
  in.logits_rows = torch::empty({0}, torch::kLong);
  EXPECT_EQ(model->forward(in).logits.sizes().vec(), (std::vector<int64_t>{0, V}));
  in.logits_rows = torch::tensor({B * T}, torch::kLong);
  EXPECT_TRUE(testing::throws_error([&] { model->forward(in); }, ErrorKind::kInvalidArgument,
                                    {"logits_rows", "outside [0, " + std::to_string(B * T) + ")"}));
}

INSTANTIATE_TEST_SUITE_P(CausalLms, LogitsRowsTest, ::testing::Values("gpt2", "llama", "qwen2"));

}  // namespace
}  // namespace mixpeft
