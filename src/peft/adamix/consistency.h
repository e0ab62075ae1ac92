// AdaMix's consistency term together with the cross-entropy of its first
// logits, on the CPU: the trainer's causal-LM consistency step
// (train::causal_lm_loss_sum_and_consistency) and adamix_consistency_loss
// share this one autograd function (consistency.cc).
#pragma once

#include <cstdint>
#include <utility>

#include <ATen/core/Tensor.h>

namespace mixpeft::peft {

// a, b: [N, V] float32 contiguous CPU logits; labels: [N] int64 in [0, V)
// or ignore_index, checked by the caller, or empty (no cross-entropy).
// Returns {sum over the labelled rows of logsumexp(a_i) - a_i[label_i] (0
// without labels), adamix_consistency_loss's value with batchmean divisor n}.
// The forward reads a and b once and keeps p - q; the backward writes each
// gradient once.
std::pair<at::Tensor, at::Tensor> cpu_cross_entropy_and_consistency(const at::Tensor& a, const at::Tensor& b,
                                                                    const at::Tensor& labels, int64_t ignore_index,
                                                                    int64_t n);

}  // namespace mixpeft::peft
