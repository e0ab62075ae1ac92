// The attention kernel of issue 7's workload on its own: forward and backward
// of nn::attention (causal, q/k/v [B, H, T, D]) against LibTorch's composite
// (matmul, softmax, matmul), and with bf16 products (nn::Bf16MatmulGuard)
// where the CPU has them, median of --iters after --warmup. Prints one JSON
// line per implementation with milliseconds and the GFLOP/s of the
// multiplications a full (unmasked) attention does.
//
//   OPENBLAS_CORETYPE= build/bench/attention_bench --threads 2
#include <chrono>
#include <cstdio>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/autograd.h>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "core/gemm.h"
#include "mixpeft/nn.h"
#include "mixpeft/runtime.h"

namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Attention forward + backward at issue 7's shape (batch 8, 12 heads, 128 tokens, head 64)."};
  int threads = 2, warmup = 3, iters = 10;
  int64_t B = 8, H = 12, T = 128, D = 64;
  app.add_option("--threads", threads, "intra-op threads")->capture_default_str();
  app.add_option("--batch", B, "batch")->capture_default_str();
  app.add_option("--heads", H, "heads")->capture_default_str();
  app.add_option("--seq", T, "tokens")->capture_default_str();
  app.add_option("--head-dim", D, "head width")->capture_default_str();
  app.add_option("--warmup", warmup, "untimed runs")->capture_default_str();
  app.add_option("--iters", iters, "timed runs")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  mixpeft::prefer_avx512_kernels();
  at::set_num_threads(threads);
  mixpeft::use_caching_cpu_allocator();

  at::manual_seed(0);
  auto make = [&] { return at::randn({B, H, T, D}).requires_grad_(true); };
  at::Tensor q = make(), k = make(), v = make();
  at::Tensor grad = at::randn({B, H, T, D});
  at::Tensor bias = mixpeft::nn::attention_bias(at::Tensor(), T, T, /*causal=*/true, at::kFloat, at::kCPU);
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  const double gflop = 6.0 * 2.0 * B * H * T * T * D / 1e9;  // 2 forward + 4 backward products

  auto composite = [&] {
    auto s = at::matmul(q, k.transpose(-1, -2)) * scale + bias;
    return at::matmul(at::softmax(s, -1), v);
  };
  auto fused = [&] { return mixpeft::nn::attention(q, k, v, bias, scale); };
  auto time = [&](const char* name, const std::function<at::Tensor()>& f) {
    std::vector<double> fwd, bwd;
    for (int i = 0; i < warmup + iters; ++i) {
      q.mutable_grad() = at::Tensor();
      k.mutable_grad() = at::Tensor();
      v.mutable_grad() = at::Tensor();
      auto t0 = std::chrono::steady_clock::now();
      auto out = f();
      auto t1 = std::chrono::steady_clock::now();
      out.backward(grad);
      auto t2 = std::chrono::steady_clock::now();
      if (i < warmup) continue;
      fwd.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
      bwd.push_back(std::chrono::duration<double, std::milli>(t2 - t1).count());
    }
    const double f_ms = median(fwd), b_ms = median(bwd);
    nlohmann::json j{{"bench", "attention"}, {"impl", name},   {"batch", B},     {"heads", H},
                     {"seq", T},             {"head_dim", D},  {"threads", threads}, {"gemm", mixpeft::cpu_gemm_backend()},
                     {"forward_ms", f_ms},   {"backward_ms", b_ms},
                     {"gflops", gflop / ((f_ms + b_ms) / 1e3)}};
    std::printf("%s\n", j.dump().c_str());
  };
  time("mixpeft", fused);
  if (mixpeft::onednn_bf16_gemm_available()) {
    mixpeft::nn::Bf16MatmulGuard bf16;  // bf16 products, fp32 softmax and outputs
    time("mixpeft-bf16", fused);
  }
  time("composite", composite);
  return 0;
}
