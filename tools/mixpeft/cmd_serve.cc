// mixpeft serve: answer classify / generate requests for many adapter
// profiles on one frozen model, over HTTP/JSON (docs/SERVING.md).
//
//   $ mixpeft serve --model tests/data/fixtures/bert_cls --store profiles.db --port 0
//   listening on 127.0.0.1:40123
//
// The first line on stdout is always "listening on HOST:PORT" (with the port
// chosen when --port 0), so scripts and tests can start it and read where it
// is. SIGINT / SIGTERM stop it after the requests in flight.
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <thread>

#include <CLI/CLI.hpp>

#include "commands.h"
#include "mixpeft/error.h"
#include "mixpeft/profile_store.h"
#include "mixpeft/serve.h"
#include "serve/backend.h"

namespace mixpeft::cli {
namespace {

struct ServeCliOptions {
  serve::ServerOptions server;
  serve::BackendOptions backend;
  std::string store;
  int64_t cache_mb = 256, max_body_mb = 64;
};

void run_serve(ServeCliOptions o) {
  if (o.server.token.empty())
    if (const char* t = std::getenv("MIXPEFT_SERVE_TOKEN")) o.server.token = t;
  o.backend.max_seq_len = o.server.max_seq_len;
  o.backend.cache_bytes = o.cache_mb << 20;
  o.server.max_body_bytes = o.max_body_mb << 20;
  MIXPEFT_CHECK(o.cache_mb > 0 && o.max_body_mb > 0, ErrorKind::kInvalidArgument,
                "serve: --cache-mb and --max-body-mb must be positive");

  // Signals go to a thread that waits for them, never to a handler that
  // would interrupt a worker: block them before any thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGUSR1);  // sent by this function to end the waiter
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  serve::ProfileStore store(o.store);
  auto backend = serve::make_torch_backend(o.backend, store);
  serve::Server server(o.server, store, *backend);
  const int port = server.bind();
  std::printf("listening on %s:%d\n", o.server.host.c_str(), port);
  std::fflush(stdout);
  std::cerr << "mixpeft serve: " << store.count() << " profiles in " << o.store << "; model " << o.backend.model_dir
            << (o.server.token.empty() ? "; no authentication" : "; bearer token required for /v1/profiles")
            << std::endl;

  std::atomic<bool> waited{false};
  std::thread waiter([&] {
    int sig = 0;
    sigwait(&signals, &sig);
    if (sig != SIGUSR1) std::cerr << "mixpeft serve: signal " << sig << ", stopping" << std::endl;
    waited = true;
    server.stop();
  });
  server.run();
  if (!waited) pthread_kill(waiter.native_handle(), SIGUSR1);
  waiter.join();
}

}  // namespace

void add_serve_command(CLI::App& app) {
  static ServeCliOptions o;
  auto* cmd = app.add_subcommand("serve", "Serve classify / generate for many adapter profiles over HTTP/JSON");
  cmd->add_option("--model", o.backend.model_dir, "Model folder (config.json + model.safetensors)")->required();
  cmd->add_option("--store", o.store, "Profile store (SQLite file, created if missing)")->required();
  cmd->add_option("--host", o.server.host, "Address to listen on (default 127.0.0.1: this machine only)");
  cmd->add_option("--port", o.server.port, "Port (default 8080; 0 = a free port, printed on the first line)");
  cmd->add_option("--token", o.server.token,
                  "Bearer token the profile endpoints require (default: env MIXPEFT_SERVE_TOKEN; none = open)");
  cmd->add_option("--tokenizer", o.backend.tokenizer_dir, "Tokenizer folder (default: the model folder, if it has one)");
  cmd->add_option("--bank", o.backend.bank_dir,
                  "X-PEFT bank folder every X-PEFT profile must match (default: each profile's own bank settings)");
  cmd->add_option("--cache-mb", o.cache_mb, "Bound of the materialised-adapter cache in MiB (default 256)");
  cmd->add_option("--max-body-mb", o.max_body_mb, "Largest request body in MiB (default 64)");
  cmd->add_option("--max-seq-len", o.server.max_seq_len, "Tokens per input row, prompt + new tokens (default 512)");
  cmd->add_option("--max-batch", o.server.max_batch, "Inputs in one classify request (default 32)");
  cmd->add_option("--max-batch-rows", o.server.max_batch_rows, "Rows in one forward pass (default 32)");
  cmd->add_option("--batch-window-us", o.server.batch_window_us,
                  "How long a request waits for others to share its forward pass (default 2000)");
  cmd->add_option("--max-queue", o.server.max_queue, "Inference requests in flight before 503 (default 64)");
  cmd->add_option("--max-new-tokens", o.server.max_new_tokens, "Limit of generate's max_new_tokens (default 256)");
  cmd->add_option("--http-threads", o.server.threads, "HTTP worker threads (default 8)");
  cmd->callback([] { run_serve(o); });
}

}  // namespace mixpeft::cli
