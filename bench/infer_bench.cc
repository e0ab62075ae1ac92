// Inference cost of the PEFT methods on issue 7's GPT-2-small-shaped model
// (random weights): the forward time of batch 8 x 128 for the base model,
// the method merged into the base weights, and unmerged; and generation
// tokens/s with the KV cache (greedy, fixed length) at batch 1 and 8.
// Prints one JSON line per measurement.
//
//   OPENBLAS_CORETYPE= build/bench/infer_bench --method lora --threads 2
//   build/bench/infer_bench --method adamix-lora --modes base,merged
//   build/bench/infer_bench --method none --modes generate
//
// Modes: base (no adapter), merged (merge(): LoRA, MoSLoRA and AdaMix-LoRA
// fold into the weights), unmerged (the adapter computed beside the frozen
// layer), generate (the --method merged when it can merge, else as it is).
// Each forward mode has its own model; their passes are interleaved and each
// mode's "median_ratio_to_base" is the median of per-iteration ratios, so
// the machine's drifts largely cancel.
#include <chrono>
#include <cstdio>
#include <sstream>

#include <ATen/ATen.h>
#include <torch/torch.h>

#include <CLI/CLI.hpp>

#include "bench/perf_common.h"
#include "core/gemm.h"
#include "mixpeft/generate.h"
#include "mixpeft/model.h"
#include "mixpeft/peft.h"
#include "mixpeft/runtime.h"

using namespace mixpeft;

namespace {

struct Options {
  std::string method = "lora";
  std::string modes = "base,merged,unmerged,generate";
  std::string dtype = "fp32";
  int64_t batch = 8, seq = 128, warmup = 2, iters = 10;
  int64_t prompt = 32, new_tokens = 64;
  bench::Workload w;
};

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

nlohmann::json common(const Options& o, const std::string& mode) {
  return {{"bench", mode == "generate" ? "generate" : "forward"}, {"impl", "mixpeft"}, {"method", o.method},
          {"mode", mode}, {"dtype", o.dtype}, {"threads", o.w.threads}, {"layers", o.w.layers},
          {"gemm", cpu_gemm_backend()}};
}

void generate_bench(const Options& o, Model& model, int64_t batch) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(o.w.seed + 2);
  at::Tensor ids = at::randint(o.w.vocab, {batch, o.prompt}, gen, at::TensorOptions().dtype(at::kLong));
  std::vector<std::vector<int64_t>> prompts(static_cast<size_t>(batch));
  for (int64_t b = 0; b < batch; ++b) {
    auto row = ids[b];
    prompts[static_cast<size_t>(b)].assign(row.data_ptr<int64_t>(), row.data_ptr<int64_t>() + o.prompt);
  }
  GenerateOptions go;
  go.max_new_tokens = o.new_tokens;
  std::vector<double> times;
  const int64_t runs = std::max<int64_t>(1, o.iters / 2);
  for (int64_t i = 0; i < 1 + runs; ++i) {
    const auto t0 = Clock::now();
    auto result = generate(model, prompts, go);
    const double dt = seconds_since(t0);
    for (const auto& t : result.tokens)
      MIXPEFT_CHECK(static_cast<int64_t>(t.size()) == o.new_tokens, ErrorKind::kInternal,
                    "generate stopped early: ", t.size(), " tokens");
    if (i >= 1) times.push_back(dt);
  }
  auto out = common(o, "generate");
  out["batch"] = batch;
  out["prompt_tokens"] = o.prompt;
  out["new_tokens"] = o.new_tokens;
  out["run_s"] = times;
  out["median_run_s"] = bench::median(times);
  out["tokens_per_s"] = static_cast<double>(batch * o.new_tokens) / bench::median(times);
  out["peak_rss_mib"] = bench::peak_rss_mib();
  std::printf("%s\n", out.dump().c_str());
  std::fflush(stdout);
}

// A model with the method attached (nonzero adapter weights, so nothing is
// skipped as a zero update), merged or not; null for --method none.
std::shared_ptr<peft::PeftModel> with_method(const Options& o, const LoadOptions& lo, bool merge) {
  const nlohmann::json cfg = bench::method_config(o.method);
  if (cfg.is_null()) return nullptr;
  auto peft = peft::PeftModel::create(create_model(o.w.config(), lo), cfg);
  {
    torch::NoGradGuard no_grad;
    auto g = at::make_generator<at::CPUGeneratorImpl>(o.w.seed + 3);
    for (auto& [name, p] : peft->trainable_parameters()) p.normal_(0.0, 0.02, g);
  }
  peft->model().eval();
  if (merge) {
    MIXPEFT_CHECK(peft->method().mergeable(), ErrorKind::kUnsupported, o.method, " does not merge");
    peft->merge();
  }
  return peft;
}

