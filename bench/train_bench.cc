// Training-step throughput of issue 7's workload: a GPT-2-small-shaped causal
// LM with random weights, batch 8 x 128 tokens, a PEFT method (default LoRA
// r 8, alpha 16 on c_attn), AdamW on the trainable parameters, dropout 0.
// One step is what mixpeft train does per optimizer step: zero_grad, forward,
// the shifted cross-entropy (plus AdaMix's consistency term with a second
// forward when asked), backward, AdamW. Prints one JSON line: the median step
// time over --steps after --warmup, tokens/s, and the peak RSS; each step's
// line on stderr splits it into forward, loss, [forward, kl,] backward, adamw.
//
//   OPENBLAS_CORETYPE= build/bench/train_bench --method lora --threads 2
//   build/bench/train_bench --method adamix-lora --consistency
//   build/bench/train_bench --method lora --dtype bf16        # bf16 weights and activations, fp32 adapters
//   build/bench/train_bench --method lora --bf16              # frozen products in bf16, the rest fp32 (mixpeft train --bf16)
//   build/bench/train_bench --method lora --autocast          # fp32 weights, LibTorch's bf16 autocast
//
// bench/peer_pytorch.py runs the same workload in PyTorch; bench/perf.sh runs both.
#include <chrono>
#include <cstdio>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/profiler_legacy.h>
#include <torch/torch.h>

#include <CLI/CLI.hpp>

#include "bench/perf_common.h"
#include "core/gemm.h"
#include "mixpeft/adamix.h"
#include "mixpeft/model.h"
#include "mixpeft/nn.h"
#include "mixpeft/peft.h"
#include "mixpeft/runtime.h"
#include "train/internal.h"
#include "train/loss.h"
#include "train/optim.h"

using namespace mixpeft;

