// The HTTP side of `mixpeft serve` (include/mixpeft/serve.h): routes, strict
// JSON request parsing, authentication, admission limits and Prometheus
// metrics, on cpp-httplib. The model side is a Backend.
#include <httplib.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <map>
#include <mutex>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "mixpeft/error.h"
#include "mixpeft/serve.h"
#include "serve/batcher.h"

namespace mixpeft::serve {

using json = nlohmann::json;

// ---------------------------------------------------------------- base64

std::string base64_encode(const std::string& bytes) {
  static const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const uint32_t v = (uint8_t(bytes[i]) << 16) | (uint8_t(bytes[i + 1]) << 8) | uint8_t(bytes[i + 2]);
    out += alphabet[v >> 18];
    out += alphabet[(v >> 12) & 63];
    out += alphabet[(v >> 6) & 63];
    out += alphabet[v & 63];
  }
  if (i + 1 == bytes.size()) {
    const uint32_t v = uint8_t(bytes[i]) << 16;
    out += alphabet[v >> 18];
    out += alphabet[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == bytes.size()) {
    const uint32_t v = (uint8_t(bytes[i]) << 16) | (uint8_t(bytes[i + 1]) << 8);
    out += alphabet[v >> 18];
    out += alphabet[(v >> 12) & 63];
    out += alphabet[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

std::string base64_decode(const std::string& text, const std::string& where) {
  MIXPEFT_CHECK(text.size() % 4 == 0, ErrorKind::kInvalidArgument, where,
                ": base64 length must be a multiple of 4 (with '=' padding), got ", text.size());
  auto value = [&](size_t i) -> int {
    const char c = text[i];
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    fail(ErrorKind::kInvalidArgument, where, ": not base64 at offset ", i);
  };
  std::string out;
  out.reserve(text.size() / 4 * 3);
  for (size_t i = 0; i < text.size(); i += 4) {
    const bool last = i + 4 == text.size();
    const int pad = last ? (text[i + 3] == '=') + (text[i + 2] == '=' && text[i + 3] == '=') : 0;
    const uint32_t v = (value(i) << 18) | (value(i + 1) << 12) | (pad >= 2 ? 0 : value(i + 2) << 6) |
                       (pad >= 1 ? 0 : value(i + 3));
    out += char(v >> 16);
    if (pad < 2) out += char((v >> 8) & 255);
    if (pad < 1) out += char(v & 255);
  }
  return out;
}

namespace {

// ---------------------------------------------------------------- errors

// An answer other than 2xx, thrown from a handler.
struct HttpError {
  int status;
  std::string code;
  std::string message;
};

[[noreturn]] void http_fail(int status, const std::string& code, const std::string& message) {
  throw HttpError{status, code, message};
}

std::string error_body(const std::string& code, const std::string& message) {
  return json{{"error", {{"code", code}, {"message", message}}}}.dump();
}

int status_of(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kInvalidArgument:
    case ErrorKind::kCorrupt:
      return 400;
    case ErrorKind::kNotFound:
      return 404;
    case ErrorKind::kUnsupported:
      return 422;
    default:
      return 500;
  }
}

std::string code_of(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kInvalidArgument: return "invalid_argument";
    case ErrorKind::kCorrupt: return "corrupt";
    case ErrorKind::kNotFound: return "not_found";
    case ErrorKind::kUnsupported: return "unsupported";
    case ErrorKind::kIO: return "io";
    default: return "internal";
  }
}

// ---------------------------------------------------------------- strict JSON

// Deepest nesting of arrays and objects in a JSON text (strings skipped),
// read without recursion: a body of a million '[' would otherwise be parsed
// fine and then overflow the stack when a recursive dump() walks it.
int json_depth(const std::string& text) {
  int depth = 0, deepest = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') ++i;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return deepest;
}

constexpr int kMaxJsonDepth = 64;

json parse_object(const std::string& body) {
  if (json_depth(body) > kMaxJsonDepth)
    http_fail(400, "bad_json", cat("request body nests arrays and objects deeper than ", kMaxJsonDepth, " levels"));
  json j;
  try {
    j = json::parse(body);
  } catch (const json::parse_error& e) {
    http_fail(400, "bad_json", std::string("request body is not valid JSON: ") + e.what());
  }
  if (!j.is_object()) http_fail(400, "bad_json", "request body must be a JSON object");
  return j;
}

void only_fields(const json& j, const std::vector<std::string>& allowed) {
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (std::find(allowed.begin(), allowed.end(), it.key()) != allowed.end()) continue;
    std::string list;
    for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
    http_fail(400, "unknown_field", "unknown field \"" + it.key() + "\" (allowed: " + list + ")");
  }
}

[[noreturn]] void bad_field(const std::string& field, const std::string& what) {
  http_fail(400, "invalid_field", "field \"" + field + "\" " + what);
}

std::string get_string(const json& j, const std::string& field) {
  auto it = j.find(field);
  if (it == j.end()) bad_field(field, "is required");
  if (!it->is_string()) bad_field(field, "must be a string");
  return it->get<std::string>();
}

int64_t get_int(const json& j, const std::string& field, int64_t fallback, int64_t lo, int64_t hi) {
  auto it = j.find(field);
  if (it == j.end()) return fallback;
  if (!it->is_number_integer()) bad_field(field, "must be an integer");
  if (it->is_number_unsigned() && it->get<uint64_t>() > uint64_t(INT64_MAX)) bad_field(field, "is too large");
  const int64_t v = it->get<int64_t>();
  if (v < lo || v > hi) bad_field(field, cat("must be in [", lo, ", ", hi, "], got ", v));
  return v;
}

double get_number(const json& j, const std::string& field, double fallback, double lo, double hi) {
  auto it = j.find(field);
  if (it == j.end()) return fallback;
  if (!it->is_number()) bad_field(field, "must be a number");
  const double v = it->get<double>();
  if (!(v >= lo && v <= hi)) bad_field(field, cat("must be in [", lo, ", ", hi, "], got ", v));
  return v;
}

std::vector<int64_t> get_ids(const json& value, const std::string& field, int64_t max_len) {
  if (!value.is_array()) bad_field(field, "must be an array of token ids");
  if (value.empty()) bad_field(field, "must not be empty");
  if (int64_t(value.size()) > max_len)
    bad_field(field, cat("has ", value.size(), " tokens, more than the limit of ", max_len));
  std::vector<int64_t> ids;
  for (const auto& v : value) {
    if (!v.is_number_integer() || v.get<int64_t>() < 0 || (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(INT64_MAX)))
      bad_field(field, "must hold non-negative integer token ids");
    ids.push_back(v.get<int64_t>());
  }
  return ids;
}

json meta_json(const ProfileMeta& m) {
  json config = json::parse(m.config, nullptr, /*allow_exceptions=*/false);
  json metadata = m.metadata.empty() ? json(nullptr) : json::parse(m.metadata, nullptr, false);
  return json{{"name", m.name},          {"kind", m.kind},        {"config", config},
              {"metadata", metadata},    {"sha256", m.sha256},    {"bytes", m.bytes},
              {"created_at", m.created_at}, {"updated_at", m.updated_at}, {"version", m.version}};
}

// ---------------------------------------------------------------- metrics

struct Histogram {
  std::vector<double> bounds;
  std::vector<int64_t> counts;  // per bucket, not cumulative; last = +Inf
  double sum = 0;
  int64_t count = 0;
  explicit Histogram(std::vector<double> b) : bounds(std::move(b)), counts(bounds.size() + 1, 0) {}
  void observe(double v) {
    size_t i = 0;
    while (i < bounds.size() && v > bounds[i]) ++i;
    ++counts[i];
    sum += v;
    ++count;
  }
  void write(std::ostream& os, const std::string& name, const std::string& labels) const {
    int64_t cumulative = 0;
    const std::string sep = labels.empty() ? "" : ",";
    for (size_t i = 0; i <= bounds.size(); ++i) {
      cumulative += counts[i];
      std::ostringstream le;
      if (i < bounds.size()) le << bounds[i]; else le << "+Inf";
      os << name << "_bucket{" << labels << sep << "le=\"" << le.str() << "\"} " << cumulative << "\n";
    }
    os << name << "_sum" << (labels.empty() ? "" : "{" + labels + "}") << " " << sum << "\n";
    os << name << "_count" << (labels.empty() ? "" : "{" + labels + "}") << " " << count << "\n";
  }
};

const std::vector<double> kLatencyBounds = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                            0.25,  0.5,    1,     2.5,  5,     10,   30};
const std::vector<double> kBatchBounds = {1, 2, 4, 8, 16, 32, 64, 128, 256};

// The endpoint label of a request: its route, not its path (names stay out
// of metric labels).
std::string endpoint_of(const std::string& method, const std::string& path) {
  if (path == "/health" || path == "/metrics" || path == "/v1/classify" || path == "/v1/generate")
    return method + " " + path;
  if (path == "/v1/profiles") return method + " /v1/profiles";
  if (path.rfind("/v1/profiles/", 0) == 0) return method + " /v1/profiles/{name}";
  return "other";
}

struct ServeMetrics {
  std::mutex mutex;
  std::map<std::pair<std::string, int>, int64_t> requests;  // (endpoint, status)
  std::map<std::string, Histogram> latency;                 // by endpoint
  Histogram batch_rows{kBatchBounds};
  Histogram batch_profiles{kBatchBounds};
  int64_t overloaded = 0;
  int64_t cancelled = 0;  // streamed generations ended because the client went away

