// Pieces shared by the trainer and evaluation (private to src/train).
#pragma once

#include <cstdint>

#include <ATen/core/Tensor.h>

#include "mixpeft/data.h"
#include "mixpeft/model.h"
#include "mixpeft/nn.h"

namespace mixpeft::train {

// A data::Batch as tensors on `device`.
struct TensorBatch {
  ModelInputs inputs;
  at::Tensor labels;   // classification [B] / causal_lm [B, T] int64; undefined for regression
  at::Tensor targets;  // regression [B] float32
  // causal_lm: the tokens predicted by the positions in inputs.logits_rows,
  // which to_tensors sets to the positions b * T + t that predict one
  // (labels[b, t + 1] is not -100), so the LM head runs on those only;
  // [R] int64 each.
  at::Tensor lm_targets;
  int64_t rows = 0;
};
TensorBatch to_tensors(const data::Batch& batch, data::Task task, c10::Device device);

// The summed task loss of a batch (float32 scalar) and how many terms it sums:
// classification: cross-entropy over rows (with label smoothing), regression:
// squared error over rows, causal_lm: cross-entropy over completion tokens
// (logits[:, :-1] against labels[:, 1:], -100 ignored; logits [R, V] of
// batch.inputs.logits_rows against batch.lm_targets when the model had them).
at::Tensor loss_sum(data::Task task, const at::Tensor& logits, const TensorBatch& batch, double label_smoothing);
// Whether `e` has a target to evaluate against (test rows may have none).
bool is_labelled(data::Task task, const data::Example& e);
// The number of loss terms of the examples `indices` (rows, or completion tokens).
int64_t loss_terms(data::Task task, const std::vector<data::Example>& examples, const std::vector<size_t>& indices);

// CPU autocast to bfloat16 for its lifetime when `enabled` (nested safely).
class AutocastGuard {
 public:
  explicit AutocastGuard(bool enabled);
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;
  bool enabled() const { return enabled_; }

 private:
  bool enabled_, was_enabled_ = false;
  c10::ScalarType previous_dtype_ = c10::kBFloat16;
};

// `bf16 = true` (--bf16) for its lifetime, when `enabled`: on a CPU model
// where oneDNN's bf16 GEMM runs (AVX-512 BF16, AMX), the frozen products in
// bf16 with fp32 sums and everything else in fp32 (nn::Bf16MatmulGuard:
// faster than autocast, and closer to fp32); elsewhere CPU autocast to
// bfloat16 (AutocastGuard). Nested safely.
class Bf16Guard {
 public:
  Bf16Guard(bool enabled, c10::Device device);

 private:
  nn::Bf16MatmulGuard matmul_;
  AutocastGuard autocast_;
};

}  // namespace mixpeft::train
