// The profile store with many X-PEFT-sized profiles: how big the file gets
// per profile and how long lookups take (docs/SERVING.md, "Profile store").
//
//   build/bench/profile_store_bench [--profiles N] [--lookups N] [--warmup N] [--db PATH]
//
// Fills a new store with N profiles (default 100000) in put_many batches of
// 1000, closes it, reports the file size, reopens it and times --lookups
// random get_meta / get / exists calls (default 10000, after --warmup calls,
// default 1000), one list page of 100 and count / total_bytes. Without --db
// the store lives in a temporary folder that is removed at the end; --db
// keeps it (the file must not exist yet).
#include <stdlib.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "mixpeft/error.h"
#include "mixpeft/profile_store.h"
#include "mixpeft/safetensors.h"

namespace {

using namespace mixpeft;
using Clock = std::chrono::steady_clock;

// Where the timed calls' results go, so the compiler cannot drop the calls.
volatile int64_t g_sink = 0;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

int64_t file_size(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 ? static_cast<int64_t>(st.st_size) : 0;
}

// An X-PEFT profile's tensors as the trainer saves them: two float32 [6, 16]
// mask-logit tensors (6 layers x 16 bank adapters), written by
// io::write_safetensors once and read back.
std::string xpeft_tensors(const std::string& dir) {
  std::vector<float> a(6 * 16), b(6 * 16);
  std::mt19937 rng(1);
  std::normal_distribution<float> normal;
  for (float& x : a) x = normal(rng);
  for (float& x : b) x = normal(rng);
  const std::string path = dir + "/adapter_model.safetensors";
  io::write_safetensors(path, {{"base_model.model.xpeft.mask_A", io::DType::kF32, {6, 16}, a.data(), a.size() * 4},
                               {"base_model.model.xpeft.mask_B", io::DType::kF32, {6, 16}, b.data(), b.size() * 4}});
  std::string bytes = io::read_file(path);
  std::filesystem::remove(path);
  return bytes;
}

std::string profile_name(int64_t i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "user-%07lld", static_cast<long long>(i));
  return buf;
}

// Runs `op` warmup times, then `n` times timing each call; prints p50 / p99.
void time_op(const char* label, int64_t n, int64_t warmup, const std::function<void()>& op) {
  for (int64_t i = 0; i < warmup; ++i) op();
  std::vector<double> us(static_cast<size_t>(n));
  for (auto& t : us) {
    Clock::time_point start = Clock::now();
    op();
    t = seconds_since(start) * 1e6;
  }
  std::sort(us.begin(), us.end());
  auto at = [&](double q) { return us[std::min(us.size() - 1, static_cast<size_t>(q * static_cast<double>(us.size())))]; };
  std::printf("%-22s p50 %8.1f us   p99 %8.1f us   (%lld calls after %lld warm-up)\n", label, at(0.50), at(0.99),
              static_cast<long long>(n), static_cast<long long>(warmup));
}

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr, "profile_store_bench: %s\nusage: profile_store_bench [--profiles N] [--lookups N] "
                       "[--warmup N] [--db PATH]\n", why);
  std::exit(2);
}

