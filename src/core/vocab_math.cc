// src/core/vocab_math.h. Compiled with -O3 -ffast-math (src/core/CMakeLists.txt)
// so that GCC vectorises the loops and their expf calls (libmvec's
// _ZGV*_expf); target_clones builds each kernel for AVX-512, AVX2 and the
// baseline and picks one when the library loads. Nothing here includes a C++
// header with inline functions: a fast-math copy of one could be the copy the
// linker keeps for the rest of the program.
//
// A row is read from memory once, in chunks of kChunk that stay in the L1
// cache: each chunk's maximum m_c, its exponentials exp(x - m_c) and their
// float32 sum s_c. The row's logsumexp is then M + log sum_c s_c exp(m_c - M)
// (M the largest m_c, the sum in float64). symmetric_kl keeps the chunks'
// exponentials (in d and a per-thread scratch row, both cache-resident) and
// turns them into probabilities with one factor per chunk, so each logit
// costs one exponential.
#include "core/vocab_math.h"

#include <math.h>
#include <stdlib.h>

#define MIXPEFT_VOCAB_KERNEL __attribute__((target_clones("avx512f", "avx2", "default")))

namespace mixpeft::vocab {
namespace {

constexpr int64_t kChunk = 1024;

inline float chunk_max(const float* x, int64_t n) {
  float m = x[0];
  for (int64_t i = 1; i < n; ++i) m = x[i] > m ? x[i] : m;
  return m;
}

// The logsumexp of a row from its chunks' maxima and sums.
inline float combine(const float* maxima, const float* sums, int64_t chunks) {
  float top = maxima[0];
  for (int64_t c = 1; c < chunks; ++c) top = maxima[c] > top ? maxima[c] : top;
  double s = 0;
  for (int64_t c = 0; c < chunks; ++c) s += static_cast<double>(sums[c]) * exp(static_cast<double>(maxima[c] - top));
  return top + static_cast<float>(log(s));
}

// Per-thread scratch of at least n floats (never freed: one row per thread).
float* scratch(int64_t n) {
  static thread_local float* buffer = nullptr;
  static thread_local int64_t size = 0;
  if (n > size) {
    free(buffer);
    buffer = static_cast<float*>(malloc(static_cast<size_t>(n) * sizeof(float)));
    size = buffer != nullptr ? n : 0;
  }
  return buffer;
}

}  // namespace

MIXPEFT_VOCAB_KERNEL float logsumexp(const float* x, int64_t n) {
  if (n <= 0) return 0.f;
  double s = 0;
  float top = x[0];
  // One pass: a chunk's maximum, then its exponentials against the running
  // maximum (rescaling the sum when the maximum grows).
  for (int64_t c = 0; c < n; c += kChunk) {
    const int64_t e = c + kChunk < n ? c + kChunk : n;
    const float m = chunk_max(x + c, e - c);
    if (m > top) {
      s *= exp(static_cast<double>(top - m));
      top = m;
    }
    float part = 0.f;
    for (int64_t i = c; i < e; ++i) part += expf(x[i] - top);
    s += part;
  }
  return top + static_cast<float>(log(s));
}

MIXPEFT_VOCAB_KERNEL void scaled_exp(const float* x, int64_t n, float shift, float scale, float* y) {
  for (int64_t i = 0; i < n; ++i) y[i] = scale * expf(x[i] - shift);
}

MIXPEFT_VOCAB_KERNEL double symmetric_kl(const float* a, const float* b, int64_t n, float* d, float* lse_a_out) {
  if (n <= 0) return 0.0;
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  // The scratch row holds exp(b - m_c), then each chunk's maxima and sums.
  float* eb = scratch(n + 4 * chunks);
  if (eb == nullptr) {  // out of memory
    if (lse_a_out != nullptr) *lse_a_out = __builtin_nanf("");
    return __builtin_nan("");
  }
  float *max_a = eb + n, *max_b = max_a + chunks, *sum_a = max_b + chunks, *sum_b = sum_a + chunks;
  // Pass 1 (the only read from memory): exp(a - m_c) into d, exp(b - m_c) into eb.
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t lo = c * kChunk, hi = lo + kChunk < n ? lo + kChunk : n;
    const float ma = chunk_max(a + lo, hi - lo), mb = chunk_max(b + lo, hi - lo);
    float sa = 0.f, sb = 0.f;
    for (int64_t i = lo; i < hi; ++i) {
      const float ea = expf(a[i] - ma), e2 = expf(b[i] - mb);
      d[i] = ea;
      eb[i] = e2;
      sa += ea;
      sb += e2;
    }
    max_a[c] = ma;
    max_b[c] = mb;
    sum_a[c] = sa;
    sum_b[c] = sb;
  }
  const float lse_a = combine(max_a, sum_a, chunks), lse_b = combine(max_b, sum_b, chunks);
  if (lse_a_out != nullptr) *lse_a_out = lse_a;
  const float shift = lse_a - lse_b;
  // Pass 2: p = exp(a - m_c) exp(m_c - lse_a), likewise q; log p - log q = a - b - shift.
  double acc = 0;  // every term is >= 0: (p - q) and (log p - log q) share their sign
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t lo = c * kChunk, hi = lo + kChunk < n ? lo + kChunk : n;
    const float fa = expf(max_a[c] - lse_a), fb = expf(max_b[c] - lse_b);
    float part = 0.f;
    for (int64_t i = lo; i < hi; ++i) {
      const float di = d[i] * fa - eb[i] * fb;
      d[i] = di;
      part += di * ((a[i] - b[i]) - shift);
    }
    acc += part;
  }
  return acc;
}

MIXPEFT_VOCAB_KERNEL void scale_and_negate(const float* x, int64_t n, float s, float* y, float* z) {
  for (int64_t i = 0; i < n; ++i) {
    y[i] = s * x[i];
    z[i] = -s * x[i];
  }
}

MIXPEFT_VOCAB_KERNEL void softmax_plus_scaled(const float* a, const float* d, int64_t n, float lse_a, float s_p,
                                              float s_d, float* y, float* z) {
  for (int64_t i = 0; i < n; ++i) {
    const float di = s_d * d[i];
    y[i] = s_p * expf(a[i] - lse_a) + di;
    z[i] = -di;
  }
}

}  // namespace mixpeft::vocab
