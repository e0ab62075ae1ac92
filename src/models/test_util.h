// Helpers shared by the tests that run models (models, generate, peft,
// conformance): fixtures, their reference dumps and inputs, comparisons.
// TempDir and the error assertions come from core/test_util.h.
#pragma once

#include <map>
#include <string>

#include <torch/torch.h>

#include "core/test_util.h"
#include "mixpeft/checkpoint.h"
#include "mixpeft/model.h"

namespace mixpeft::testing {

inline std::string fixture_dir(const std::string& arch) {
  return std::string(MIXPEFT_TEST_DATA) + "/fixtures/" + arch;
}

inline std::map<std::string, at::Tensor> reference(const std::string& arch) {
  return io::load_tensors(fixture_dir(arch) + "/reference.safetensors");
}

// The fixture's reference batch: input_ids and attention_mask from reference().
inline ModelInputs inputs_for(const std::string& arch) {
  auto ref = reference(arch);
  ModelInputs in;
  in.input_ids = ref.at("input_ids");
  in.attention_mask = ref.at("attention_mask");
  return in;
}

// The output to compare: the logits where the model has a head, else the
// last hidden state (a bare encoder).
inline at::Tensor main_output(const ModelOutputs& out) {
  return out.logits.defined() ? out.logits : out.last_hidden_state;
}

// Max |a - b| over positions where mask [B, T] is 1 (a, b: [B, T, ...]).
inline double max_abs_diff_at(const at::Tensor& a, const at::Tensor& b, const at::Tensor& mask) {
  auto keep = mask.to(torch::kBool);
  return (a.to(torch::kFloat).index({keep}) - b.to(torch::kFloat).index({keep})).abs().max().item<double>();
}

inline double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(torch::kFloat) - b.to(torch::kFloat)).abs().max().item<double>();
}

}  // namespace mixpeft::testing
