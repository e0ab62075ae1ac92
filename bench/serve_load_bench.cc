// Load test of `mixpeft serve`'s server and LibTorch backend, in one process
// over real HTTP on 127.0.0.1: N concurrent clients send classify requests
// spread over M profiles; prints throughput, p50/p99 latency, and the bytes
// per profile in the store and in the adapter cache, for X-PEFT and LoRA.
//
//   build/bench/serve_load_bench --model tests/data/fixtures/bert_cls --clients 8 --requests 2000
//   build/bench/serve_load_bench --shape bert-base --threads 2 --requests 400 --profiles 1000
//
// Profiles are random (seeded) adapters made with PeftModel::create; one run
// measures 1 profile and then M mixed profiles for each kind. --shape
// bert-base serves a BERT-base-shaped classifier (12 layers, hidden 768,
// 110M parameters) with random weights instead of a model folder.
#include <httplib.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <thread>

#include <torch/torch.h>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "mixpeft/peft.h"
#include "mixpeft/runtime.h"
#include "mixpeft/safetensors.h"
#include "mixpeft/serve.h"
#include "serve/backend.h"

namespace {

using json = nlohmann::json;
using namespace mixpeft;
namespace fs = std::filesystem;

struct BenchOptions {
  std::string model = "tests/data/fixtures/bert_cls";
  std::string shape;  // "bert-base": a random model of that shape instead of `model`
  int threads = 1;
  int clients = 8;
  int requests = 2000;  // per measurement, after `warmup`
  int warmup = 200;
  int profiles = 1000;
  int64_t window_us = 2000;
  int seq_len = 16;
};

// BertForSequenceClassification in BERT-base's shape (HF's BertConfig
// defaults), 2 labels; random weights.
json bert_base_config() {
  return {{"architectures", {"BertForSequenceClassification"}},
          {"model_type", "bert"},
          {"hidden_size", 768},
          {"num_hidden_layers", 12},
          {"num_attention_heads", 12},
          {"intermediate_size", 3072},
          {"hidden_act", "gelu"},
          {"hidden_dropout_prob", 0.0},
          {"attention_probs_dropout_prob", 0.0},
          {"max_position_embeddings", 512},
          {"type_vocab_size", 2},
          {"vocab_size", 30522},
          {"layer_norm_eps", 1e-12},
          {"initializer_range", 0.02},
          {"pad_token_id", 0},
          {"id2label", {{"0", "LABEL_0"}, {"1", "LABEL_1"}}},
          {"label2id", {{"LABEL_0", 0}, {"LABEL_1", 1}}}};
}

// One profile: `peft`'s trainable tensors drawn afresh from `seed`.
serve::Profile random_profile(peft::PeftModel& peft, const std::string& name, const json& config, uint64_t seed,
                              const std::string& dir) {
  torch::manual_seed(seed);
  {
    torch::NoGradGuard no_grad;
    for (auto& [n, t] : peft.trainable_parameters()) t.normal_(0.0, 0.3);
  }
  peft.save(dir);
  serve::Profile p;
  p.name = name;
  p.kind = config["peft_type"];
  p.config = io::read_file(dir + "/adapter_config.json");
  p.tensors = io::read_file(dir + "/adapter_model.safetensors");
  return p;
}

double percentile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[std::min(v.size() - 1, size_t(q * double(v.size())))];
}

// A counter or a histogram's _sum / _count from the server's /metrics.
double metric(int port, const std::string& name) {
  httplib::Client c("127.0.0.1", port);
  auto r = c.Get("/metrics");
  if (!r) return 0;
  const auto at = r->body.find("\n" + name + " ");
  return at == std::string::npos ? 0 : std::stod(r->body.substr(at + name.size() + 2));
}

