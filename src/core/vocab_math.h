// Row kernels for the vocabulary-wide losses (the causal-LM cross-entropy in
// src/train/loss.cc, AdaMix's consistency term): each reads a row of logits
// from memory once, in chunks that stay in the core's cache, with vectorised
// exponentials (glibc's libmvec, for the best of AVX-512, AVX2 and SSE2 that
// the CPU has, chosen at run time), in place of a chain of ATen ops that each
// stream a block of rows through memory.
//
//   float lse = mixpeft::vocab::logsumexp(row, V);
//   mixpeft::vocab::scaled_exp(row, V, lse, g, grad_row);      // g * softmax(row)
//   double s = mixpeft::vocab::symmetric_kl(a, b, V, p_minus_q);
//
// Logits must be finite. Sums run in float32 within chunks of 1024 and in
// float64 across them: values agree with a float64 reference to float
// rounding (src/core/vocab_math_test.cc).
// No LibTorch here: plain pointers and lengths.
#pragma once

#include <cstdint>

namespace mixpeft::vocab {

// log(sum_i exp(x_i)) over x[0, n), n >= 1.
float logsumexp(const float* x, int64_t n);

// y_i = scale * exp(x_i - shift) for i in [0, n); y may be x.
void scaled_exp(const float* x, int64_t n, float shift, float scale, float* y);

// With p = softmax(a) and q = softmax(b) over [0, n), n >= 1: writes
// d_i = p_i - q_i and returns sum_i (p_i - q_i)(log p_i - log q_i), which is
// KL(p || q) + KL(q || p). One read of a and b, one exponential per logit;
// uses a per-thread scratch row of about n floats (NaN is returned if it
// cannot be allocated, and *lse_a too). When lse_a is not null, *lse_a =
// log(sum_i exp(a_i)).
double symmetric_kl(const float* a, const float* b, int64_t n, float* d, float* lse_a = nullptr);

// y_i = s_p * exp(a_i - lse_a) + s_d * d_i and z_i = -s_d * d_i, one read of
// a and d. With d from symmetric_kl: the gradients, with respect to a and b,
// of s_p * (the cross-entropy of row a) + s_d * (the symmetric KL with its
// targets detached), except for the -s_p at a's target.
void softmax_plus_scaled(const float* a, const float* d, int64_t n, float lse_a, float s_p, float s_d, float* y,
                         float* z);

// y_i = s * x_i and z_i = -s * x_i, one read of x.
void scale_and_negate(const float* x, int64_t n, float s, float* y, float* z);

}  // namespace mixpeft::vocab
