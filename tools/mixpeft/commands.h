// The `mixpeft` subcommands and the global options they share.
//
// Adding a subcommand `foo`:
//   1. write tools/mixpeft/cmd_foo.cc defining
//        void mixpeft::cli::add_foo_command(CLI::App& app)
//      which calls app.add_subcommand("foo", "...") and sets its callback;
//   2. add `X(foo)` to MIXPEFT_CLI_COMMANDS below.
// CMake picks up every cmd_*.cc (CONFIGURE_DEPENDS glob); the list below is
// the registry: a name without its file fails to link, and a file missing
// from the list is never registered.
//
// A command's callback runs after the global options are applied (threads
// set, --device parsed). It reports failure by throwing mixpeft::Error; main
// turns that into `mixpeft: <kind>: <message>` and exit code 1.
//
// This header is kept free of <CLI/CLI.hpp> so it stays cheap to include.
#pragma once

#include <string>

#include <c10/core/Device.h>

namespace CLI {
class App;
}

// The subcommands in the order `mixpeft --help` lists them: one line each,
// ending in a backslash.
#define MIXPEFT_CLI_COMMANDS(X)                                           \
  X(env)          /* cmd_env.cc: versions, CPU, BLAS, threads, GEMM speed */    \
  X(inspect)      /* cmd_inspect.cc: what a model, adapter or file holds */      \
  X(check)        /* cmd_check.cc: outputs against a Hugging Face dump */        \
  X(tokenize)     /* cmd_tokenize.cc: token ids of a text */                     \
  X(tokenizer)    /* cmd_tokenizer.cc: train a byte-level BPE tokenizer */       \
  X(generate)     /* cmd_generate.cc: continue a prompt (KV cache, sampling) */  \
  X(init_adapter) /* cmd_init_adapter.cc: a fresh adapter and its cost */        \
  X(train)        /* cmd_train.cc: fine-tune as a job file says */               \
  X(pretrain)     /* cmd_pretrain.cc: train a model from scratch */              \
  X(eval)         /* cmd_eval.cc: metrics of an adapter or model on a split */   \
  X(report)       /* cmd_report.cc: a table (and chart) over finished runs */    \
  X(merge)        /* cmd_merge.cc: fold an adapter into the base, save HF */     \
  X(export)       /* cmd_export.cc: an adapter as HF PEFT LoRA */     \
  X(convert)      /* cmd_convert.cc: re-save a model in another dtype */         \
  X(serve)        /* cmd_serve.cc: HTTP/JSON classify and generate for profiles */ \
  /* end of list */

namespace mixpeft::cli {

struct GlobalOptions {
  // --threads N: LibTorch intra-op (and OpenMP) threads. Default 0 = every
  // core this process may run on. Fewer leaves cores for other work; more
  // than the cores oversubscribes them and slows every matrix multiply.
  int threads = 0;
  // --device cpu|cuda|cuda:N, default cpu. "cuda" needs a CUDA build of
  // LibTorch; the Debian one is CPU-only, so it fails with exit code 1.
  std::string device_spec = "cpu";
  // device_spec parsed by mixpeft::parse_device, set before any command runs.
  c10::Device device{c10::kCPU};
};

// The process's global options, filled in by main before a command runs.
GlobalOptions& global_options();

#define MIXPEFT_CLI_DECLARE(name) void add_##name##_command(CLI::App& app);
MIXPEFT_CLI_COMMANDS(MIXPEFT_CLI_DECLARE)
#undef MIXPEFT_CLI_DECLARE

// Registers every command in MIXPEFT_CLI_COMMANDS on `app`.
void add_all_commands(CLI::App& app);

}  // namespace mixpeft::cli
