// The optimizer and learning-rate schedule of the trainer (private to src/train).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

namespace mixpeft::train {

struct AdamWOptions {
  double lr = 3e-4;  // peak learning rate; the schedule scales it
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  double weight_decay = 0.0;
};

// AdamW exactly as torch.optim.AdamW (amsgrad off, maximize off, single
// tensor path):
//   step += 1
//   p  *= 1 - lr * wd                         (decayed parameters only)
//   m   = beta1 m + (1 - beta1) g
//   v   = beta2 v + (1 - beta2) g^2
//   p  -= lr / (1 - beta1^step) * m / (sqrt(v) / sqrt(1 - beta2^step) + eps)
// Parameters without a gradient are skipped, as in PyTorch.
class AdamW {
 public:
  // `decay[i]` says whether parameters[i] gets weight decay.
  AdamW(std::vector<std::pair<std::string, at::Tensor>> parameters, std::vector<bool> decay, AdamWOptions options);
  void step(double lr);
  void zero_grad();
  int64_t steps() const { return steps_; }
  // State for checkpoints: "exp_avg.<name>", "exp_avg_sq.<name>" (tensors are
  // created lazily, so entries exist only after the first step), and steps.
  std::vector<std::pair<std::string, at::Tensor>> state() const;
  void load_state(const std::vector<std::pair<std::string, at::Tensor>>& state, int64_t steps, const std::string& where);
  const std::vector<std::pair<std::string, at::Tensor>>& parameters() const { return params_; }

 private:
  std::vector<std::pair<std::string, at::Tensor>> params_;
  std::vector<bool> decay_;
  std::vector<at::Tensor> exp_avg_, exp_avg_sq_;
  AdamWOptions options_;
  int64_t steps_ = 0;
};

// True for parameters that get no weight decay: biases and normalisation
// weights (names ending in "bias", or containing "norm", "LayerNorm" or "ln_").
bool no_weight_decay(const std::string& name);

// Learning-rate multiplier at optimizer step `step` (0-based), as HF's
// get_{linear,cosine,constant}_schedule_with_warmup: step / warmup during
// warm-up, then linear: (total - step) / (total - warmup), cosine:
// 0.5 (1 + cos(pi progress)), constant: 1. Never negative.
double lr_multiplier(const std::string& schedule, int64_t step, int64_t warmup, int64_t total);

// Scales the gradients so that their global L2 norm is at most max_norm
// (torch.nn.utils.clip_grad_norm_: coef = max_norm / (norm + 1e-6), clamped
// to 1). Returns the norm before clipping. max_norm <= 0: only measures.
double clip_grad_norm(const std::vector<std::pair<std::string, at::Tensor>>& parameters, double max_norm);

}  // namespace mixpeft::train
