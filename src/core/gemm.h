// Matrix products on the CPU through oneDNN's GEMMs when they are there:
// fp32 (sgemm) and bf16 inputs with fp32 accumulation and output.
//
// LibTorch 1.13 multiplies fp32 matrices with the system BLAS (OpenBLAS on
// Debian). Debian's LibTorch also links oneDNN (libdnnl.so.2), whose public
// `dnnl_sgemm` is as fast as OpenBLAS on large products and about a third
// faster on the 128 x 64 blocks of attention (docs/PERFORMANCE.md,
// bench/attention_bench). It is looked up at run time in the loaded
// libraries, so a LibTorch without it (the PyPI wheels hide their copy)
// simply keeps ATen's products: same results within rounding.
//
//   if (mixpeft::onednn_gemm_available()) ...
//   mixpeft::sgemm(false, true, M, N, K, 1.f, a, K, b, K, 0.f, c, N);  // C = A B^T
//   at::Tensor y = mixpeft::mm_cpu(x, w, bias);  // x [M, K] @ w [K, N] + bias, no autograd
//
// oneDNN's bf16 GEMM (dnnl_gemm_bf16bf16f32, exported though not in dnnl.h)
// is used only on CPUs that multiply bf16 natively (AVX-512 BF16 or AMX);
// elsewhere oneDNN emulates it, slower than fp32.
//
// $MIXPEFT_GEMM=aten turns oneDNN off (for comparisons); the choice is made
// once per process.
#pragma once

#include <cstdint>

#include <ATen/core/Tensor.h>
#include <c10/core/TensorOptions.h>
#include <c10/util/BFloat16.h>

namespace mixpeft {

// True when dnnl_sgemm was found and $MIXPEFT_GEMM is not "aten".
bool onednn_gemm_available();
// "oneDNN <version>" or "ATen (<why>)", for `mixpeft env` and benchmarks.
const char* cpu_gemm_backend();

// True when dnnl_gemm_bf16bf16f32 was found, ran a first product, the CPU
// has AVX-512 BF16 or AMX, and $MIXPEFT_GEMM is not "aten".
bool onednn_bf16_gemm_available();
// "oneDNN <version>" or "ATen (<why>)" for bf16 products.
const char* cpu_bf16_gemm_backend();

// Row-major C[M, N] = alpha op(A) op(B) + beta C, with op(A) [M, K] and
// op(B) [K, N]; lda/ldb/ldc are row strides of A, B, C as stored. With
// beta 0, C's contents are ignored. oneDNN only: callers check
// onednn_gemm_available() first (kInternal otherwise) and keep ATen's
// tensor ops where it is false. Runs on the calling thread's OpenMP threads
// (one inside a parallel region).
void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
           int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

// gemm_bf16: sgemm's contract with bf16 A and B and an fp32 C; products are
// exact in fp32 and summed in fp32. Callers check
// onednn_bf16_gemm_available() first (kInternal otherwise).
void gemm_bf16(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const c10::BFloat16* A,
               int64_t lda, const c10::BFloat16* B, int64_t ldb, float beta, float* C, int64_t ldc);

// Whether mm_cpu takes the oneDNN path for these operands: CPU 2-D
// matrices (any row- or column-major strides), both float32 with sgemm
// available or both bfloat16 with the bf16 GEMM available.
bool mm_cpu_applies(const at::Tensor& a, const at::Tensor& b);

// a [M, K] @ b [K, N] (+ bias [N] on every row, fp32 or the operands'
// dtype), a new contiguous float32 [M, N] tensor (bf16 operands too: their
// products are summed in fp32), without autograd. oneDNN when
// mm_cpu_applies, else ATen's mm/addmm (the same values within rounding).
at::Tensor mm_cpu(const at::Tensor& a, const at::Tensor& b, const at::Tensor& bias = at::Tensor());

// An uninitialised [rows, cols] matrix laid out for these products:
// contiguous, unless a row would be a whole multiple of 4 KiB long; then
// rows start 64 bytes further apart (a view of a [rows, cols + 64 bytes]
// buffer). oneDNN's sgemm reads such a matrix transposed about 15% slower,
// every row of a block falling into the same cache sets: GPT-2's c_fc
// weight [768, 3072] in its input's gradient, 286-291 against 338 GFLOP/s
// (bench/gemm_bench). The products' values do not depend on the stride.
at::Tensor gemm_layout_empty(int64_t rows, int64_t cols, const at::TensorOptions& options = {});

}  // namespace mixpeft
