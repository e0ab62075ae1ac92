// Training-step throughput of issue 7's workload: a GPT-2-small-shaped causal
// LM with random weights, batch 8 x 128 tokens, a PEFT method (default LoRA
// r 8, alpha 16 on c_attn), AdamW on the trainable parameters, dropout 0.
// One step is what mixpeft train does per optimizer step: zero_grad, forward,
// the shifted cross-entropy (plus AdaMix's consistency term with a second
// forward when asked), backward, AdamW. Prints one JSON line: the median step
// time over --steps after --warmup, tokens/s, and the peak RSS; each step's
// line on stderr splits it into forward, loss, backward, adamw (with the
// consistency term: forward, forward, loss+kl, backward, adamw) and counts
// its minor page faults.
//
//   OPENBLAS_CORETYPE= build/bench/train_bench --method lora --threads 2
//   build/bench/train_bench --method adamix-lora --consistency
//   build/bench/train_bench --method adamix-lora --consistency --against lora --steps 9   # step-time ratio, paired
//   build/bench/train_bench --method lora --dtype bf16        # bf16 weights and activations, fp32 adapters
//   build/bench/train_bench --method lora --bf16              # frozen products in bf16, the rest fp32 (mixpeft train --bf16)
//   build/bench/train_bench --method lora --autocast          # fp32 weights, LibTorch's bf16 autocast
//
// bench/peer_pytorch.py runs the same workload in PyTorch; bench/perf.sh runs both.
#include <sys/resource.h>

#include <chrono>
#include <cstdio>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/profiler_legacy.h>
#include <torch/torch.h>

#include <CLI/CLI.hpp>

#include "bench/perf_common.h"
#include "core/gemm.h"
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
  std::string against;
};

// The trainer's causal-LM loss (src/train/evaluate.cc loss_sum), averaged
// over the B (T - 1) predicted tokens: logits [B (T - 1), V], the model
// having run its LM head on those positions only (in.logits_rows, as the
// trainer does).
at::Tensor lm_loss(const at::Tensor& logits, const at::Tensor& ids) {
  const double n = static_cast<double>(ids.size(0) * (ids.size(1) - 1));
  return train::cross_entropy_sum(logits, ids.narrow(1, 1, ids.size(1) - 1).reshape({-1}), -100) / n;
}

// One model with its method and optimizer, and its steps.
struct Trainee {
  bool consistency = false;
  std::shared_ptr<Model> base;
  std::shared_ptr<peft::PeftModel> peft;
  Model* model = nullptr;
  std::vector<std::pair<std::string, at::Tensor>> params;
  std::unique_ptr<train::AdamW> opt;
  int64_t total = 0, trainable = 0;
  std::vector<double> times;
  double loss_value = 0;
};

constexpr double kLr = 1e-4;

std::unique_ptr<Trainee> make_trainee(const Options& o, const std::string& method, bool consistency) {
  auto t = std::make_unique<Trainee>();
  t->consistency = consistency;
  LoadOptions lo;
  lo.init_seed = o.w.seed;
  lo.dtype = o.dtype == "bf16" ? at::kBFloat16 : at::kFloat;
  t->base = create_model(o.w.config(), lo);
  t->model = t->base.get();
  for (const auto& p : t->base->parameters()) t->total += p.numel();
  const nlohmann::json cfg = bench::method_config(method);
  if (!cfg.is_null()) {
    t->peft = peft::PeftModel::create(t->base, cfg);
    t->model = &t->peft->model();
    t->params = t->peft->trainable_parameters();
    if (o.dtype == "bf16") {
      // Frozen weights stay bf16; the trained adapter parameters are fp32 masters.
      torch::NoGradGuard no_grad;
      for (auto& [name, p] : t->params) p.set_data(p.data().to(at::kFloat));
    }
  } else {
    for (auto& item : t->base->named_parameters()) {
      item.value().set_requires_grad(method == "full");
      if (method == "full") t->params.emplace_back(item.key(), item.value());
    }
  }
  for (const auto& [name, p] : t->params) t->trainable += p.numel();
  MIXPEFT_CHECK(!t->params.empty(), ErrorKind::kInvalidArgument, "--method ", method, " trains nothing");
  t->model->train();
  train::AdamWOptions ao;
  ao.lr = kLr;
  t->opt = std::make_unique<train::AdamW>(t->params, std::vector<bool>(t->params.size(), false), ao);
  return t;
}