void measure(const BenchOptions& o, int port, const std::vector<std::string>& names, const std::string& label) {
  auto one = [&](int client, int i, std::vector<double>* lat) {
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(120, 0);
    const std::string& name = names[size_t(client * 7919 + i * 104729) % names.size()];
    std::vector<int64_t> ids;
    for (int k = 0; k < o.seq_len; ++k) ids.push_back(5 + (client * 31 + i * 17 + k * 13) % 200);
    const std::string body = json{{"profile", name}, {"input_ids", {ids}}}.dump();
    const auto start = std::chrono::steady_clock::now();
    auto r = c.Post("/v1/classify", body, "application/json");
    if (!r || r->status != 200) {
      std::fprintf(stderr, "request failed: %s\n", r ? r->body.c_str() : httplib::to_string(r.error()).c_str());
      std::exit(1);
    }
    if (lat) lat->push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  };
  auto run = [&](int per_client, bool record, std::vector<double>* all) {
    std::vector<std::vector<double>> lat(size_t(o.clients));
    std::vector<std::thread> threads;
    for (int c = 0; c < o.clients; ++c)
      threads.emplace_back([&, c] {
        for (int i = 0; i < per_client; ++i) one(c, i + (record ? 1000000 : 0), record ? &lat[size_t(c)] : nullptr);
      });
    for (auto& t : threads) t.join();
    for (auto& l : lat) all->insert(all->end(), l.begin(), l.end());
  };
  std::vector<double> all;
  run(std::max(1, o.warmup / o.clients), false, &all);
  const double rows0 = metric(port, "mixpeft_serve_batch_rows_sum"), batches0 = metric(port, "mixpeft_serve_batch_rows_count");
  const auto start = std::chrono::steady_clock::now();
  run(std::max(1, o.requests / o.clients), true, &all);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double batches = metric(port, "mixpeft_serve_batch_rows_count") - batches0;
  std::printf("%-28s %6zu req  %8.1f req/s  p50 %8.2f ms  p99 %8.2f ms  %4.1f rows/batch\n", label.c_str(), all.size(),
              double(all.size()) / secs, 1e3 * percentile(all, 0.5), 1e3 * percentile(all, 0.99),
              batches > 0 ? (metric(port, "mixpeft_serve_batch_rows_sum") - rows0) / batches : 0.0);
}

// The model side alone, no HTTP: the median time of classify_batch on a
// batch of `clients` one-row items, all of profile p0 or each of its own.
void measure_direct(const BenchOptions& o, serve::Backend& backend, serve::ProfileStore& store, bool mixed,
                    const std::string& label) {
  std::vector<serve::ClassifyItem> items;
  for (int c = 0; c < o.clients; ++c) {
    serve::ClassifyItem it;
    it.request.profile = mixed ? "p" + std::to_string(c % o.profiles) : "p0";
    it.meta = store.get_meta(it.request.profile);
    std::vector<int64_t> ids;
    for (int k = 0; k < o.seq_len; ++k) ids.push_back(5 + (c * 31 + k * 13) % 200);
    it.request.input_ids = {ids};
    items.push_back(it);
  }
  std::vector<double> times;
  for (int i = 0; i < 12; ++i) {
    const auto start = std::chrono::steady_clock::now();
    auto out = backend.classify_batch(items);
    if (i >= 2) times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    for (const auto& x : out)
      if (x.error) std::rethrow_exception(x.error);
  }
  std::printf("%-28s classify_batch of %d rows, no HTTP: median %.2f ms (10 calls)\n", label.c_str(), o.clients,
              1e3 * percentile(times, 0.5));
}

}  // namespace