namespace {

struct Options {
  std::string method = "lora";
  std::string dtype = "fp32";
  bool autocast = false, bf16 = false, consistency = false;
  int64_t batch = 8, seq = 128, warmup = 2, steps = 5;
  bench::Workload w;
  std::string profile;
};

// The trainer's causal-LM loss (src/train/evaluate.cc loss_sum), averaged
// over the B (T - 1) predicted tokens: logits [B (T - 1), V] when the model
// ran its LM head on those positions only (in.logits_rows, as the trainer
// does), else [B, T, V] (with AdaMix's consistency term, as the trainer).
at::Tensor lm_loss(const at::Tensor& logits, const at::Tensor& ids) {
  const double n = static_cast<double>(ids.size(0) * (ids.size(1) - 1));
  if (logits.dim() == 3) return train::causal_lm_loss_sum(logits, ids, -100) / n;
  return train::cross_entropy_sum(logits, ids.narrow(1, 1, ids.size(1) - 1).reshape({-1}), -100) / n;
}

int run(const Options& o) {
  bench::warn_coretype();
  prefer_avx512_kernels();
  set_num_threads(o.w.threads);
  use_caching_cpu_allocator();
  LoadOptions lo;
  lo.init_seed = o.w.seed;
  lo.dtype = o.dtype == "bf16" ? at::kBFloat16 : at::kFloat;
  auto base = create_model(o.w.config(), lo);

  std::vector<std::pair<std::string, at::Tensor>> params;
  std::shared_ptr<peft::PeftModel> peft;
  Model* model = base.get();
  int64_t total = 0;
  for (const auto& p : base->parameters()) total += p.numel();
  const nlohmann::json cfg = bench::method_config(o.method);
  if (!cfg.is_null()) {
    peft = peft::PeftModel::create(base, cfg);
    model = &peft->model();
    params = peft->trainable_parameters();
    if (o.dtype == "bf16") {
      // Frozen weights stay bf16; the trained adapter parameters are fp32 masters.
      torch::NoGradGuard no_grad;
      for (auto& [name, p] : params) p.set_data(p.data().to(at::kFloat));
    }
  } else {
    for (auto& item : base->named_parameters()) {
      item.value().set_requires_grad(o.method == "full");
      if (o.method == "full") params.emplace_back(item.key(), item.value());
    }
  }
  int64_t trainable = 0;
  for (const auto& [name, p] : params) trainable += p.numel();
  MIXPEFT_CHECK(!params.empty(), ErrorKind::kInvalidArgument, "--method ", o.method, " trains nothing");
  model->train();
  train::AdamWOptions ao;
  ao.lr = 1e-4;
  train::AdamW opt(params, std::vector<bool>(params.size(), false), ao);
  // What mixpeft train --bf16 holds for the whole run (the bf16 weight copies
  // live as long as it does); each step nests another, as the trainer's do.
  nn::Bf16MatmulGuard bf16_run(o.bf16);
  MIXPEFT_CHECK(!o.bf16 || bf16_run.enabled(), ErrorKind::kUnsupported, "--bf16 needs oneDNN's bf16 GEMM (",
                cpu_bf16_gemm_backend(), ")");

  auto gen = at::make_generator<at::CPUGeneratorImpl>(o.w.seed + 1);
  ModelInputs in;
  in.input_ids = at::randint(o.w.vocab, {o.batch, o.seq}, gen, at::TensorOptions().dtype(at::kLong));
  if (!o.consistency) {
    const auto i64 = at::TensorOptions().dtype(at::kLong);
    in.logits_rows = (at::arange(o.batch, i64).unsqueeze(1) * o.seq + at::arange(o.seq - 1, i64)).reshape({-1});
  }
  std::vector<double> times;
  double loss_value = 0;
  for (int64_t s = 0; s < o.warmup + o.steps; ++s) {
    // The last step, traced by LibTorch's profiler when asked (chrome://tracing JSON).
    std::unique_ptr<torch::autograd::profiler::RecordProfile> trace;
    if (!o.profile.empty() && s == o.warmup + o.steps - 1)
      trace = std::make_unique<torch::autograd::profiler::RecordProfile>(o.profile);
    // Each phase's end, for the step line: forward, loss, [forward, KL], backward, AdamW.
    std::vector<std::pair<const char*, std::chrono::steady_clock::time_point>> marks;
    const auto t0 = std::chrono::steady_clock::now();
    const auto mark = [&](const char* phase) { marks.emplace_back(phase, std::chrono::steady_clock::now()); };
    opt.zero_grad();
    at::Tensor loss;
    {
      train::AutocastGuard autocast(o.autocast);
      train::Bf16Guard bf16(o.bf16, c10::Device(c10::kCPU));
      at::Tensor logits = model->forward(in).logits;
      mark("forward");
      loss = lm_loss(logits, in.input_ids);
      mark("loss");
      if (o.consistency) {
        at::Tensor logits2 = model->forward(in).logits;
        mark("forward");
        loss = loss + peft::adamix_consistency_loss(logits.to(at::kFloat), logits2.to(at::kFloat)) /
                          static_cast<double>(o.seq);
        mark("kl");
      }
    }
    loss.backward();
    mark("backward");
    opt.step(ao.lr);
    mark("adamw");
    loss_value = loss.item<double>();
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::string phases;
    auto from = t0;
    for (const auto& [phase, at] : marks) {
      phases += (phases.empty() ? "" : ", ") + std::string(phase) + " " +
                std::to_string(static_cast<int>(std::chrono::duration<double, std::milli>(at - from).count()));
      from = at;
    }
    std::fprintf(stderr, "step %lld: %.3f s (ms: %s), loss %.4f\n", static_cast<long long>(s), dt, phases.c_str(),
                 loss_value);
    if (s >= o.warmup) times.push_back(dt);
  }
  const double med = bench::median(times);
  nlohmann::json out{{"bench", "train"},
                     {"impl", "mixpeft"},
                     {"method", o.method},
                     {"dtype", o.dtype},
                     {"autocast", o.autocast},
                     {"bf16_matmul", o.bf16},
                     {"consistency", o.consistency},
                     {"threads", o.w.threads},
                     {"gemm", cpu_gemm_backend()},
                     {"batch", o.batch},
                     {"seq", o.seq},
                     {"layers", o.w.layers},
                     {"trainable", trainable},
                     {"parameters", total},
                     {"step_s", times},
                     {"median_step_s", med},
                     {"tokens_per_s", static_cast<double>(o.batch * o.seq) / med},
                     {"peak_rss_mib", bench::peak_rss_mib()},
                     {"cpu_cache_hits", cpu_cache_stats().hits},
                     {"cpu_cache_misses", cpu_cache_stats().misses},
                     {"last_loss", loss_value}};
  std::printf("%s\n", out.dump().c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Training-step throughput on a GPT-2-small-shaped model (docs/PERFORMANCE.md)"};
  Options o;
  app.add_option("--method", o.method, "lora, moslora, adamix-lora, adamix-adapter, houlsby, full")
      ->capture_default_str();
  app.add_option("--dtype", o.dtype, "fp32, or bf16: frozen weights and activations in bf16, adapters fp32")
      ->check(CLI::IsMember({"fp32", "bf16"}))
      ->capture_default_str();
  app.add_flag("--bf16", o.bf16, "frozen products in bf16 with fp32 sums, the rest fp32 (what mixpeft train --bf16 does)");
  app.add_flag("--autocast", o.autocast, "LibTorch's bf16 autocast over fp32 weights");
  app.add_flag("--consistency", o.consistency, "AdaMix: a second forward and the symmetric-KL term");
  app.add_option("--batch", o.batch, "rows per step")->capture_default_str();
  app.add_option("--seq", o.seq, "tokens per row")->capture_default_str();
  app.add_option("--warmup", o.warmup, "untimed steps first")->capture_default_str();
  app.add_option("--steps", o.steps, "timed steps (the median is reported)")->capture_default_str();
  app.add_option("--profile", o.profile, "write LibTorch's trace of the last step to this JSON file");
  o.w.add_options(app);
  CLI11_PARSE(app, argc, argv);
  try {
    return run(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "train_bench: %s\n", e.what());
    return 1;
  }
}