  void count(const std::string& endpoint, int status) {
    std::lock_guard<std::mutex> lock(mutex);
    ++requests[{endpoint, status}];
  }
  void time(const std::string& endpoint, double seconds) {
    std::lock_guard<std::mutex> lock(mutex);
    latency.try_emplace(endpoint, kLatencyBounds).first->second.observe(seconds);
  }
  void batch(int64_t rows, int64_t profiles) {
    std::lock_guard<std::mutex> lock(mutex);
    batch_rows.observe(double(rows));
    batch_profiles.observe(double(profiles));
  }
};

bool same_token(const std::string& a, const std::string& b) {
  // Constant time in the length of the expected token.
  unsigned char diff = a.size() != b.size();
  for (size_t i = 0; i < b.size(); ++i) diff |= (i < a.size() ? a[i] : 0) ^ b[i];
  return diff == 0;
}

}  // namespace

// ---------------------------------------------------------------- server

struct Server::Impl {
  ServerOptions options;
  ProfileStore& store;
  Backend& backend;
  // Before http: destroyed after it, so no HTTP thread waits on a dead batcher.
  Batcher<ClassifyItem, ClassifyOutcome> batcher;
  Batcher<GenerateItem, GenerateOutcome> generate_batcher;
  httplib::Server http;
  ServeMetrics metrics;
  std::atomic<int64_t> admitted{0};
  std::atomic<bool> stopped{false};
  int port = -1;