int run(int argc, char** argv) {
  int64_t profiles = 100000, lookups = 10000, warmup = 1000;
  std::string db;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage(("missing value after " + arg).c_str());
      return argv[++i];
    };
    auto count = [&]() {
      std::string v = value();
      char* end = nullptr;
      long long n = std::strtoll(v.c_str(), &end, 10);
      if (v.empty() || *end != '\0' || n < 1) usage((arg + " needs a positive integer, got \"" + v + "\"").c_str());
      return static_cast<int64_t>(n);
    };
    if (arg == "--profiles") profiles = count();
    else if (arg == "--lookups") lookups = count();
    else if (arg == "--warmup") warmup = count();
    else if (arg == "--db") db = value();
    else usage(("unknown option " + arg).c_str());
  }

  std::string tmp_dir;
  if (db.empty()) {
    std::string tmpl = (std::filesystem::temp_directory_path() / "profile-store-bench-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) fail(ErrorKind::kIO, tmpl, ": mkdtemp failed");
    tmp_dir = tmpl;
    db = tmp_dir + "/profiles.db";
  } else if (std::filesystem::exists(db)) {
    usage(("--db " + db + " exists; give a new file").c_str());
  }
  const std::string base = xpeft_tensors(tmp_dir.empty() ? std::filesystem::path(db).parent_path().string() : tmp_dir);
  const std::string config =
      R"({"peft_type": "XPEFT", "placement": "pfeiffer", "num_adapters": 16, "bottleneck_size": 64, )"
      R"("activation": "relu", "bank_checksum": "9f2c4e1a", "mask_type": "softmax", "hard": false, )"
      R"("mask_dtype": "float32"})";

  // Fill: batches of 1000 per transaction. Profiles differ in their last
  // four data bytes, so every row has its own tensors and hash.
  Clock::time_point start = Clock::now();
  {
    serve::ProfileStore store(db);
    constexpr int64_t kBatch = 1000;
    std::vector<serve::Profile> batch;
    for (int64_t i = 0; i < profiles; ++i) {
      serve::Profile p;
      p.name = profile_name(i);
      p.kind = "XPEFT";
      p.config = config;
      p.metadata = R"({"user": )" + std::to_string(i) + "}";
      p.tensors = base;
      uint32_t tag = static_cast<uint32_t>(i);
      std::memcpy(&p.tensors[p.tensors.size() - sizeof tag], &tag, sizeof tag);
      batch.push_back(std::move(p));
      if (static_cast<int64_t>(batch.size()) == kBatch || i + 1 == profiles) {
        store.put_many(batch);
        batch.clear();
      }
    }
  }  // closing checkpoints the WAL into the file and removes it
  double fill_s = seconds_since(start);
  const int64_t size = file_size(db) + file_size(db + "-wal");
  std::printf("profiles               %lld X-PEFT profiles: tensors %zu B (two F32 [6, 16]), config %zu B\n",
              static_cast<long long>(profiles), base.size(), config.size());
  std::printf("fill                   %.1f s in put_many batches of 1000 (%.0f profiles/s)\n", fill_s,
              static_cast<double>(profiles) / fill_s);
  std::printf("file                   %lld B, %.0f B per profile\n", static_cast<long long>(size),
              static_cast<double>(size) / static_cast<double>(profiles));

  start = Clock::now();
  serve::ProfileStore store(db);
  std::printf("reopen                 %.1f ms\n", seconds_since(start) * 1e3);
  std::mt19937_64 rng(42);
  std::uniform_int_distribution<int64_t> pick(0, profiles - 1);
  int64_t sink = 0;  // keeps the results alive
  time_op("get_meta (random)", lookups, warmup, [&] { sink += store.get_meta(profile_name(pick(rng))).bytes; });
  time_op("get (random)", lookups, warmup, [&] { sink += static_cast<int64_t>(store.get(profile_name(pick(rng))).tensors.size()); });
  time_op("exists (random)", lookups, warmup, [&] { sink += store.exists(profile_name(pick(rng))); });
  time_op("list 100 (random)", std::max<int64_t>(1, lookups / 10), std::max<int64_t>(1, warmup / 10),
          [&] { sink += static_cast<int64_t>(store.list(profile_name(pick(rng)), 100).size()); });
  time_op("count", 20, 2, [&] { sink += store.count(); });
  time_op("total_bytes", 20, 2, [&] { sink += store.total_bytes(); });
  g_sink = sink;

  if (!tmp_dir.empty()) std::filesystem::remove_all(tmp_dir);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const mixpeft::Error& e) {
    std::fprintf(stderr, "profile_store_bench: %s: %s\n", mixpeft::to_string(e.kind()), e.what());
    return 1;
  }
}
