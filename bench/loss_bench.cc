// The vocabulary-wide losses alone (docs/PERFORMANCE.md): the causal-LM
// cross-entropy (train::cross_entropy_sum) and AdaMix's consistency term
// (peft::adamix_consistency_loss), forward and backward, on [rows, vocab]
// float32 logits as the training step gives them; then the consistency
// step's two terms together, as two functions whose gradients autograd adds
// ("apart") and as the trainer's one function
// (train::causal_lm_loss_sum_and_consistency, "fused"). Prints one JSON line
// with the median milliseconds of each over --iters after --warmup.
//
//   build/bench/loss_bench                      # 1024 x 50257, 2 threads
//   build/bench/loss_bench --threads 1 --rows 1016
#include <chrono>
#include <cstdio>
#include <functional>
#include <vector>

#include <ATen/ATen.h>

#include <CLI/CLI.hpp>

#include "bench/perf_common.h"
#include "mixpeft/adamix.h"
#include "mixpeft/runtime.h"
#include "train/loss.h"

using namespace mixpeft;

namespace {

struct Options {
  int threads = 2;
  int64_t rows = 1024, vocab = 50257;
  int warmup = 2, iters = 7;
};

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

int run(const Options& o) {
  bench::warn_coretype();
  set_num_threads(o.threads);
  use_caching_cpu_allocator();
  at::manual_seed(0);
  // Logits of a model at initialisation: small spread around zero.
  const at::Tensor a = at::randn({o.rows, o.vocab}) * 2, b = at::randn({o.rows, o.vocab}) * 2;
  const at::Tensor labels = at::randint(o.vocab, {o.rows}, at::kLong);
  std::vector<double> ce_fwd, ce_bwd, kl_fwd, kl_bwd, apart_fwd, apart_bwd, fused_fwd, fused_bwd;
  // The consistency step's view: one sequence of `rows` positions.
  const at::Tensor seq_labels = labels.view({1, o.rows});
  const std::vector<int64_t> rows{o.rows, o.vocab}, seq{1, o.rows, o.vocab};
  bool keep = false;  // past the warm-up
  // Times loss_of(x, y) on fresh leaves of `shape` (forward), then its backward.
  const auto time = [&](at::IntArrayRef shape, std::vector<double>& fwd, std::vector<double>& bwd,
                        const std::function<at::Tensor(const at::Tensor&, const at::Tensor&)>& loss_of) {
    at::Tensor x = a.view(shape).detach().requires_grad_(true), y = b.view(shape).detach().requires_grad_(true);
    auto t0 = std::chrono::steady_clock::now();
    at::Tensor loss = loss_of(x, y);
    const double f = ms_since(t0);
    t0 = std::chrono::steady_clock::now();
    loss.backward();
    const double g = ms_since(t0);
    if (keep) fwd.push_back(f), bwd.push_back(g);
  };
  for (int i = 0; i < o.warmup + o.iters; ++i) {
    keep = i >= o.warmup;
    time(rows, ce_fwd, ce_bwd, [&](const at::Tensor& x, const at::Tensor&) {
      return train::cross_entropy_sum(x, labels, -100);
    });
    time(rows, kl_fwd, kl_bwd, [](const at::Tensor& x, const at::Tensor& y) {
      return peft::adamix_consistency_loss(x, y);
    });
    time(seq, apart_fwd, apart_bwd, [&](const at::Tensor& x, const at::Tensor& y) {
      return train::causal_lm_loss_sum(x, seq_labels, -100) + peft::adamix_consistency_loss(x, y);
    });
    time(seq, fused_fwd, fused_bwd, [&](const at::Tensor& x, const at::Tensor& y) {
      auto [ce, kl] = train::causal_lm_loss_sum_and_consistency(x, y, seq_labels, -100);
      return ce + kl;
    });
  }
  nlohmann::json out{{"bench", "loss"},
                     {"rows", o.rows},
                     {"vocab", o.vocab},
                     {"threads", o.threads},
                     {"cross_entropy_forward_ms", bench::median(ce_fwd)},
                     {"cross_entropy_backward_ms", bench::median(ce_bwd)},
                     {"consistency_forward_ms", bench::median(kl_fwd)},
                     {"consistency_backward_ms", bench::median(kl_bwd)},
                     {"both_apart_forward_ms", bench::median(apart_fwd)},
                     {"both_apart_backward_ms", bench::median(apart_bwd)},
                     {"both_fused_forward_ms", bench::median(fused_fwd)},
                     {"both_fused_backward_ms", bench::median(fused_bwd)}};
  std::printf("%s\n", out.dump().c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"The causal-LM cross-entropy and AdaMix's consistency term alone (docs/PERFORMANCE.md)"};
  Options o;
  app.add_option("--threads", o.threads, "intra-op threads")->capture_default_str();
  app.add_option("--rows", o.rows, "logit rows (positions)")->capture_default_str();
  app.add_option("--vocab", o.vocab, "vocabulary size")->capture_default_str();
  app.add_option("--warmup", o.warmup, "untimed runs first")->capture_default_str();
  app.add_option("--iters", o.iters, "timed runs (the median is reported)")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  try {
    return run(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "loss_bench: %s\n", e.what());
    return 1;
  }
}