// Forward passes of the models in `modes`, interleaved (each iteration runs
// every mode once, in rotated order), so that the machine's drifts hit all
// of them alike; each mode's ratio to "base" is the median of the
// per-iteration ratios.
void forward_bench(const Options& o, const std::vector<std::pair<std::string, Model*>>& models) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(o.w.seed + 1);
  ModelInputs in;
  in.input_ids = at::randint(o.w.vocab, {o.batch, o.seq}, gen, at::TensorOptions().dtype(at::kLong));
  const size_t M = models.size();
  std::vector<std::vector<double>> times(M);
  at::NoGradGuard no_grad;
  for (int64_t i = 0; i < o.warmup + o.iters; ++i) {
    for (size_t j = 0; j < M; ++j) {
      const size_t m = (j + static_cast<size_t>(i)) % M;
      const auto t0 = Clock::now();
      at::Tensor logits = models[m].second->forward(in).logits;
      const double dt = seconds_since(t0);
      if (i >= o.warmup) times[m].push_back(dt);
    }
  }
  size_t base = M;
  for (size_t m = 0; m < M; ++m)
    if (models[m].first == "base") base = m;
  for (size_t m = 0; m < M; ++m) {
    auto out = common(o, models[m].first);
    out["batch"] = o.batch;
    out["seq"] = o.seq;
    out["forward_s"] = times[m];
    out["median_forward_s"] = bench::median(times[m]);
    out["tokens_per_s"] = static_cast<double>(o.batch * o.seq) / bench::median(times[m]);
    if (base < M) {
      std::vector<double> ratios;
      for (size_t i = 0; i < times[m].size(); ++i) ratios.push_back(times[m][i] / times[base][i]);
      out["median_ratio_to_base"] = bench::median(ratios);
    }
    out["peak_rss_mib"] = bench::peak_rss_mib();
    std::printf("%s\n", out.dump().c_str());
  }
  std::fflush(stdout);
}

int run(const Options& o) {
  bench::warn_coretype();
  prefer_avx512_kernels();
  set_num_threads(o.w.threads);
  use_caching_cpu_allocator();
  LoadOptions lo;
  lo.init_seed = o.w.seed;
  lo.dtype = o.dtype == "bf16" ? at::kBFloat16 : at::kFloat;
  std::vector<std::string> modes;
  {
    std::stringstream ss(o.modes);
    for (std::string m; std::getline(ss, m, ',');) modes.push_back(m);
  }
  for (const auto& m : modes)
    MIXPEFT_CHECK(m == "base" || m == "merged" || m == "unmerged" || m == "generate", ErrorKind::kInvalidArgument,
                  "unknown mode \"", m, "\" (base, merged, unmerged, generate)");
  auto has = [&](const char* m) { return std::find(modes.begin(), modes.end(), m) != modes.end(); };

  // One model per forward mode (the same seeded base weights each).
  std::shared_ptr<Model> base;
  std::shared_ptr<peft::PeftModel> unmerged, merged;
  std::vector<std::pair<std::string, Model*>> models;
  if (has("base")) {
    base = create_model(o.w.config(), lo);
    base->eval();
    models.emplace_back("base", base.get());
  }
  if (has("unmerged") && (unmerged = with_method(o, lo, false))) models.emplace_back("unmerged", &unmerged->model());
  if (has("merged") && (merged = with_method(o, lo, true))) models.emplace_back("merged", &merged->model());
  if (!models.empty()) forward_bench(o, models);
  base.reset();
  unmerged.reset();
  merged.reset();

  if (has("generate")) {
    // The method merged when it can merge, else as it is; the base model for "none".
    std::shared_ptr<peft::PeftModel> peft;
    const nlohmann::json cfg = bench::method_config(o.method);
    std::shared_ptr<Model> plain;
    if (!cfg.is_null()) {
      peft = with_method(o, lo, false);
      if (peft->method().mergeable()) peft->merge();
    } else {
      plain = create_model(o.w.config(), lo);
      plain->eval();
    }
    Model& model = peft ? peft->model() : *plain;
    generate_bench(o, model, 1);
    generate_bench(o, model, 8);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Forward and generation cost with and without adapters (docs/PERFORMANCE.md)"};
  Options o;
  app.add_option("--method", o.method, "lora, moslora, adamix-lora, adamix-adapter, houlsby, none")
      ->capture_default_str();
  app.add_option("--modes", o.modes, "comma-separated: base, merged, unmerged, generate")->capture_default_str();
  app.add_option("--dtype", o.dtype, "fp32 or bf16 weights")
      ->check(CLI::IsMember({"fp32", "bf16"}))
      ->capture_default_str();
  app.add_option("--batch", o.batch, "forward: rows")->capture_default_str();
  app.add_option("--seq", o.seq, "forward: tokens per row")->capture_default_str();
  app.add_option("--warmup", o.warmup, "forward: untimed passes first")->capture_default_str();
  app.add_option("--iters", o.iters, "forward: timed passes (generate: half as many runs)")->capture_default_str();
  app.add_option("--prompt", o.prompt, "generate: prompt tokens")->capture_default_str();
  app.add_option("--new-tokens", o.new_tokens, "generate: tokens generated per prompt")->capture_default_str();
  o.w.add_options(app);
  CLI11_PARSE(app, argc, argv);
  try {
    return run(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "infer_bench: %s\n", e.what());
    return 1;
  }
}