  Impl(const ServerOptions& o, ProfileStore& s, Backend& b)
      : options(o),
        store(s),
        backend(b),
        batcher(BatcherOptions{o.batch_window_us, o.max_batch_rows},
                [this](std::vector<ClassifyItem>& items) { return run_batch(items); }),
        generate_batcher(BatcherOptions{o.batch_window_us, o.max_batch_rows},
                         [this](std::vector<GenerateItem>& items) { return run_generate_batch(items); }) {}

  std::vector<GenerateOutcome> run_generate_batch(std::vector<GenerateItem>& items) {
    std::set<std::string> profiles;
    for (const auto& it : items) profiles.insert(it.meta.name);
    metrics.batch(int64_t(items.size()), int64_t(profiles.size()));
    return backend.generate_batch(items);
  }

  GenerateResult run_generate(const ProfileMeta& meta, const GenerateRequest& r) {
    if (stopped) http_fail(503, "shutting_down", "the server is shutting down");
    GenerateOutcome outcome = generate_batcher.submit(GenerateItem{meta, r}, 1);
    if (outcome.error) std::rethrow_exception(outcome.error);
    return outcome.result;
  }

  ~Impl() {
    batcher.stop();
    generate_batcher.stop();
  }

  std::vector<ClassifyOutcome> run_batch(std::vector<ClassifyItem>& items) {
    int64_t rows = 0;
    std::set<std::string> profiles;
    for (const auto& it : items) {
      rows += int64_t(it.request.texts.size() + it.request.input_ids.size());
      profiles.insert(it.meta.name);
    }
    metrics.batch(rows, int64_t(profiles.size()));
    return backend.classify_batch(items);
  }

