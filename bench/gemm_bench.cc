// The matrix products of issue 7's LoRA step, one shape at a time, on each
// CPU backend mixpeft has: oneDNN's sgemm (fp32), oneDNN's bf16 GEMM (bf16
// inputs, fp32 sums and output), oneDNN's matmul primitive (fp32 and bf16
// inputs, fp32 output) and ATen's mm (fp32: the system BLAS).
// Prints one JSON line per shape and backend: median milliseconds over
// --iters after --warmup, and GFLOP/s.
//
//   OPENBLAS_CORETYPE= build/bench/gemm_bench --threads 2
//
// Shapes (tokens M = batch x seq = 1024): each GPT-2-small layer's four
// frozen products forward (x W) and their input gradients (dy W^T), and the
// tied LM head (vocabulary 50257) both ways; weights laid out as the
// models keep them (core/gemm.h, gemm_layout_empty), and c_fc's once more
// contiguous, to show what that layout buys.
//
// oneDNN's sgemm runs its first 8 or so products in a process at half speed
// (seen on the AVX-512 machine of docs/PERFORMANCE.md, whatever the shape),
// hence 10 warm-up runs by default: with 2, the first shape measured at
// 213 GFLOP/s instead of 360.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "bench/perf_common.h"
#include "core/dnnl_matmul.h"
#include "core/gemm.h"
#include "mixpeft/runtime.h"

namespace {

struct Shape {
  std::string name;
  int64_t M, N, K;
  bool trans_b;  // B stored [N, K] (a transposed weight)
  bool model_layout = true;  // B laid out as the models keep weights (gemm_layout_empty), else contiguous
};

double median_seconds(int warmup, int iters, const std::function<void()>& f) {
  for (int i = 0; i < warmup; ++i) f();
  std::vector<double> t;
  for (int i = 0; i < iters; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return mixpeft::bench::median(t);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"The frozen products of issue 7's LoRA step on each CPU GEMM backend (docs/PERFORMANCE.md)."};
  int threads = 2, warmup = 10, iters = 7;
  int64_t tokens = 1024, hidden = 768, vocab = 50257;
  app.add_option("--threads", threads, "intra-op threads")->capture_default_str();
  app.add_option("--tokens", tokens, "rows of every product (batch x seq)")->capture_default_str();
  app.add_option("--hidden", hidden, "model width (the MLP is 4x)")->capture_default_str();
  app.add_option("--vocab", vocab, "vocabulary (the LM head)")->capture_default_str();
  app.add_option("--warmup", warmup, "untimed runs")->capture_default_str();
  app.add_option("--iters", iters, "timed runs (the median is reported)")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  mixpeft::prefer_avx512_kernels();
  mixpeft::set_num_threads(threads);
  mixpeft::use_caching_cpu_allocator();
  const int64_t M = tokens, d = hidden;
  const std::vector<Shape> shapes = {
      {"c_attn x W", M, 3 * d, d, false},  {"c_attn dy W^T", M, d, 3 * d, true},
      {"attn c_proj x W", M, d, d, false}, {"attn c_proj dy W^T", M, d, d, true},
      {"c_fc x W", M, 4 * d, d, false},    {"c_fc dy W^T", M, d, 4 * d, true},
      {"mlp c_proj x W", M, d, 4 * d, false}, {"mlp c_proj dy W^T", M, 4 * d, d, true},
      {"lm_head x E^T", M, vocab, d, true}, {"lm_head dy E", M, d, vocab, false},
      // What the padded rows of gemm_layout_empty buy: c_fc's weight contiguous.
      {"c_fc dy W^T, contiguous W", M, d, 4 * d, true, false},
      // LoRA r 8 on c_attn: h A^T, d(down) = dy B, dh = d(down) A (trainable: fp32 only).
      {"lora h A^T", M, 8, d, true, false}, {"lora dy B", M, 8, 3 * d, false, false},
      {"lora d(down) A", M, d, 8, false, false},
  };
  for (const Shape& s : shapes) {
    const at::Tensor a = at::randn({s.M, s.K});
    const int64_t b_rows = s.trans_b ? s.N : s.K, b_cols = s.trans_b ? s.K : s.N;
    const at::Tensor b = s.model_layout ? mixpeft::gemm_layout_empty(b_rows, b_cols).normal_()
                                        : at::randn({b_rows, b_cols});
    const at::Tensor ab = a.to(at::kBFloat16), bb = b.to(at::kBFloat16);  // bf16 copies: contiguous
    at::Tensor c = at::empty({s.M, s.N});
    const int64_t ldb = b.stride(0), ldbb = bb.stride(0);
    const double flop = 2.0 * static_cast<double>(s.M) * static_cast<double>(s.N) * static_cast<double>(s.K);
    std::vector<std::pair<std::string, std::function<void()>>> runs;
    runs.emplace_back("aten-fp32", [&] { at::mm_out(c, a, s.trans_b ? b.t() : b); });
    if (mixpeft::onednn_gemm_available())
      runs.emplace_back("onednn-fp32", [&] {
        mixpeft::sgemm(false, s.trans_b, s.M, s.N, s.K, 1.0f, a.data_ptr<float>(), s.K, b.data_ptr<float>(), ldb,
                       0.0f, c.data_ptr<float>(), s.N);
      });
    if (mixpeft::onednn_bf16_gemm_available())
      runs.emplace_back("onednn-bf16", [&] {
        mixpeft::gemm_bf16(false, s.trans_b, s.M, s.N, s.K, 1.0f, ab.data_ptr<c10::BFloat16>(), s.K,
                           bb.data_ptr<c10::BFloat16>(), ldbb, 0.0f, c.data_ptr<float>(), s.N);
      });
    if (mixpeft::onednn_bf16_gemm_available())
      runs.emplace_back("mm_cpu-bf16", [&] { at::Tensor y = mixpeft::mm_cpu(ab, s.trans_b ? bb.t() : bb); });
    if (mixpeft::dnnl_matmul_available()) {
      runs.emplace_back("matmul-fp32", [&] { mixpeft::dnnl_matmul(a, s.trans_b ? b.t() : b, c, 1.0f, 0.0f); });
      if (mixpeft::onednn_bf16_gemm_available())
        runs.emplace_back("matmul-bf16", [&] { mixpeft::dnnl_matmul(ab, s.trans_b ? bb.t() : bb, c, 1.0f, 0.0f); });
    }
    for (const auto& [backend, f] : runs) {
      const double t = median_seconds(warmup, iters, f);
      nlohmann::json out{{"bench", "gemm"}, {"shape", s.name}, {"backend", backend}, {"M", s.M},
                         {"N", s.N},        {"K", s.K},       {"threads", threads}, {"median_ms", t * 1e3},
                         {"gflops", flop / t / 1e9}};
      std::printf("%s\n", out.dump().c_str());
    }
  }
  return 0;
}
