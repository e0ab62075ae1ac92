// Batched matrix products on oneDNN's matmul primitive (Debian's
// libdnnl-dev, the oneDNN that LibTorch itself links), for the many small
// products of attention: one call multiplies every (batch, head) block, on
// oneDNN's brgemm kernels. At issue 7's shape (96 blocks of 128 x 64 x 128)
// that ran at 266 GFLOP/s in fp32 and 553 in bf16 on 2 AVX-512 cores,
// against about 100 for one sgemm call per block (bench/attention_bench).
//
//   if (mixpeft::dnnl_matmul_available()) mixpeft::dnnl_matmul(q, k.transpose(-1, -2), scores, scale, 0.f);
//
// Built only where the headers were found (MIXPEFT_HAVE_DNNL); elsewhere
// dnnl_matmul_available() is false and callers keep their own paths.
#pragma once

#include <ATen/core/Tensor.h>

namespace mixpeft {

// True when mixpeft was built with oneDNN's headers, $MIXPEFT_GEMM is not
// "aten", and a first fp32 product ran.
bool dnnl_matmul_available();

// c = alpha a b + beta c, batched over the leading dimensions: a [..., M,
// K], b [..., K, N], c [..., M, N] with the same leading sizes; any strides
// whose last two dimensions are row- or column-major (a transposed view is
// fine). a and b both fp32, or both bf16 (needs onednn_bf16_gemm_available());
// c fp32. With beta 0, c's contents are ignored. Runs on LibTorch's OpenMP
// threads; primitives are made once per shape, strides and dtype and kept.
void dnnl_matmul(const at::Tensor& a, const at::Tensor& b, const at::Tensor& c, float alpha, float beta);

}  // namespace mixpeft