// One optimizer step; returns its seconds and prints its phases on stderr.
double step(Trainee& t, const Options& o, const at::Tensor& ids, const std::string& label, bool trace) {
  ModelInputs in;
  in.input_ids = ids;
  if (!t.consistency) {
    // The LM head on the positions with a target only, as the trainer.
    const auto i64 = at::TensorOptions().dtype(at::kLong);
    in.logits_rows = (at::arange(o.batch, i64).unsqueeze(1) * o.seq + at::arange(o.seq - 1, i64)).reshape({-1});
  }
  // Traced by LibTorch's profiler when asked (chrome://tracing JSON).
  std::unique_ptr<torch::autograd::profiler::RecordProfile> recorder;
  if (trace) recorder = std::make_unique<torch::autograd::profiler::RecordProfile>(o.profile);
  // Each phase's end, for the step line.
  std::vector<std::pair<const char*, std::chrono::steady_clock::time_point>> marks;
  const auto t0 = std::chrono::steady_clock::now();
  const auto mark = [&](const char* phase) { marks.emplace_back(phase, std::chrono::steady_clock::now()); };
  rusage ru0{};  // minor page faults: memory the step had to fault in afresh
  getrusage(RUSAGE_SELF, &ru0);
  t.opt->zero_grad();
  at::Tensor loss;
  {
    train::AutocastGuard autocast(o.autocast);
    train::Bf16Guard bf16(o.bf16, c10::Device(c10::kCPU));
    at::Tensor logits = t.model->forward(in).logits;
    mark("forward");
    if (!t.consistency) {
      loss = lm_loss(logits, ids);
      mark("loss");
    } else {
      at::Tensor logits2 = t.model->forward(in).logits;
      mark("forward");
      // As the trainer: both terms in one function over the two [B, T, V] logits.
      auto [ce, kl] = train::causal_lm_loss_sum_and_consistency(logits, logits2, ids, -100);
      loss = ce / static_cast<double>(o.batch * (o.seq - 1)) + kl / static_cast<double>(o.seq);
      mark("loss+kl");
    }
  }
  loss.backward();
  mark("backward");
  t.opt->step(kLr);
  mark("adamw");
  t.loss_value = loss.item<double>();
  const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::string phases;
  auto from = t0;
  for (const auto& [phase, at] : marks) {
    phases += (phases.empty() ? "" : ", ") + std::string(phase) + " " +
              std::to_string(static_cast<int>(std::chrono::duration<double, std::milli>(at - from).count()));
    from = at;
  }
  rusage ru1{};
  getrusage(RUSAGE_SELF, &ru1);
  std::fprintf(stderr, "%s: %.3f s (ms: %s), loss %.4f, %ld minor faults\n", label.c_str(), dt, phases.c_str(),
               t.loss_value, ru1.ru_minflt - ru0.ru_minflt);
  return dt;
}

int run(const Options& o) {
  bench::warn_coretype();
  prefer_avx512_kernels();
  set_num_threads(o.w.threads);
  use_caching_cpu_allocator();
  auto subject = make_trainee(o, o.method, o.consistency);
  std::unique_ptr<Trainee> against;
  if (!o.against.empty()) against = make_trainee(o, o.against, false);
  // What mixpeft train --bf16 holds for the whole run (the bf16 weight copies
  // live as long as it does); each step nests another, as the trainer's do.
  nn::Bf16MatmulGuard bf16_run(o.bf16);
  MIXPEFT_CHECK(!o.bf16 || bf16_run.enabled(), ErrorKind::kUnsupported, "--bf16 needs oneDNN's bf16 GEMM (",
                cpu_bf16_gemm_backend(), ")");

  auto gen = at::make_generator<at::CPUGeneratorImpl>(o.w.seed + 1);
  const at::Tensor ids = at::randint(o.w.vocab, {o.batch, o.seq}, gen, at::TensorOptions().dtype(at::kLong));
  std::vector<double> ratios;
  for (int64_t s = 0; s < o.warmup + o.steps; ++s) {
    const bool last = s == o.warmup + o.steps - 1;
    const std::string n = std::to_string(s);
    // With --against, each pair of steps runs back to back: that method's, then this one's.
    const double base_s = against ? step(*against, o, ids, "step " + n + " " + o.against, false) : 0.0;
    const double dt = step(*subject, o, ids, "step " + n + (against ? " " + o.method : ""),
                           last && !o.profile.empty());
    if (s < o.warmup) continue;
    subject->times.push_back(dt);
    if (against) {
      against->times.push_back(base_s);
      ratios.push_back(dt / base_s);
    }
  }
  const auto& times = subject->times;
  const int64_t total = subject->total, trainable = subject->trainable;
  const double loss_value = subject->loss_value;
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
  if (against) {
    out["against"] = o.against;
    out["against_step_s"] = against->times;
    out["against_median_step_s"] = bench::median(against->times);
    out["ratio_per_pair"] = ratios;
    out["median_ratio"] = bench::median(ratios);
  }
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
  app.add_option("--against", o.against,
                 "also train this method (same options, no consistency term) on a model of its own, one step before "
                 "each step, and report each pair's ratio: drift of the machine's speed cancels out");
  o.w.add_options(app);
  CLI11_PARSE(app, argc, argv);
  try {
    return run(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "train_bench: %s\n", e.what());
    return 1;
  }
}
