// Comparing a model's outputs with a reference dump made by Hugging Face
// (the layout of tests/data/fixtures/<arch>/reference.safetensors).
#pragma once

#include <map>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

namespace mixpeft {

class Model;

struct ReferenceCheck {
  std::string name;      // e.g. "hidden_states.1", "logits"
  double max_abs_error;  // over real (attention_mask == 1) positions
  int64_t values;        // how many values were compared
};

// Runs the reference's input_ids / attention_mask through `model` and
// compares hidden_states.<i>, last_hidden_state, pooler_output and the
// logits stored under `logits_key` (and loss_base for causal LMs when
// `logits_key` is "logits"). Entries the reference lacks are skipped; a
// reference without input_ids is kInvalidArgument.
std::vector<ReferenceCheck> check_against_reference(Model& model, const std::map<std::string, at::Tensor>& reference,
                                                    const std::string& logits_key = "logits");

// HF's causal LM loss: logits[:, :-1] against labels[:, 1:], ignoring -100.
at::Tensor causal_lm_loss(const at::Tensor& logits, const at::Tensor& labels);

}  // namespace mixpeft
