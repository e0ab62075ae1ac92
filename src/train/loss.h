// The causal-LM loss without materialising log-probabilities (private to
// src/train and the benchmarks).
#pragma once

#include <cstdint>
#include <utility>

#include <ATen/core/Tensor.h>

namespace mixpeft::train {

// sum_i [labels_i != ignore_index] (logsumexp(logits_i) - logits_i[labels_i])
// for logits [N, V] and labels [N]: at::cross_entropy_loss(logits, labels,
// {}, Reduction::Sum, ignore_index) with equal values up to float rounding
// (float32 row sums, accumulated in float64), without its [N, V]
// log-softmax, the zero-filled [N, V] gradient of the NLL, and the second
// pass of the log-softmax backward: the forward keeps only each row's
// logsumexp, and the backward writes softmax - one-hot in one pass over each
// row (the vectorised row kernels of src/core/vocab_math.h). Logits are
// read as float32 (bf16 logits are converted once).
// A label outside [0, V) other than ignore_index is kInvalidArgument.
at::Tensor cross_entropy_sum(const at::Tensor& logits, const at::Tensor& labels, int64_t ignore_index);

// The causal-LM loss the trainer sums: logits [B, T, V] at position t scored
// against labels[:, t + 1] ([B, T], the input ids or -100 where masked); the
// last position predicts nothing. cross_entropy_sum on the whole [B T, V]
// logits, so the shift copies labels, not logits.
at::Tensor causal_lm_loss_sum(const at::Tensor& logits, const at::Tensor& labels, int64_t ignore_index);

// AdaMix's consistency step on a causal LM: {causal_lm_loss_sum(logits1,
// labels, ignore_index), peft::adamix_consistency_loss(logits1, logits2)}
// ([B, T, V] logits, batchmean over B), equal up to float rounding, from one
// autograd function. Its forward reads both logits once (the KL's softmaxes
// give the cross-entropy's logsumexp); its backward writes each logits'
// gradient once, where the two losses apart write logits1's twice and then
// add them: about 1 GB less memory traffic per step at GPT-2's vocabulary.
std::pair<at::Tensor, at::Tensor> causal_lm_loss_sum_and_consistency(const at::Tensor& logits1,
                                                                     const at::Tensor& logits2,
                                                                     const at::Tensor& labels, int64_t ignore_index);

}  // namespace mixpeft::train