  using Body = std::function<void(const httplib::Request&, httplib::Response&)>;

  // Wraps a handler: authentication, errors as JSON, latency.
  httplib::Server::Handler handler(const std::string& route, bool needs_auth, Body body) {
    return [this, route, needs_auth, body](const httplib::Request& req, httplib::Response& res) {
      const auto start = std::chrono::steady_clock::now();
      try {
        if (needs_auth) authenticate(req);
        body(req, res);
      } catch (const HttpError& e) {
        res.status = e.status;
        if (e.status == 401) res.set_header("WWW-Authenticate", "Bearer");
        if (e.status == 503) res.set_header("Retry-After", "1");
        res.set_content(error_body(e.code, e.message), "application/json");
      } catch (const Error& e) {
        res.status = status_of(e.kind());
        res.set_content(error_body(code_of(e.kind()), e.what()), "application/json");
      } catch (const std::exception& e) {
        res.status = 500;
        res.set_content(error_body("internal", e.what()), "application/json");
      } catch (...) {
        res.status = 500;
        res.set_content(error_body("internal", "unknown exception"), "application/json");
      }
      metrics.time(route, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    };
  }

  void authenticate(const httplib::Request& req) const {
    if (options.token.empty()) return;
    const std::string header = req.get_header_value("Authorization");
    const std::string prefix = "Bearer ";
    if (header.rfind(prefix, 0) != 0) http_fail(401, "unauthorized", "this endpoint needs Authorization: Bearer TOKEN");
    if (!same_token(header.substr(prefix.size()), options.token)) http_fail(401, "unauthorized", "wrong bearer token");
  }

  // One admission slot of an inference request, held for its lifetime
  // (503 from the constructor when none is free).
  class Admission {
   public:
    explicit Admission(Impl& impl) : impl_(impl) {
      if (++impl.admitted > impl.options.max_queue) {
        --impl.admitted;
        {
          std::lock_guard<std::mutex> lock(impl.metrics.mutex);
          ++impl.metrics.overloaded;
        }
        http_fail(503, "overloaded",
                  cat("more than ", impl.options.max_queue, " inference requests in flight; retry later"));
      }
    }
    ~Admission() { --impl_.admitted; }
    Admission(const Admission&) = delete;
    Admission& operator=(const Admission&) = delete;

   private:
    Impl& impl_;
  };

  ProfileMeta profile_for(const std::string& name) {
    try {
      check_profile_name(name);
    } catch (const Error& e) {
      bad_field("profile", std::string("is not a valid profile name: ") + e.what());
    }
    try {
      return store.get_meta(name);
    } catch (const Error& e) {
      if (e.kind() == ErrorKind::kNotFound) http_fail(404, "unknown_profile", "no profile named \"" + name + "\"");
      throw;
    }
  }

  void classify(const httplib::Request& req, httplib::Response& res) {
    json j = parse_object(req.body);
    only_fields(j, {"profile", "text", "texts", "input_ids"});
    ClassifyRequest r;
    r.profile = get_string(j, "profile");
    const int given = int(j.count("text")) + int(j.count("texts")) + int(j.count("input_ids"));
    if (given != 1) http_fail(400, "invalid_field", "give exactly one of \"text\", \"texts\", \"input_ids\"");
    if (j.count("text")) {
      r.texts.push_back(get_string(j, "text"));
    } else if (j.count("texts")) {
      const json& t = j["texts"];
      if (!t.is_array() || t.empty()) bad_field("texts", "must be a non-empty array of strings");
      for (const auto& x : t) {
        if (!x.is_string()) bad_field("texts", "must be a non-empty array of strings");
        r.texts.push_back(x.get<std::string>());
      }
    } else {
      const json& rows = j["input_ids"];
      if (!rows.is_array() || rows.empty()) bad_field("input_ids", "must be a non-empty array of token-id arrays");
      for (const auto& row : rows) r.input_ids.push_back(get_ids(row, "input_ids", options.max_seq_len));
    }
    const int64_t n = int64_t(r.texts.size() + r.input_ids.size());
    if (n > options.max_batch)
      http_fail(400, "too_many_inputs", cat("request has ", n, " inputs, more than the limit of ", options.max_batch));
    ProfileMeta meta = profile_for(r.profile);
    Admission slot(*this);
    if (stopped) http_fail(503, "shutting_down", "the server is shutting down");
    ClassifyOutcome outcome = batcher.submit(ClassifyItem{meta, r}, n);
    if (outcome.error) std::rethrow_exception(outcome.error);
    const ClassifyResult& out = outcome.result;
    MIXPEFT_CHECK(out.logits.size() == size_t(n) && out.labels.size() == size_t(n) && out.label_names.size() == size_t(n),
                  ErrorKind::kInternal, "backend answered ", out.logits.size(), " rows for ", n);
    json results = json::array();
    for (size_t i = 0; i < out.logits.size(); ++i)
      results.push_back({{"label", out.labels[i]}, {"label_name", out.label_names[i]}, {"logits", out.logits[i]}});
    res.set_content(json{{"profile", meta.name}, {"version", meta.version}, {"results", results}}.dump(),
                    "application/json");
  }

  void generate(const httplib::Request& req, httplib::Response& res) {
    json j = parse_object(req.body);
    only_fields(j, {"profile", "prompt", "input_ids", "max_new_tokens", "temperature", "top_k", "top_p", "seed",
                    "stream"});
    GenerateRequest r;
    r.profile = get_string(j, "profile");
    if (int(j.count("prompt")) + int(j.count("input_ids")) != 1)
      http_fail(400, "invalid_field", "give exactly one of \"prompt\", \"input_ids\"");
    if (j.count("prompt")) {
      r.prompt = get_string(j, "prompt");
      if (r.prompt.empty()) bad_field("prompt", "must not be empty");
    } else {
      r.input_ids = get_ids(j["input_ids"], "input_ids", options.max_seq_len);
    }
    r.max_new_tokens = get_int(j, "max_new_tokens", std::min<int64_t>(16, options.max_new_tokens), 1, options.max_new_tokens);
    if (int64_t(r.input_ids.size()) + r.max_new_tokens > options.max_seq_len)
      http_fail(400, "too_long", cat("input_ids (", r.input_ids.size(), ") + max_new_tokens (", r.max_new_tokens,
                                     ") exceed the sequence limit of ", options.max_seq_len));
    r.temperature = get_number(j, "temperature", 0.0, 0.0, 100.0);
    r.top_k = get_int(j, "top_k", 0, 0, INT64_MAX);
    r.top_p = get_number(j, "top_p", 1.0, 0.0, 1.0);
    if (j.count("top_p") && r.top_p == 0.0) bad_field("top_p", "must be in (0, 1]");
    r.seed = uint64_t(get_int(j, "seed", 0, 0, INT64_MAX));
    bool stream = false;
    if (j.count("stream")) {
      if (!j["stream"].is_boolean()) bad_field("stream", "must be true or false");
      stream = j["stream"].get<bool>();
    }
    ProfileMeta meta = profile_for(r.profile);
    auto slot = std::make_shared<Admission>(*this);
    auto answer = [meta](const GenerateResult& out) {
      return json{{"profile", meta.name},
                  {"version", meta.version},
                  {"tokens", out.tokens},
                  {"text", out.text},
                  {"finish_reason", out.finish_reason}};
    };
    if (!stream) {
      res.set_content(answer(run_generate(meta, r)).dump(), "application/json");
      return;
    }
    // Streamed as NDJSON: {"token": id} per new token, then the whole answer
    // as for a plain request (or {"error": ...} if generation failed after
    // the status went out). Every check that can fail runs before that.
    backend.check_generate(meta, r);
    res.set_chunked_content_provider(
        "application/x-ndjson", [this, meta, r, slot, answer](size_t, httplib::DataSink& sink) mutable {
          try {
            // A failed write means the client went away: its generation
            // stops at the next token (the rest of its batch goes on).
            auto gone = std::make_shared<std::atomic<bool>>(false);
            r.on_token = [&sink, gone](int64_t token) {
              const std::string line = json{{"token", token}}.dump() + "\n";
              if (!gone->load() && !sink.write(line.data(), line.size())) gone->store(true);
            };
            r.cancelled = [gone] { return gone->load(); };
            const GenerateResult result = run_generate(meta, r);
            if (result.finish_reason == "cancelled") {
              std::lock_guard<std::mutex> lock(metrics.mutex);
              ++metrics.cancelled;
            }
            const std::string last = answer(result).dump() + "\n";
            if (!gone->load()) sink.write(last.data(), last.size());
          } catch (const HttpError& e) {
            const std::string line = error_body(e.code, e.message) + "\n";
            sink.write(line.data(), line.size());
          } catch (const Error& e) {
            const std::string line = error_body(code_of(e.kind()), e.what()) + "\n";
            sink.write(line.data(), line.size());
          } catch (const std::exception& e) {
            const std::string line = error_body("internal", e.what()) + "\n";
            sink.write(line.data(), line.size());
          }
          sink.done();
          return true;
        });
  }

  void create_profile(const httplib::Request& req, httplib::Response& res) {
    json j = parse_object(req.body);
    only_fields(j, {"name", "kind", "config", "tensors", "metadata", "replace"});
    Profile p;
    p.name = get_string(j, "name");
    try {
      check_profile_name(p.name);
    } catch (const Error& e) {
      bad_field("name", std::string("is not a valid profile name: ") + e.what());
    }
    p.kind = get_string(j, "kind");
    if (!j.count("config") || !j["config"].is_object()) bad_field("config", "must be a JSON object (adapter_config.json)");
    p.config = j["config"].dump();
    p.tensors = base64_decode(get_string(j, "tensors"), "field \"tensors\"");
    if (j.count("metadata")) {
      if (!j["metadata"].is_object()) bad_field("metadata", "must be a JSON object");
      p.metadata = j["metadata"].dump();
    }
    bool replace = false;
    if (j.count("replace")) {
      if (!j["replace"].is_boolean()) bad_field("replace", "must be true or false");
      replace = j["replace"].get<bool>();
    }
    check_profile(p);
    backend.check_servable(p);
    if (!replace && store.exists(p.name))
      http_fail(409, "profile_exists", "a profile named \"" + p.name + "\" exists; send \"replace\": true to overwrite it");
    ProfileMeta m;
    try {
      m = store.put(p, replace);
    } catch (const Error& e) {
      // Lost a race with another create of the same name.
      if (e.kind() == ErrorKind::kInvalidArgument && !replace && store.exists(p.name))
        http_fail(409, "profile_exists", "a profile named \"" + p.name + "\" exists");
      throw;
    }
    if (replace) backend.forget(p.name);
    res.status = 201;
    res.set_content(meta_json(m).dump(), "application/json");
  }

  void list_profiles(const httplib::Request& req, httplib::Response& res) {
    for (const auto& [key, value] : req.params)
      if (key != "after" && key != "limit") http_fail(400, "unknown_field", "unknown query parameter \"" + key + "\" (allowed: after, limit)");
    const std::string after = req.get_param_value("after");
    if (!after.empty()) {
      try {
        check_profile_name(after);
      } catch (const Error& e) {
        bad_field("after", std::string("is not a valid profile name: ") + e.what());
      }
    }
    int64_t limit = 100;
    if (req.has_param("limit")) {
      const std::string s = req.get_param_value("limit");
      char* end = nullptr;
      errno = 0;
      const long long v = std::strtoll(s.c_str(), &end, 10);
      if (s.empty() || *end != '\0' || errno != 0 || v < 1 || v > kMaxListLimit)
        bad_field("limit", cat("must be an integer in [1, ", kMaxListLimit, "], got \"", s, "\""));
      limit = v;
    }
    json out = json::array();
    std::vector<ProfileMeta> page = store.list(after, limit);
    for (const auto& m : page) out.push_back(meta_json(m));
    json next = int64_t(page.size()) == limit ? json(page.back().name) : json(nullptr);
    res.set_content(json{{"profiles", out}, {"next_after", next}}.dump(), "application/json");
  }

  std::string name_in_path(const httplib::Request& req) {
    const std::string name = req.matches[1];
    try {
      check_profile_name(name);
    } catch (const Error& e) {
      http_fail(400, "invalid_name", e.what());
    }
    return name;
  }

  void get_profile(const httplib::Request& req, httplib::Response& res) {
    const std::string name = name_in_path(req);
    try {
      res.set_content(meta_json(store.get_meta(name)).dump(), "application/json");
    } catch (const Error& e) {
      if (e.kind() == ErrorKind::kNotFound) http_fail(404, "unknown_profile", "no profile named \"" + name + "\"");
      throw;
    }
  }

  void delete_profile(const httplib::Request& req, httplib::Response& res) {
    const std::string name = name_in_path(req);
    try {
      store.remove(name);
    } catch (const Error& e) {
      if (e.kind() == ErrorKind::kNotFound) http_fail(404, "unknown_profile", "no profile named \"" + name + "\"");
      throw;
    }
    backend.forget(name);
    res.set_content(json{{"deleted", name}}.dump(), "application/json");
  }

  void health(const httplib::Request&, httplib::Response& res) {
    json backend_info = json::parse(backend.describe_json(), nullptr, false);
    res.set_content(json{{"status", "ok"}, {"profiles", store.count()}, {"backend", backend_info}}.dump(),
                    "application/json");
  }

  void metrics_text(const httplib::Request&, httplib::Response& res) {
    std::ostringstream os;
    const BackendStats b = backend.stats();
    auto single = [&os](const char* name, const char* type, const char* help, int64_t value) {
      os << "# HELP " << name << " " << help << "\n# TYPE " << name << " " << type << "\n" << name << " " << value << "\n";
    };
    {
      std::lock_guard<std::mutex> lock(metrics.mutex);
      os << "# HELP mixpeft_serve_requests_total HTTP requests answered, by endpoint and status.\n"
            "# TYPE mixpeft_serve_requests_total counter\n";
      for (const auto& [key, n] : metrics.requests)
        os << "mixpeft_serve_requests_total{endpoint=\"" << key.first << "\",code=\"" << key.second << "\"} " << n
           << "\n";
      os << "# HELP mixpeft_serve_errors_total Requests answered with a status of 400 or more, by status.\n"
            "# TYPE mixpeft_serve_errors_total counter\n";
      std::map<int, int64_t> errors;
      for (const auto& [key, n] : metrics.requests)
        if (key.second >= 400) errors[key.second] += n;
      for (const auto& [code, n] : errors) os << "mixpeft_serve_errors_total{code=\"" << code << "\"} " << n << "\n";
      os << "# HELP mixpeft_serve_request_seconds Time from routing to the response, by endpoint.\n"
            "# TYPE mixpeft_serve_request_seconds histogram\n";
      for (const auto& [endpoint, h] : metrics.latency)
        h.write(os, "mixpeft_serve_request_seconds", "endpoint=\"" + endpoint + "\"");
      os << "# HELP mixpeft_serve_batch_rows Input rows per model call.\n"
            "# TYPE mixpeft_serve_batch_rows histogram\n";
      metrics.batch_rows.write(os, "mixpeft_serve_batch_rows", "");
      os << "# HELP mixpeft_serve_batch_profiles Distinct profiles per model call.\n"
            "# TYPE mixpeft_serve_batch_profiles histogram\n";
      metrics.batch_profiles.write(os, "mixpeft_serve_batch_profiles", "");
      single("mixpeft_serve_overloaded_total", "counter", "Inference requests refused with 503 (queue full).",
             metrics.overloaded);
      single("mixpeft_serve_generate_cancelled_total", "counter",
             "Streamed generations stopped early because the client went away.", metrics.cancelled);
    }
    single("mixpeft_serve_in_flight", "gauge", "Inference requests admitted and not yet answered.", admitted.load());
    single("mixpeft_serve_adapter_cache_hits_total", "counter", "Materialised-adapter cache hits.", b.cache_hits);
    single("mixpeft_serve_adapter_cache_misses_total", "counter", "Materialised-adapter cache misses.", b.cache_misses);
    single("mixpeft_serve_adapter_cache_evictions_total", "counter", "Entries evicted to stay under the byte bound.",
           b.cache_evictions);
    single("mixpeft_serve_adapter_cache_entries", "gauge", "Materialised adapters held.", b.cache_entries);
    single("mixpeft_serve_adapter_cache_bytes", "gauge", "Bytes of the materialised adapters held.", b.cache_bytes);
    single("mixpeft_serve_adapter_cache_capacity_bytes", "gauge", "The cache's byte bound.", b.cache_capacity_bytes);
    res.set_content(os.str(), "text/plain; version=0.0.4");
  }

  void install_routes() {
    auto bind = [this](void (Impl::*f)(const httplib::Request&, httplib::Response&)) {
      return [this, f](const httplib::Request& q, httplib::Response& s) { (this->*f)(q, s); };
    };
    http.Get("/health", handler("GET /health", false, bind(&Impl::health)));
    http.Get("/metrics", handler("GET /metrics", false, bind(&Impl::metrics_text)));
    http.Post("/v1/classify", handler("POST /v1/classify", false, bind(&Impl::classify)));
    http.Post("/v1/generate", handler("POST /v1/generate", false, bind(&Impl::generate)));
    http.Post("/v1/profiles", handler("POST /v1/profiles", true, bind(&Impl::create_profile)));
    http.Get("/v1/profiles", handler("GET /v1/profiles", true, bind(&Impl::list_profiles)));
    http.Get("/v1/profiles/([^/]*)", handler("GET /v1/profiles/{name}", true, bind(&Impl::get_profile)));
    http.Delete("/v1/profiles/([^/]*)", handler("DELETE /v1/profiles/{name}", true, bind(&Impl::delete_profile)));

    // Statuses httplib answers itself (no route: 404; body too large: 413;
    // a bad request line: 400) get a JSON body too.
    http.set_error_handler(httplib::Server::HandlerWithResponse([](const httplib::Request& req, httplib::Response& res) {
      if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
      std::string code = "http_" + std::to_string(res.status), message = "error";
      if (res.status == 404) code = "no_route", message = "no endpoint " + req.method + " " + req.path;
      if (res.status == 413) code = "body_too_large", message = "request body exceeds the server's limit";
      if (res.status == 400) code = "bad_request", message = "malformed HTTP request";
      res.set_content(error_body(code, message), "application/json");
      return httplib::Server::HandlerResponse::Handled;
    }));
    http.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
      metrics.count(endpoint_of(req.method, req.path), res.status);
    });
    http.set_payload_max_length(size_t(options.max_body_bytes));
    http.set_read_timeout(10, 0);
    http.set_write_timeout(10, 0);
    const int threads = std::max(1, options.threads);
    http.new_task_queue = [threads] { return new httplib::ThreadPool(size_t(threads)); };
  }
};

