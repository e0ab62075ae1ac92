// What the performance benchmarks share (docs/PERFORMANCE.md): the
// GPT-2-small-shaped workload of issue 7, the PEFT configs by short name,
// a median, and the process's peak resident memory.
#pragma once

#include <sys/resource.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "mixpeft/error.h"

namespace mixpeft::bench {

// GPT2LMHeadModel with GPT-2 small's shape by default (12 layers, d 768,
// 12 heads, vocabulary 50257, 1024 positions); random weights. HF's
// GPT2Config defaults otherwise (gelu_new, layer_norm_epsilon 1e-5).
inline nlohmann::json gpt2_config(int64_t layers, int64_t hidden, int64_t heads, int64_t vocab) {
  return {{"model_type", "gpt2"},
          {"architectures", {"GPT2LMHeadModel"}},
          {"vocab_size", vocab},
          {"n_positions", 1024},
          {"n_embd", hidden},
          {"n_layer", layers},
          {"n_head", heads},
          {"activation_function", "gelu_new"},
          {"layer_norm_epsilon", 1e-5},
          {"initializer_range", 0.02}};
}

// The model shape, seed and threads every benchmark takes, with their options.
struct Workload {
  int threads = 2;
  int64_t layers = 12, hidden = 768, heads = 12, vocab = 50257;
  uint64_t seed = 0;
  nlohmann::json config() const { return gpt2_config(layers, hidden, heads, vocab); }
  void add_options(CLI::App& app) {
    app.add_option("--threads", threads, "intra-op threads")->capture_default_str();
    app.add_option("--layers", layers, "model depth")->capture_default_str();
    app.add_option("--hidden", hidden, "model width")->capture_default_str();
    app.add_option("--heads", heads, "attention heads")->capture_default_str();
    app.add_option("--vocab", vocab, "vocabulary size")->capture_default_str();
    app.add_option("--seed", seed, "weights and tokens")->capture_default_str();
  }
};

// The adapter config of a method name, as issue 7 fixes them: LoRA r 8,
// alpha 16 on c_attn, dropout 0; AdaMix with 4 experts (LoRA experts on
// c_attn, or bottleneck adapters of 16 after attention and FFN); MoSLoRA
// the same LoRA with its mixer. "full" and "none" have no adapter (null).
inline nlohmann::json method_config(const std::string& method) {
  const nlohmann::json lora{{"r", 8}, {"lora_alpha", 16}, {"lora_dropout", 0.0}, {"target_modules", {"c_attn"}}};
  nlohmann::json c;
  if (method == "lora") {
    c = lora;
    c["peft_type"] = "LORA";
  } else if (method == "moslora") {
    c = lora;
    c["peft_type"] = "MOSLORA";
  } else if (method == "adamix-lora") {
    c = lora;
    c["peft_type"] = "ADAMIX";
    c["variant"] = "lora";
    c["num_experts"] = 4;
  } else if (method == "adamix-adapter") {
    c = {{"peft_type", "ADAMIX"}, {"variant", "adapter"}, {"num_experts", 4}, {"bottleneck_size", 16}};
  } else if (method == "houlsby") {
    c = {{"peft_type", "BOTTLENECK"}, {"bottleneck_size", 16}};
  } else if (method != "full" && method != "none") {
    fail(ErrorKind::kInvalidArgument, "unknown --method \"", method,
         "\" (lora, moslora, adamix-lora, adamix-adapter, houlsby, full, none)");
  }
  return c;
}

inline double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// Peak resident set size of this process so far, in MiB.
inline double peak_rss_mib() {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_maxrss) / 1024.0;
}

// OPENBLAS_CORETYPE=Haswell halves fp32 GEMM on AVX-512 CPUs: say so when set.
inline void warn_coretype() {
  if (const char* c = std::getenv("OPENBLAS_CORETYPE"))
    std::fprintf(stderr, "warning: OPENBLAS_CORETYPE=%s is set; benchmarks expect it unset\n", c);
}

}  // namespace mixpeft::bench