int main(int argc, char** argv) {
  BenchOptions o;
  CLI::App app("Load test of mixpeft serve (classify)");
  app.add_option("--model", o.model, "Sequence-classification model folder (default the bert_cls fixture)");
  app.add_option("--shape", o.shape, "Serve a random model of this shape instead: bert-base")
      ->check(CLI::IsMember({"bert-base"}));
  app.add_option("--threads", o.threads, "Torch threads of the backend (default 1)")->check(CLI::PositiveNumber);
  app.add_option("--clients", o.clients, "Concurrent clients (default 8)");
  app.add_option("--requests", o.requests, "Measured requests per row of the table (default 2000)");
  app.add_option("--warmup", o.warmup, "Requests before measuring (default 200)");
  app.add_option("--profiles", o.profiles, "Profiles in the mixed measurement (default 1000)");
  app.add_option("--batch-window-us", o.window_us, "Server batching window (default 2000)");
  app.add_option("--seq-len", o.seq_len, "Tokens per request (default 16)");
  CLI11_PARSE(app, argc, argv);
  prefer_avx512_kernels();
  set_num_threads(o.threads);
  use_caching_cpu_allocator();

  const std::string tmp = (fs::temp_directory_path() / ("serve_load_bench_" + std::to_string(getpid()))).string();
  fs::create_directories(tmp);
  if (o.shape == "bert-base") {
    LoadOptions lo;
    lo.init_seed = 1;
    auto model = create_model(bert_base_config(), lo);
    o.model = tmp + "/bert-base";
    save_model(*model, o.model);
  }
  const json head = json::array({"classifier"});
  const std::vector<std::pair<std::string, json>> kinds = {
      {"X-PEFT", {{"peft_type", "XPEFT"}, {"num_adapters", 16}, {"bottleneck_size", 16}, {"hard", true}, {"top_k", 4},
                  {"modules_to_save", head}}},
      {"LoRA r=8", {{"peft_type", "LORA"}, {"r", 8}, {"target_modules", {"query", "value"}}, {"modules_to_save", head}}},
  };
  std::printf("model %s, %d clients, %d-token rows, window %lld us, %d torch thread(s)\n",
              o.shape.empty() ? o.model.c_str() : (o.shape + " (random weights)").c_str(), o.clients, o.seq_len,
              static_cast<long long>(o.window_us), o.threads);
  for (const auto& [label, config] : kinds) {
    const std::string db = tmp + "/" + std::to_string(label.size()) + ".db";
    serve::ProfileStore store(db);
    // Every profile its own random adapter (seeded by its index).
    auto peft = peft::PeftModel::create(load_model(o.model), config);
    std::vector<serve::Profile> batch;
    for (int i = 0; i < o.profiles; ++i) {
      batch.push_back(random_profile(*peft, "p" + std::to_string(i), config, uint64_t(i) + 1, tmp + "/adapter"));
      if (batch.size() == 100) store.put_many(batch), batch.clear();
    }
    if (!batch.empty()) store.put_many(batch);
    peft.reset();
    serve::BackendOptions bo;
    bo.model_dir = o.model;
    bo.cache_bytes = int64_t(4) << 30;
    auto backend = serve::make_torch_backend(bo, store);
    serve::ServerOptions so;
    so.port = 0;
    so.batch_window_us = o.window_us;
    so.max_queue = 4 * o.clients;
    so.threads = o.clients + 2;
    serve::Server server(so, store, *backend);
    const int port = server.bind();
    std::thread srv([&] { server.run(); });
    measure_direct(o, *backend, store, false, label + ", 1 profile");
    measure_direct(o, *backend, store, true, label + ", " + std::to_string(std::min(o.clients, o.profiles)) + " profiles");
    measure(o, port, {"p0"}, label + ", 1 profile");
    std::vector<std::string> names;
    for (int i = 0; i < o.profiles; ++i) names.push_back("p" + std::to_string(i));
    // Materialise every profile once first: the measurement is of a warm
    // cache, as a server that has run a while has.
    const auto cold = std::chrono::steady_clock::now();
    {
      httplib::Client c("127.0.0.1", port);
      c.set_read_timeout(120, 0);
      for (const auto& n : names) c.Post("/v1/classify", json{{"profile", n}, {"input_ids", {{5, 6, 7}}}}.dump(), "application/json");
    }
    std::printf("%-28s first request of each profile (materialising): %.2f ms on average\n", label.c_str(),
                1e3 * std::chrono::duration<double>(std::chrono::steady_clock::now() - cold).count() / double(names.size()));
    measure(o, port, names, label + ", " + std::to_string(o.profiles) + " profiles");
    const auto stats = backend->stats();
    std::printf("%-28s store %lld B/profile (tensors), file + WAL %lld B/profile; cache %lld B/profile materialised\n",
                label.c_str(), static_cast<long long>(store.total_bytes() / store.count()),
                static_cast<long long>((fs::file_size(db) + (fs::exists(db + "-wal") ? fs::file_size(db + "-wal") : 0)) /
                                       uint64_t(store.count())),
                static_cast<long long>(stats.cache_entries ? stats.cache_bytes / stats.cache_entries : 0));
    server.stop();
    srv.join();
  }
  fs::remove_all(tmp);
  return 0;
}