Server::Server(const ServerOptions& options, ProfileStore& store, Backend& backend)
    : impl_(std::make_unique<Impl>(options, store, backend)) {
  MIXPEFT_CHECK(options.max_body_bytes > 0 && options.max_seq_len > 0 && options.max_batch > 0 &&
                    options.max_queue > 0 && options.max_new_tokens > 0 && options.batch_window_us >= 0,
                ErrorKind::kInvalidArgument, "serve: every limit must be positive");
  MIXPEFT_CHECK(options.max_batch_rows >= options.max_batch, ErrorKind::kInvalidArgument,
                "serve: max_batch_rows (", options.max_batch_rows, ") must be at least max_batch (", options.max_batch,
                "): one request must fit in one batch");
  impl_->install_routes();
}

Server::~Server() { stop(); }

int Server::bind() {
  const auto& o = impl_->options;
  int port = o.port;
  if (o.port == 0) {
    port = impl_->http.bind_to_any_port(o.host);
    MIXPEFT_CHECK(port > 0, ErrorKind::kIO, "serve: cannot bind ", o.host, " to any port");
  } else {
    MIXPEFT_CHECK(impl_->http.bind_to_port(o.host, o.port), ErrorKind::kIO, "serve: cannot bind ", o.host, ":",
                  o.port, " (in use, or not an address of this machine)");
  }
  impl_->port = port;
  return port;
}

void Server::run() {
  MIXPEFT_CHECK(impl_->port > 0, ErrorKind::kInternal, "serve: run() before bind()");
  if (impl_->stopped) return;
  impl_->http.listen_after_bind();
}

void Server::stop() {
  impl_->stopped = true;
  if (impl_->http.is_running()) impl_->http.stop();
}

}  // namespace mixpeft::serve
