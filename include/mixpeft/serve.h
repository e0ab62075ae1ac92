// `mixpeft serve`: an HTTP/JSON server that answers classify and generate
// requests for many adapter profiles on one frozen model (docs/SERVING.md).
// Torch-free and free of the HTTP library's header: the model side is a
// Backend (src/serve/backend.h makes the LibTorch one), the HTTP side lives
// in src/serve/server.cc.
//
//   using namespace mixpeft::serve;
//   ProfileStore store("profiles.db");
//   auto backend = make_torch_backend({...}, store);   // src/serve/backend.h
//   Server server(ServerOptions{}, store, *backend);
//   int port = server.bind();          // 0 in options.port: a free port
//   server.run();                      // blocks until stop() (any thread)
//
// Endpoints (JSON bodies; errors are {"error": {"code": "...", "message": "..."}}):
//   GET    /health                  {"status": "ok", "profiles": N, ...}
//   GET    /metrics                 Prometheus text format
//   POST   /v1/profiles             create (auth); 201, 409 when the name exists
//   GET    /v1/profiles?after=&limit=   list (auth), name order, paged
//   GET    /v1/profiles/{name}      everything but the tensors (auth)
//   DELETE /v1/profiles/{name}      (auth)
//   POST   /v1/classify             {"profile", "text" | "texts" | "input_ids"}
//   POST   /v1/generate             {"profile", "prompt" | "input_ids", "max_new_tokens", ..., "stream"}
#pragma once

#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "mixpeft/profile_store.h"

namespace mixpeft::serve {

struct ServerOptions {
  std::string host = "127.0.0.1";  // loopback by default: expose it on purpose
  int port = 8080;                 // 0 = any free port (bind() returns it)
  // Bearer token for the profile-management endpoints ("" = no
  // authentication). Inference, /health and /metrics stay open.
  std::string token;
  int64_t max_body_bytes = 64 << 20;  // larger bodies: 413 (profile uploads are base64, 4/3 of the tensors)
  int64_t max_seq_len = 512;          // tokens per input row (prompt + new tokens for generate): 400 beyond
  int64_t max_batch = 32;             // rows (texts) in one request: 400 beyond
  int64_t max_new_tokens = 256;       // generate's max_new_tokens limit: 400 beyond
  // Inference requests admitted at once (running or waiting for the model);
  // one more is answered 503 with Retry-After. Bounds memory and latency.
  int64_t max_queue = 64;
  // Batching of classify and of generate requests (src/serve/batcher.h,
  // one queue each): the first waiting request waits up to batch_window_us
  // for others, then up to max_batch_rows rows of any profiles run as one
  // forward pass (one generation). A longer window makes larger batches
  // (throughput) at the price of latency.
  int64_t batch_window_us = 2000;
  int64_t max_batch_rows = 32;  // at least max_batch
  int threads = 8;  // HTTP worker threads (each holds one connection)
};

// Inference requests as the server parsed and checked them (fields present,
// of the right types, within the limits).
struct ClassifyRequest {
  std::string profile;
  std::vector<std::string> texts;                // from "text" or "texts"; or
  std::vector<std::vector<int64_t>> input_ids;   // token ids, one row per input
};
struct ClassifyResult {
  std::vector<std::vector<float>> logits;  // [rows][num_labels]
  std::vector<int64_t> labels;             // argmax per row
  std::vector<std::string> label_names;    // id2label of the argmax ("" when the model has none)
};
// One classify request in a batch, and what became of it: a result, or the
// error it alone failed with (its profile could not be applied, ...).
struct ClassifyItem {
  ProfileMeta meta;
  ClassifyRequest request;
};
struct ClassifyOutcome {
  ClassifyResult result;
  std::exception_ptr error;
};

struct GenerateRequest {
  std::string profile;
  std::string prompt;            // text; or
  std::vector<int64_t> input_ids;
  int64_t max_new_tokens = 16;
  double temperature = 0.0;      // 0 = greedy
  int64_t top_k = 0;
  double top_p = 1.0;
  uint64_t seed = 0;
  // Streaming: called with each new token as it is generated (from the
  // thread running generate). Empty = not streaming.
  std::function<void(int64_t token)> on_token;
  // Asked after each new token (same thread); true (the client went away)
  // ends this request's generation with finish reason "cancelled", while the
  // other requests of its batch go on. Empty = never.
  std::function<bool()> cancelled;
};
struct GenerateResult {
  std::vector<int64_t> tokens;  // new tokens
  std::string text;             // their decoding ("" without a tokenizer)
  std::string finish_reason;    // "stop", "length" or "cancelled"
};

// One generate request in a batch, and what became of it.
struct GenerateItem {
  ProfileMeta meta;
  GenerateRequest request;
};
struct GenerateOutcome {
  GenerateResult result;
  std::exception_ptr error;
};

struct BackendStats {
  int64_t cache_hits = 0, cache_misses = 0, cache_evictions = 0;
  int64_t cache_entries = 0, cache_bytes = 0, cache_capacity_bytes = 0;
};

// The model side of the server. Methods may be called from any HTTP thread
// at once; the implementation serialises what must be. Errors are
// mixpeft::Error and become statuses: kInvalidArgument 400 (a wrong task, a
// token id out of range, ...), kNotFound 404, kUnsupported 422, anything else 500.
class Backend {
 public:
  virtual ~Backend() = default;
  // One forward pass over the rows of every item, each row with its own
  // profile's adapters; one outcome per item, in order. `meta` is the profile
  // as the store had it when the request arrived (name, kind, config, version).
  virtual std::vector<ClassifyOutcome> classify_batch(const std::vector<ClassifyItem>& items) = 0;
  // Generates for every item, each row with its own profile's adapters; one
  // outcome per item, in order. All share one generation, each row with its
  // own sampling settings and random generator, which gives each request the
  // tokens it gets alone.
  virtual std::vector<GenerateOutcome> generate_batch(const std::vector<GenerateItem>& items) = 0;
  // Every check generate() makes before it starts (task, profile, prompt),
  // without generating: a streamed answer has sent its status before the
  // first token, so its errors must come out here.
  virtual void check_generate(const ProfileMeta& meta, const GenerateRequest& request) = 0;
  // Checks, before the store keeps it, that this server can apply `profile`
  // (its method, its bank, its base model's shapes): kInvalidArgument or
  // kUnsupported naming the problem. Called after check_profile().
  virtual void check_servable(const Profile& profile) = 0;
  // Drops what is cached for `name` (after a delete); new versions miss the
  // cache anyway.
  virtual void forget(const std::string& name) = 0;
  virtual BackendStats stats() const = 0;
  // For /health: the model folder, its task ("classify" | "generate"), ...
  virtual std::string describe_json() const = 0;
};

class Server {
 public:
  Server(const ServerOptions& options, ProfileStore& store, Backend& backend);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds options.host:options.port (a free port when 0) and returns the
  // port. kIO when the address cannot be bound.
  int bind();
  // Serves until stop(); requests in flight finish first. Call bind() first.
  void run();
  // Safe from any thread (not from a signal handler: use a thread that waits
  // for the signal, as `mixpeft serve` does).
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Strict base64 (RFC 4648, with padding; whitespace is not allowed):
// kInvalidArgument naming `where` and the offset of the first bad character.
std::string base64_decode(const std::string& text, const std::string& where);
std::string base64_encode(const std::string& bytes);

}  // namespace mixpeft::serve
