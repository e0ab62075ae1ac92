// Every architecture against Hugging Face's own outputs (tests/data/fixtures,
// made with transformers 4.40.2; see its README.txt). Tolerance 1e-4 max
// absolute error at real (unpadded) tokens.
#include <algorithm>
#include <iostream>

#include <gtest/gtest.h>

#include "mixpeft/model.h"
#include "models/test_util.h"

namespace mixpeft {
namespace {

using testing::fixture_dir;
using testing::max_abs_diff;
using testing::max_abs_diff_at;

constexpr double kTol = 1e-4;

class FixtureTest : public ::testing::TestWithParam<std::string> {};

TEST_P(FixtureTest, MatchesHuggingFace) {
  const std::string arch = GetParam();
  auto model = load_model(fixture_dir(arch));
  auto ref = testing::reference(arch);
  const auto& mask = ref.at("attention_mask");

  ModelInputs in;
  in.input_ids = ref.at("input_ids");
  in.attention_mask = mask;
  in.output_hidden_states = true;
  torch::NoGradGuard no_grad;
  ModelOutputs out = model->forward(in);

  double worst = 0;  // reported, so a drift shows before it fails
  auto track = [&](double d) { worst = std::max(worst, d); return d; };
  int checked = 0;
  for (size_t i = 0;; ++i) {
    auto it = ref.find("hidden_states." + std::to_string(i));
    if (it == ref.end()) {
      EXPECT_EQ(out.hidden_states.size(), i) << "number of hidden states";
      break;
    }
    ASSERT_LT(i, out.hidden_states.size());
    EXPECT_LT(track(max_abs_diff_at(out.hidden_states[i], it->second, mask)), kTol) << "hidden_states." << i;
    ++checked;
  }
  EXPECT_GE(checked, 3);
  EXPECT_LT(track(max_abs_diff_at(out.last_hidden_state, ref.at("last_hidden_state"), mask)), kTol);
  if (ref.count("pooler_output")) {
    ASSERT_TRUE(out.pooler_output.defined());
    EXPECT_LT(track(max_abs_diff(out.pooler_output, ref.at("pooler_output"))), kTol);
  }
  if (ref.count("logits")) {
    const auto& logits = ref.at("logits");
    ASSERT_EQ(out.logits.sizes(), logits.sizes());
    if (logits.dim() == 3) {
      EXPECT_LT(track(max_abs_diff_at(out.logits, logits, mask)), kTol);
    } else {
      EXPECT_LT(track(max_abs_diff(out.logits, logits)), kTol);
    }
  }
  if (ref.count("loss_base")) {
    // HF's causal LM loss: logits[:, :-1] against labels[:, 1:], ignoring -100.
    auto labels = ref.at("labels");
    auto V = out.logits.size(-1);
    auto loss = torch::nn::functional::cross_entropy(
        out.logits.narrow(1, 0, labels.size(1) - 1).reshape({-1, V}),
        labels.narrow(1, 1, labels.size(1) - 1).reshape({-1}),
        torch::nn::functional::CrossEntropyFuncOptions().ignore_index(-100));
    EXPECT_NEAR(loss.item<double>(), ref.at("loss_base").item<double>(), kTol);
  }
  std::cout << "[ max |mixpeft - HF| ] " << arch << ": " << worst << "\n";
  RecordProperty("max_abs_error", std::to_string(worst));
}

INSTANTIATE_TEST_SUITE_P(AllArchitectures, FixtureTest,
                         ::testing::Values("gpt2", "bert", "bert_cls", "roberta_cls", "llama", "qwen2"));

}  // namespace
}  // namespace mixpeft
