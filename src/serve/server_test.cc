// The HTTP side of the server (src/serve/server.cc) over real HTTP on
// 127.0.0.1, in this process, with a scripted Backend: routes, strict JSON,
// statuses, authentication, limits, metrics. The real model side is tested
// end to end by tools/mixpeft/serve_cli_test.cc.
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <sstream>
#include <thread>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "mixpeft/error.h"
#include "mixpeft/serve.h"
#include "serve/http_test_util.h"

namespace mixpeft::serve {
namespace {

using json = nlohmann::json;

// A valid safetensors buffer: header {"t": F32 [2]} and 8 bytes.
std::string tiny_safetensors() {
  const std::string header = R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  std::string out(8, '\0');
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = char((n >> (8 * i)) & 255);
  return out + header + std::string(8, '\0');
}

// Answers from the request alone, so tests can predict every number; can be
// told to block, to test the admission limit.
class ScriptedBackend : public Backend {
 public:
  std::vector<ClassifyOutcome> classify_batch(const std::vector<ClassifyItem>& items) override {
    wait_if_blocked();
    {
      std::lock_guard<std::mutex> lock(mutex);
      std::vector<std::string> names;
      for (const auto& it : items) names.push_back(it.meta.name);
      batches.push_back(names);
    }
    std::vector<ClassifyOutcome> out(items.size());
    for (size_t i = 0; i < items.size(); ++i) {
      try {
        out[i].result = classify(items[i].meta, items[i].request);
      } catch (...) {
        out[i].error = std::current_exception();
      }
    }
    return out;
  }
  ClassifyResult classify(const ProfileMeta& meta, const ClassifyRequest& r) {
    MIXPEFT_CHECK(meta.kind != "ADAMIX", ErrorKind::kInvalidArgument, "profile \"", meta.name, "\": wrong task");
    ClassifyResult out;
    auto add = [&](double x) {
      out.logits.push_back({float(x), float(meta.version)});
      out.labels.push_back(x > meta.version ? 0 : 1);
      out.label_names.push_back(x > meta.version ? "A" : "B");
    };
    for (const auto& t : r.texts) add(double(t.size()));
    for (const auto& row : r.input_ids) add(double(row.size()));
    return out;
  }
  std::vector<GenerateOutcome> generate_batch(const std::vector<GenerateItem>& items) override {
    wait_if_blocked();
    std::vector<GenerateOutcome> out(items.size());
    for (size_t i = 0; i < items.size(); ++i) {
      const auto& r = items[i].request;
      try {
        check_generate(items[i].meta, r);
        out[i].result.finish_reason = "length";
        // Endless: a token a millisecond until the client goes away (or 20 s).
        const int64_t n = endless ? 20000 : r.max_new_tokens;
        for (int64_t t = 0; t < n; ++t) {
          out[i].result.tokens.push_back(t);
          if (r.on_token) r.on_token(t);
          if (r.cancelled && r.cancelled()) {
            out[i].result.finish_reason = "cancelled";
            break;
          }
          if (endless) std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        if (endless) last_generated = int64_t(out[i].result.tokens.size()), endless_done = true;
      } catch (...) {
        out[i].error = std::current_exception();
      }
    }
    return out;
  }
  void check_generate(const ProfileMeta& meta, const GenerateRequest& r) override {
    MIXPEFT_CHECK(meta.kind != "ADAMIX", ErrorKind::kInvalidArgument, "profile \"", meta.name, "\": wrong task");
  }
  void check_servable(const Profile& p) override {
    MIXPEFT_CHECK(p.kind != "MOSLORA", ErrorKind::kUnsupported, "profile \"", p.name, "\": not on this model");
  }
  void forget(const std::string& name) override { ++forgotten; }
  BackendStats stats() const override { return {}; }
  std::string describe_json() const override { return R"({"model": "scripted"})"; }

  void block() {
    std::lock_guard<std::mutex> lock(mutex);
    blocked = true;
  }
  void release() {
    {
      std::lock_guard<std::mutex> lock(mutex);
      blocked = false;
    }
    cv.notify_all();
  }
  std::atomic<int> waiting{0}, forgotten{0};
  std::atomic<bool> endless{false}, endless_done{false};
  std::atomic<int64_t> last_generated{0};
  std::vector<std::vector<std::string>> batches;  // profile names per batch, under mutex

  std::mutex mutex;

 private:
  void wait_if_blocked() {
    std::unique_lock<std::mutex> lock(mutex);
    ++waiting;
    cv.wait(lock, [&] { return !blocked; });
    --waiting;
  }
  std::condition_variable cv;
  bool blocked = false;
};

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override { start(); }
  void TearDown() override {
    stop();
    std::filesystem::remove_all(dir_);
  }
  void start(const std::string& token = "", int64_t window_us = 0, int64_t max_queue = 2) {
    dir_ = ::testing::TempDir() + "server_test_" + std::to_string(getpid());
    std::filesystem::create_directories(dir_);
    store_ = std::make_unique<ProfileStore>(dir_ + "/p.db");
    ServerOptions o;
    o.port = 0;
    o.token = token;
    o.max_body_bytes = 4096;
    o.max_seq_len = 8;
    o.max_batch = 3;
    o.max_queue = max_queue;
    o.max_new_tokens = 5;
    o.threads = 6;
    o.batch_window_us = window_us;
    o.max_batch_rows = 8;
    server_ = std::make_unique<Server>(o, *store_, backend_);
    port_ = server_->bind();
    thread_ = std::thread([this] { server_->run(); });
    client_ = std::make_unique<httplib::Client>("127.0.0.1", port_);
    client_->set_read_timeout(10, 0);
    // Wait until it answers.
    for (int i = 0; i < 200 && !client_->Get("/health"); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  void stop() {
    if (server_) server_->stop();
    if (thread_.joinable()) thread_.join();
    server_.reset();
  }

  using Reply = mixpeft::testing::HttpReply;
  Reply call(const std::string& method, const std::string& path, const std::string& body = "",
             const std::string& token = "") {
    return mixpeft::testing::http_call(*client_, method, path, body, token);
  }
  static std::string code(const Reply& r) {
    return r.body.is_object() && r.body.contains("error") ? r.body["error"]["code"].get<std::string>() : "";
  }
  static std::string upload(const std::string& name, const std::string& kind = "LORA") {
    return json{{"name", name},
                {"kind", kind},
                {"config", {{"peft_type", kind}, {"r", 4}}},
                {"tensors", base64_encode(tiny_safetensors())},
                {"metadata", {{"owner", "test"}}}}
        .dump();
  }

  std::string dir_;
  ScriptedBackend backend_;
  std::unique_ptr<ProfileStore> store_;
  std::unique_ptr<Server> server_;
  std::thread thread_;
  std::unique_ptr<httplib::Client> client_;
  int port_ = 0;
};

TEST(Base64, RoundTripsEveryLengthAndRefusesBadText) {
  std::string bytes;
  for (int n = 0; n < 20; ++n) {
    EXPECT_EQ(base64_decode(base64_encode(bytes), "x"), bytes) << n;
    bytes += char(n * 37 + 200);
  }
  EXPECT_EQ(base64_encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(base64_encode("fo"), "Zm8=");
  EXPECT_EQ(base64_decode("Zm8=", "x"), "fo");
  EXPECT_THROW(base64_decode("Zm8", "x"), Error);
  EXPECT_THROW(base64_decode("Zm 8", "x"), Error);
  EXPECT_THROW(base64_decode("Z=m8", "x"), Error);
}

TEST_F(ServerTest, HealthAndProfileLifecycle) {
  Reply h = call("GET", "/health");
  ASSERT_EQ(h.status, 200) << h.text;
  EXPECT_EQ(h.body["status"], "ok");
  EXPECT_EQ(h.body["profiles"], 0);

  Reply c = call("POST", "/v1/profiles", upload("alice"));
  ASSERT_EQ(c.status, 201) << c.text;
  EXPECT_EQ(c.body["name"], "alice");
  EXPECT_EQ(c.body["metadata"]["owner"], "test");
  EXPECT_EQ(c.body["bytes"], int64_t(tiny_safetensors().size()));
  EXPECT_EQ(call("POST", "/v1/profiles", upload("alice")).status, 409);
  json replace = json::parse(upload("alice"));
  replace["replace"] = true;
  Reply r = call("POST", "/v1/profiles", replace.dump());
  ASSERT_EQ(r.status, 201) << r.text;
  EXPECT_GT(r.body["version"].get<int64_t>(), c.body["version"].get<int64_t>());
  EXPECT_EQ(backend_.forgotten, 1);

  for (const char* n : {"bob", "carol", "dave"}) ASSERT_EQ(call("POST", "/v1/profiles", upload(n)).status, 201);
  Reply page = call("GET", "/v1/profiles?limit=2");
  ASSERT_EQ(page.status, 200) << page.text;
  ASSERT_EQ(page.body["profiles"].size(), 2u);
  EXPECT_EQ(page.body["profiles"][0]["name"], "alice");
  EXPECT_EQ(page.body["next_after"], "bob");
  Reply page2 = call("GET", "/v1/profiles?limit=2&after=bob");
  ASSERT_EQ(page2.body["profiles"].size(), 2u);
  EXPECT_EQ(page2.body["profiles"][1]["name"], "dave");
  Reply page3 = call("GET", "/v1/profiles?limit=2&after=dave");
  EXPECT_EQ(page3.body["profiles"].size(), 0u);
  EXPECT_TRUE(page3.body["next_after"].is_null());

  Reply g = call("GET", "/v1/profiles/carol");
  ASSERT_EQ(g.status, 200);
  EXPECT_EQ(g.body["config"]["r"], 4);
  EXPECT_EQ(call("DELETE", "/v1/profiles/carol").status, 200);
  EXPECT_EQ(code(call("GET", "/v1/profiles/carol")), "unknown_profile");
  EXPECT_EQ(call("DELETE", "/v1/profiles/carol").status, 404);
  EXPECT_EQ(call("GET", "/health").body["profiles"], 3);
}

TEST_F(ServerTest, InferenceAnswersAndChecksItsInput) {
  ASSERT_EQ(call("POST", "/v1/profiles", upload("p1")).status, 201);
  Reply ok = call("POST", "/v1/classify", R"({"profile": "p1", "texts": ["abc", "abcdefgh"]})");
  ASSERT_EQ(ok.status, 200) << ok.text;
  ASSERT_EQ(ok.body["results"].size(), 2u);
  EXPECT_EQ(ok.body["results"][0]["logits"][0], 3.0);
  EXPECT_EQ(ok.body["results"][1]["label_name"], "A");
  // Brackets inside strings are text, not nesting.
  EXPECT_EQ(call("POST", "/v1/classify", json{{"profile", "p1"}, {"text", std::string(100, '[') + "\"{"}}.dump()).status, 200);
  Reply ids = call("POST", "/v1/classify", R"({"profile": "p1", "input_ids": [[1, 2], [3]]})");
  ASSERT_EQ(ids.status, 200) << ids.text;
  EXPECT_EQ(ids.body["results"][1]["logits"][0], 1.0);
  Reply gen = call("POST", "/v1/generate", R"({"profile": "p1", "input_ids": [1, 2], "max_new_tokens": 3})");
  ASSERT_EQ(gen.status, 200) << gen.text;
  EXPECT_EQ(gen.body["tokens"], json({0, 1, 2}));

  struct Case {
    std::string path, body;
    int status;
    std::string code;
  };
  const std::vector<Case> cases = {
      {"/v1/classify", "{not json", 400, "bad_json"},
      {"/v1/classify", "[1, 2]", 400, "bad_json"},
      {"/v1/classify", std::string(65, '[') + std::string(65, ']'), 400, "bad_json"},
      {"/v1/profiles", R"({"name": "x", "kind": "LORA", "config": )" + std::string(100, '[') + std::string(100, ']') + "}",
       400, "bad_json"},
      {"/v1/classify", R"({"profile": "p1", "text": "a", "colour": 1})", 400, "unknown_field"},
      {"/v1/classify", R"({"text": "a"})", 400, "invalid_field"},
      {"/v1/classify", R"({"profile": 7, "text": "a"})", 400, "invalid_field"},
      {"/v1/classify", R"({"profile": "p1"})", 400, "invalid_field"},
      {"/v1/classify", R"({"profile": "p1", "text": "a", "texts": ["b"]})", 400, "invalid_field"},
      {"/v1/classify", R"({"profile": "p1", "texts": []})", 400, "invalid_field"},
      {"/v1/classify", R"({"profile": "p1", "texts": ["a", 2]})", 400, "invalid_field"},
      {"/v1/classify", R"({"profile": "p1", "texts": ["a", "b", "c", "d"]})", 400, "too_many_inputs"},
      {"/v1/classify", R"({"profile": "p1", "input_ids": [[1, 2, 3, 4, 5, 6, 7, 8, 9]]})", 400, "invalid_field"},
      {"/v1/classify", R"({"profile": "p1", "input_ids": [[-1]]})", 400, "invalid_field"},
      {"/v1/classify", R"({"profile": "p1", "input_ids": [[1.5]]})", 400, "invalid_field"},
      {"/v1/classify", R"({"profile": "../etc", "text": "a"})", 400, "invalid_field"},
      {"/v1/classify", R"({"profile": "nobody", "text": "a"})", 404, "unknown_profile"},
      {"/v1/generate", R"({"profile": "p1", "input_ids": [1], "max_new_tokens": 6})", 400, "invalid_field"},
      {"/v1/generate", R"({"profile": "p1", "input_ids": [1, 2, 3, 4], "max_new_tokens": 5})", 400, "too_long"},
      {"/v1/generate", R"({"profile": "p1", "input_ids": [1], "top_p": 0})", 400, "invalid_field"},
      {"/v1/generate", R"({"profile": "p1", "input_ids": [1], "temperature": -1})", 400, "invalid_field"},
      {"/v1/generate", R"({"profile": "p1", "prompt": ""})", 400, "invalid_field"},
      {"/v1/generate", R"({"profile": "p1", "input_ids": [1], "beams": 2})", 400, "unknown_field"},
      {"/v1/generate", R"({"profile": "p1", "input_ids": [1], "stream": "yes"})", 400, "invalid_field"},
      {"/v1/profiles", upload("bad name"), 400, "invalid_field"},
      {"/v1/profiles", upload("x", "PREFIX"), 400, "invalid_argument"},
      {"/v1/profiles", upload("x", "MOSLORA"), 422, "unsupported"},
      {"/v1/profiles", R"({"name": "x", "kind": "LORA", "config": [], "tensors": ""})", 400, "invalid_field"},
      {"/v1/profiles", R"({"name": "x", "kind": "LORA", "config": {}, "tensors": "AAA"})", 400, "invalid_argument"},
      {"/v1/profiles", R"({"name": "x", "kind": "LORA", "config": {}, "tensors": "AAAA"})", 400, "corrupt"},
      {"/v1/profiles", R"({"name": "x", "kind": "LORA", "config": {}, "tensors": "", "owner": 1})", 400, "unknown_field"},
      {"/v1/profiles", std::string(5000, ' '), 413, "body_too_large"},
      {"/v1/nothing", "{}", 404, "no_route"},
  };
  for (const auto& c : cases) {
    Reply r = call("POST", c.path, c.body);
    EXPECT_EQ(r.status, c.status) << c.path << " " << c.body << "\n" << r.text;
    EXPECT_EQ(code(r), c.code) << c.path << " " << c.body << "\n" << r.text;
    EXPECT_FALSE(r.body["error"]["message"].get<std::string>().empty()) << r.text;
  }
  // A name the backend refuses as the wrong task: 400 from its Error, also
  // when streaming (checked before the stream starts).
  ASSERT_EQ(call("POST", "/v1/profiles", upload("mix", "ADAMIX")).status, 201);
  EXPECT_EQ(call("POST", "/v1/classify", R"({"profile": "mix", "text": "a"})").status, 400);
  Reply streamed_error = call("POST", "/v1/generate", R"({"profile": "mix", "input_ids": [1], "stream": true})");
  EXPECT_EQ(streamed_error.status, 400) << streamed_error.text;
  EXPECT_EQ(code(streamed_error), "invalid_argument");

  // Streaming: one NDJSON line per token, then the whole answer.
  Reply streamed = call("POST", "/v1/generate", R"({"profile": "p1", "input_ids": [1], "max_new_tokens": 3, "stream": true})");
  ASSERT_EQ(streamed.status, 200) << streamed.text;
  std::vector<json> lines;
  std::istringstream in(streamed.text);
  for (std::string line; std::getline(in, line);) lines.push_back(json::parse(line));
  ASSERT_EQ(lines.size(), 4u) << streamed.text;
  for (int i = 0; i < 3; ++i) EXPECT_EQ(lines[size_t(i)]["token"], i);
  EXPECT_EQ(lines[3]["tokens"], json({0, 1, 2}));
  EXPECT_EQ(lines[3]["finish_reason"], "length");
  EXPECT_EQ(code(call("GET", "/v1/profiles?limit=0")), "invalid_field");
  EXPECT_EQ(code(call("GET", "/v1/profiles?page=2")), "unknown_field");
  EXPECT_EQ(code(call("GET", "/v1/profiles/.hidden")), "invalid_name");
  // Nothing of the above was stored.
  EXPECT_EQ(call("GET", "/health").body["profiles"], 2);
}

// A streaming client that hangs up stops its generation: the backend is
// asked to cancel at its next token instead of running on (here for 20 s).
TEST_F(ServerTest, StreamStopsWhenTheClientGoesAway) {
  ASSERT_EQ(call("POST", "/v1/profiles", upload("p1")).status, 201);
  backend_.endless = true;
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(uint16_t(port_));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  const std::string body = R"({"profile": "p1", "input_ids": [1], "stream": true})";
  const std::string request = "POST /v1/generate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                              "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  ASSERT_EQ(::send(fd, request.data(), request.size(), 0), ssize_t(request.size()));
  // Read until the first token line has come, then hang up.
  std::string got;
  char buf[4096];
  while (got.find("{\"token\":") == std::string::npos) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    ASSERT_GT(n, 0) << got;
    got.append(buf, size_t(n));
  }
  EXPECT_NE(got.find("200 OK"), std::string::npos) << got;
  ::close(fd);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
  while (!backend_.endless_done && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_TRUE(backend_.endless_done) << "generation still running 15 s after the client left";
  EXPECT_LT(backend_.last_generated, 20000) << "ran to the end although the client left";
  backend_.endless = false;
  const std::string metrics = client_->Get("/metrics")->body;
  EXPECT_NE(metrics.find("mixpeft_serve_generate_cancelled_total 1"), std::string::npos) << metrics;
}

TEST_F(ServerTest, FullQueueAnswers503AndMetricsCountEverything) {
  ASSERT_EQ(call("POST", "/v1/profiles", upload("p1")).status, 201);
  backend_.block();
  std::vector<std::thread> clients;
  std::atomic<int> ok{0};
  for (int i = 0; i < 2; ++i)
    clients.emplace_back([&] {
      httplib::Client c("127.0.0.1", port_);
      c.set_read_timeout(20, 0);
      auto r = c.Post("/v1/classify", R"({"profile": "p1", "text": "a"})", "application/json");
      if (r && r->status == 200) ++ok;
    });
  // Both admitted: one in the backend, the other running or queued behind it.
  auto in_flight = [&] { return call("GET", "/metrics").text.find("mixpeft_serve_in_flight 2") != std::string::npos; };
  for (int i = 0; i < 500 && !(backend_.waiting >= 1 && in_flight()); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_TRUE(in_flight());
  Reply busy = call("POST", "/v1/classify", R"({"profile": "p1", "text": "a"})");
  EXPECT_EQ(busy.status, 503) << busy.text;
  EXPECT_EQ(code(busy), "overloaded");
  backend_.release();
  for (auto& t : clients) t.join();
  EXPECT_EQ(ok, 2);
  EXPECT_EQ(call("POST", "/v1/classify", R"({"profile": "p1", "text": "a"})").status, 200);

  // Requests are counted once their response is written (httplib's logger),
  // so the client can read /metrics a moment before its own reply counts.
  const std::string third_200 = "mixpeft_serve_requests_total{endpoint=\"POST /v1/classify\",code=\"200\"} 3";
  Reply m = call("GET", "/metrics");
  for (int i = 0; i < 200 && m.text.find(third_200) == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    m = call("GET", "/metrics");
  }
  ASSERT_EQ(m.status, 200);
  EXPECT_NE(m.text.find("mixpeft_serve_requests_total{endpoint=\"POST /v1/classify\",code=\"200\"} 3"), std::string::npos)
      << m.text;
  EXPECT_NE(m.text.find("mixpeft_serve_requests_total{endpoint=\"POST /v1/classify\",code=\"503\"} 1"), std::string::npos);
  EXPECT_NE(m.text.find("mixpeft_serve_errors_total{code=\"503\"} 1"), std::string::npos);
  EXPECT_NE(m.text.find("mixpeft_serve_overloaded_total 1"), std::string::npos);
  EXPECT_NE(m.text.find("mixpeft_serve_request_seconds_count{endpoint=\"POST /v1/classify\"} 4"), std::string::npos);
  EXPECT_NE(m.text.find("mixpeft_serve_batch_rows_count "), std::string::npos);
  EXPECT_NE(m.text.find("mixpeft_serve_adapter_cache_hits_total"), std::string::npos);
}

TEST_F(ServerTest, ConcurrentRequestsForDifferentProfilesShareABatch) {
  stop();
  std::filesystem::remove_all(dir_);
  start("", /*window_us=*/400000, /*max_queue=*/8);
  ASSERT_EQ(call("POST", "/v1/profiles", upload("p1")).status, 201);
  ASSERT_EQ(call("POST", "/v1/profiles", upload("p2")).status, 201);
  const int64_t v1 = call("GET", "/v1/profiles/p1").body["version"], v2 = call("GET", "/v1/profiles/p2").body["version"];
  ASSERT_NE(v1, v2);
  std::vector<std::thread> clients;
  std::vector<json> answers(3);
  const std::vector<std::string> profiles = {"p1", "p2", "p1"};
  for (int i = 0; i < 3; ++i)
    clients.emplace_back([&, i] {
      httplib::Client c("127.0.0.1", port_);
      c.set_read_timeout(20, 0);
      json body = {{"profile", profiles[i]}, {"input_ids", json::array({std::vector<int64_t>(size_t(i + 1), 5)})}};
      auto r = c.Post("/v1/classify", body.dump(), "application/json");
      if (r && r->status == 200) answers[i] = json::parse(r->body);
      else answers[i] = r ? std::to_string(r->status) + " " + r->body : "error " + httplib::to_string(r.error());
    });
  for (auto& t : clients) t.join();
  // Every answer is its own: its row's length and its profile's version.
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(answers[i].is_object()) << i << ": " << answers[i];
    EXPECT_EQ(answers[i]["profile"], profiles[i]);
    EXPECT_EQ(answers[i]["results"][0]["logits"][0], double(i + 1));
    EXPECT_EQ(answers[i]["results"][0]["logits"][1], double(profiles[i] == "p1" ? v1 : v2));
  }
  // The three arrived within the window: one batch of both profiles.
  std::lock_guard<std::mutex> lock(backend_.mutex);
  ASSERT_EQ(backend_.batches.size(), 1u);
  EXPECT_EQ(backend_.batches[0].size(), 3u);
  Reply m = call("GET", "/metrics");
  EXPECT_NE(m.text.find("mixpeft_serve_batch_profiles_bucket{le=\"1\"} 0"), std::string::npos) << m.text;
  // Three requests of one row each: one batch of three rows.
  EXPECT_NE(m.text.find("mixpeft_serve_batch_rows_bucket{le=\"2\"} 0"), std::string::npos) << m.text;
  EXPECT_NE(m.text.find("mixpeft_serve_batch_rows_bucket{le=\"4\"} 1"), std::string::npos) << m.text;
}

TEST_F(ServerTest, TokenGuardsProfileManagementOnly) {
  stop();
  std::filesystem::remove_all(dir_);
  start("s3cret");
  EXPECT_EQ(call("POST", "/v1/profiles", upload("p1")).status, 401);
  Reply wrong = call("GET", "/v1/profiles", "", "s3cre");
  EXPECT_EQ(wrong.status, 401);
  EXPECT_EQ(code(wrong), "unauthorized");
  EXPECT_EQ(call("GET", "/v1/profiles/p1").status, 401);
  EXPECT_EQ(call("DELETE", "/v1/profiles/p1").status, 401);
  ASSERT_EQ(call("POST", "/v1/profiles", upload("p1"), "s3cret").status, 201);
  EXPECT_EQ(call("GET", "/v1/profiles", "", "s3cret").status, 200);
  // Inference, health and metrics need no token.
  EXPECT_EQ(call("POST", "/v1/classify", R"({"profile": "p1", "text": "a"})").status, 200);
  EXPECT_EQ(call("GET", "/health").status, 200);
  EXPECT_EQ(call("GET", "/metrics").status, 200);
}

}  // namespace
}  // namespace mixpeft::serve
