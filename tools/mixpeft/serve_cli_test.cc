// `mixpeft serve` end to end: the real binary started on 127.0.0.1 with
// --port 0 (bounded in time, killed on failure), talked to over HTTP with
// httplib's client. Profiles are made with `mixpeft init-adapter` on the
// bert_cls fixture, then given random float tensors here (seeded) so that
// each profile moves the logits its own way.
#include <httplib.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <random>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "cli_test_util.h"
#include "core/test_util.h"
#include "mixpeft/serve.h"
#include "serve/http_test_util.h"

namespace {

using json = nlohmann::json;
using mixpeft::testing::CliRun;
using mixpeft::testing::run_cli;
using mixpeft::testing::slurp;
namespace fs = std::filesystem;

const std::string kModel = std::string(MIXPEFT_TEST_DATA) + "/fixtures/bert_cls";

// Every F32 tensor of a safetensors buffer refilled with uniform values in
// [-0.3, 0.3] from `seed` (header and layout unchanged).
std::string randomize_f32(std::string bytes, uint32_t seed) {
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= uint64_t(uint8_t(bytes[size_t(i)])) << (8 * i);
  json header = json::parse(bytes.substr(8, n));
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-0.3f, 0.3f);
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__" || it.value()["dtype"] != "F32") continue;
    const size_t begin = it.value()["data_offsets"][0], end = it.value()["data_offsets"][1];
    for (size_t off = begin; off + 4 <= end; off += 4) {
      const float v = dist(rng);
      std::memcpy(&bytes[8 + n + off], &v, 4);
    }
  }
  return bytes;
}

// A running `mixpeft serve`; SIGKILLed on destruction if still running.
class ServerProcess {
 public:
  ServerProcess(const std::vector<std::string>& args, const std::string& log) {
    int fds[2];
    if (pipe(fds) != 0) throw std::runtime_error("pipe failed");
    pid_ = fork();
    if (pid_ == 0) {
      dup2(fds[1], 1);
      close(fds[0]);
      close(fds[1]);
      const int err = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (err >= 0) dup2(err, 2);
      std::vector<std::string> all = {MIXPEFT_CLI_PATH, "--threads", "1", "serve"};
      all.insert(all.end(), args.begin(), args.end());
      std::vector<char*> argv;
      for (auto& a : all) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    close(fds[1]);
    out_ = fds[0];
    // The first line says where it listens; 120 s covers loading the model
    // on a loaded machine.
    std::string line;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    while (line.find('\n') == std::string::npos && std::chrono::steady_clock::now() < deadline) {
      pollfd p{out_, POLLIN, 0};
      if (poll(&p, 1, 200) <= 0) continue;
      char buf[256];
      const ssize_t got = read(out_, buf, sizeof buf);
      if (got <= 0) break;
      line.append(buf, size_t(got));
    }
    const std::string prefix = "listening on 127.0.0.1:";
    if (line.rfind(prefix, 0) != 0) {
      kill_now();
      throw std::runtime_error("mixpeft serve did not start: stdout \"" + line + "\", stderr " + slurp(log));
    }
    port = std::stoi(line.substr(prefix.size()));
  }
  ~ServerProcess() {
    kill_now();
    if (out_ >= 0) close(out_);
  }
  // SIGTERM, then the exit status (-1 if it had to be killed after 30 s).
  int stop() {
    if (pid_ <= 0) return -1;
    kill(pid_, SIGTERM);
    for (int i = 0; i < 300; ++i) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    kill_now();
    return -1;
  }
  bool alive() const { return pid_ > 0 && waitpid(pid_, nullptr, WNOHANG) == 0; }
  int port = 0;

 private:
  void kill_now() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
  }
  pid_t pid_ = -1;
  int out_ = -1;
};

using Reply = mixpeft::testing::HttpReply;

Reply call(int port, const std::string& method, const std::string& path, const std::string& body = "",
           const std::string& token = "") {
  httplib::Client c("127.0.0.1", port);
  c.set_read_timeout(60, 0);
  c.set_connection_timeout(10, 0);
  return mixpeft::testing::http_call(c, method, path, body, token);
}

std::vector<int64_t> ids(int64_t length, int64_t start) {
  std::vector<int64_t> r;
  for (int64_t i = 0; i < length; ++i) r.push_back(5 + (start * 7 + i * 13) % 200);
  return r;
}

double max_diff(const json& a, const json& b) {
  double d = 0;
  if (!a.is_array() || !b.is_array() || a.size() != b.size()) return 1e9;
  for (size_t i = 0; i < a.size(); ++i) d = std::max(d, std::abs(a[i].get<double>() - b[i].get<double>()));
  return d;
}

class ServeCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    adapters_ = new mixpeft::testing::TempDir();
    const json head = json::array({"classifier"});
    const std::vector<std::pair<std::string, json>> configs = {
        {"lora", {{"peft_type", "LORA"}, {"r", 4}, {"target_modules", {"query", "value"}}, {"modules_to_save", head}}},
        {"moslora", {{"peft_type", "MOSLORA"}, {"r", 4}, {"target_modules", {"key"}}, {"modules_to_save", head}}},
        {"xpeft", {{"peft_type", "XPEFT"}, {"num_adapters", 4}, {"bottleneck_size", 8}, {"modules_to_save", head}}},
    };
    for (const auto& [kind, config] : configs) {
      const std::string dir = adapters_->path() + "/" + kind;
      CliRun r = run_cli("init-adapter --model " + kModel + " --config '" + config.dump() + "' --out " + dir);
      ASSERT_EQ(r.code, 0) << r.err;
      configs_[kind] = json::parse(slurp(dir + "/adapter_config.json"));
      tensors_[kind] = slurp(dir + "/adapter_model.safetensors");
    }
  }
  static void TearDownTestSuite() {
    delete adapters_;
    adapters_ = nullptr;
  }

  void SetUp() override {
    dir_ = ::testing::TempDir() + "serve_cli_" + std::to_string(getpid()) + "_" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    server_.reset();
    fs::remove_all(dir_);
  }

  void start(std::vector<std::string> extra = {}, const std::string& model = kModel) {
    std::vector<std::string> args = {"--model", model, "--store", dir_ + "/profiles.db", "--port", "0"};
    args.insert(args.end(), extra.begin(), extra.end());
    server_ = std::make_unique<ServerProcess>(args, dir_ + "/serve.log");
  }
  int port() const { return server_->port; }

  // A profile of `kind` whose float tensors come from `seed`.
  static std::string upload(const std::string& name, const std::string& kind, uint32_t seed) {
    return json{{"name", name},
                {"kind", configs_[kind]["peft_type"]},
                {"config", configs_[kind]},
                {"tensors", mixpeft::serve::base64_encode(randomize_f32(tensors_[kind], seed))}}
        .dump();
  }
  Reply classify(const std::string& profile, const std::vector<int64_t>& row) {
    return call(port(), "POST", "/v1/classify", json{{"profile", profile}, {"input_ids", {row}}}.dump());
  }

  std::string dir_;
  std::unique_ptr<ServerProcess> server_;
  static mixpeft::testing::TempDir* adapters_;
  static std::map<std::string, json> configs_;
  static std::map<std::string, std::string> tensors_;
};

}  // namespace

mixpeft::testing::TempDir* ServeCli::adapters_ = nullptr;
std::map<std::string, json> ServeCli::configs_;
std::map<std::string, std::string> ServeCli::tensors_;

TEST_F(ServeCli, MixedBatchEqualsEachProfileServedAlone) {
  // A long window: the concurrent requests below share one forward pass.
  start({"--batch-window-us", "300000"});
  const std::vector<std::pair<std::string, std::string>> profiles = {
      {"lora-1", "lora"}, {"lora-2", "lora"}, {"mos-1", "moslora"}, {"xp-1", "xpeft"}, {"xp-2", "xpeft"}};
  uint32_t seed = 11;
  for (const auto& [name, kind] : profiles) {
    Reply r = call(port(), "POST", "/v1/profiles", upload(name, kind, seed++));
    ASSERT_EQ(r.status, 201) << r.text;
  }
  std::vector<std::thread> clients;
  std::vector<Reply> mixed(profiles.size());
  for (size_t i = 0; i < profiles.size(); ++i)
    clients.emplace_back([&, i] { mixed[i] = classify(profiles[i].first, ids(4 + 3 * int64_t(i), int64_t(i))); });
  for (auto& t : clients) t.join();
  Reply m = call(port(), "GET", "/metrics");
  for (size_t i = 0; i < profiles.size(); ++i) {
    ASSERT_EQ(mixed[i].status, 200) << mixed[i].text;
    Reply alone = classify(profiles[i].first, ids(4 + 3 * int64_t(i), int64_t(i)));
    ASSERT_EQ(alone.status, 200) << alone.text;
    EXPECT_LE(max_diff(mixed[i].body["results"][0]["logits"], alone.body["results"][0]["logits"]), 1e-5)
        << profiles[i].first << "\n" << mixed[i].text << "\n" << alone.text;
  }
  // The same input gives different logits under different profiles.
  Reply a = classify("lora-1", ids(6, 1)), b = classify("lora-2", ids(6, 1)), c = classify("xp-1", ids(6, 1));
  EXPECT_GT(max_diff(a.body["results"][0]["logits"], b.body["results"][0]["logits"]), 1e-3);
  EXPECT_GT(max_diff(a.body["results"][0]["logits"], c.body["results"][0]["logits"]), 1e-3);
  // At least one forward pass held rows of more than one profile.
  const std::string one = "mixpeft_serve_batch_profiles_bucket{le=\"1\"} ";
  const std::string all = "mixpeft_serve_batch_profiles_count ";
  ASSERT_NE(m.text.find(one), std::string::npos) << m.text;
  const long single = std::stol(m.text.substr(m.text.find(one) + one.size()));
  const long batches = std::stol(m.text.substr(m.text.find(all) + all.size()));
  EXPECT_LT(single, batches) << m.text;
  EXPECT_EQ(server_->stop(), 0);
}

TEST_F(ServeCli, EveryBadInputGetsItsStatus) {
  start({"--token", "tok", "--max-body-mb", "1", "--max-seq-len", "16", "--max-batch", "2"});
  ASSERT_EQ(call(port(), "POST", "/v1/profiles", upload("p", "lora", 1), "tok").status, 201);
  struct Case {
    std::string method, path, body, token;
    int status;
  };
  json corrupt = json::parse(upload("broken", "lora", 2));
  corrupt["tensors"] = mixpeft::serve::base64_encode("not a safetensors file");
  json wrong_shapes = json::parse(upload("shapes", "lora", 3));
  wrong_shapes["tensors"] = mixpeft::serve::base64_encode(randomize_f32(tensors_["moslora"], 3));
  const std::vector<Case> cases = {
      {"POST", "/v1/classify", "{\"profile\": ", "", 400},
      {"POST", "/v1/classify", R"({"profile": "p", "input_ids": [[1]], "extra": 1})", "", 400},
      {"POST", "/v1/classify", R"({"profile": "nobody", "input_ids": [[1]]})", "", 404},
      {"POST", "/v1/classify", R"({"profile": "p", "text": "no tokenizer here"})", "", 400},
      {"POST", "/v1/classify", R"({"profile": "p", "input_ids": [[1, 99999]]})", "", 400},
      {"POST", "/v1/classify", R"({"profile": "p", "input_ids": [[1], [2], [3]]})", "", 400},
      {"POST", "/v1/classify", json{{"profile", "p"}, {"input_ids", {ids(17, 1)}}}.dump(), "", 400},
      {"POST", "/v1/generate", R"({"profile": "p", "input_ids": [1, 2]})", "", 400},  // wrong task
      {"POST", "/v1/classify", json{{"profile", "p"}, {"text", std::string(2 << 20, 'a')}}.dump(), "", 413},
      {"POST", "/v1/profiles", upload("q", "lora", 4), "", 401},
      {"POST", "/v1/profiles", upload("q", "lora", 4), "wrong", 401},
      {"POST", "/v1/profiles", upload("bad/name", "lora", 4), "tok", 400},
      {"POST", "/v1/profiles", corrupt.dump(), "tok", 400},
      {"POST", "/v1/profiles", wrong_shapes.dump(), "tok", 400},
      {"POST", "/v1/profiles", upload("p", "lora", 5), "tok", 409},
      {"GET", "/v1/profiles/nobody", "", "tok", 404},
      {"DELETE", "/v1/profiles/nobody", "", "tok", 404},
      {"GET", "/v1/nothing", "", "", 404},
  };
  for (const auto& c : cases) {
    Reply r = call(port(), c.method, c.path, c.body, c.token);
    EXPECT_EQ(r.status, c.status) << c.method << " " << c.path << " " << c.body.substr(0, 200) << "\n" << r.text;
    EXPECT_TRUE(r.body.is_object() && r.body.contains("error")) << r.text;
  }
  // Nothing refused was stored, and the server is still up.
  Reply list = call(port(), "GET", "/v1/profiles", "", "tok");
  ASSERT_EQ(list.status, 200);
  EXPECT_EQ(list.body["profiles"].size(), 1u) << list.text;
  EXPECT_TRUE(server_->alive());
}

TEST_F(ServeCli, RestartKeepsEveryProfile) {
  start();
  for (int i = 0; i < 3; ++i)
    ASSERT_EQ(call(port(), "POST", "/v1/profiles", upload("p" + std::to_string(i), i == 2 ? "xpeft" : "lora", 20 + i)).status, 201);
  Reply before = classify("p2", ids(7, 2));
  ASSERT_EQ(before.status, 200) << before.text;
  ASSERT_EQ(server_->stop(), 0);
  start();
  Reply list = call(port(), "GET", "/v1/profiles");
  ASSERT_EQ(list.status, 200);
  ASSERT_EQ(list.body["profiles"].size(), 3u) << list.text;
  Reply after = classify("p2", ids(7, 2));
  ASSERT_EQ(after.status, 200) << after.text;
  EXPECT_LE(max_diff(before.body["results"][0]["logits"], after.body["results"][0]["logits"]), 1e-6);
}

TEST_F(ServeCli, ProfilesComeAndGoUnderLoad) {
  start({"--batch-window-us", "1000"});
  ASSERT_EQ(call(port(), "POST", "/v1/profiles", upload("stable-a", "lora", 31)).status, 201);
  ASSERT_EQ(call(port(), "POST", "/v1/profiles", upload("stable-b", "xpeft", 32)).status, 201);
  const Reply want_a = classify("stable-a", ids(5, 1)), want_b = classify("stable-b", ids(5, 1));
  ASSERT_EQ(want_a.status, 200);
  ASSERT_EQ(want_b.status, 200);
  std::atomic<bool> done{false};
  std::atomic<int> served{0}, wrong{0}, failed{0}, churn_ok{0};
  std::vector<std::thread> load;
  for (int t = 0; t < 3; ++t)
    load.emplace_back([&, t] {
      while (!done) {
        const bool a = (t + served) % 2 == 0;
        Reply r = classify(a ? "stable-a" : "stable-b", ids(5, 1));
        if (r.status != 200) {
          ++failed;
          continue;
        }
        ++served;
        if (max_diff(r.body["results"][0]["logits"], (a ? want_a : want_b).body["results"][0]["logits"]) > 1e-5) ++wrong;
      }
    });
  std::thread churn([&] {
    for (int i = 0; i < 15; ++i) {
      const std::string name = "temp-" + std::to_string(i % 3);
      if (call(port(), "POST", "/v1/profiles", upload(name, i % 2 ? "lora" : "xpeft", 100 + i)).status != 201) continue;
      Reply r = classify(name, ids(4, i));
      Reply d = call(port(), "DELETE", "/v1/profiles/" + name);
      Reply gone = classify(name, ids(4, i));
      if (r.status == 200 && d.status == 200 && gone.status == 404) ++churn_ok;
    }
  });
  churn.join();
  done = true;
  for (auto& t : load) t.join();
  EXPECT_EQ(churn_ok, 15);
  EXPECT_GT(served, 0);
  EXPECT_EQ(wrong, 0);
  EXPECT_EQ(failed, 0);
  EXPECT_TRUE(server_->alive());
  EXPECT_EQ(call(port(), "GET", "/health").status, 200);
  EXPECT_EQ(server_->stop(), 0);
}

TEST_F(ServeCli, GenerateMatchesMixpeftGenerateWithTheSameAdapter) {
  // The Hugging Face fixture adapter on the llama fixture, served, against
  // `mixpeft generate --adapter` (PeftModel::load, no server code).
  const std::string model = std::string(MIXPEFT_TEST_DATA) + "/fixtures/llama";
  CliRun ref = run_cli("--threads 1 generate --model " + model + " --adapter " + model + "/adapter --ids '5 17 42' --max-new-tokens 8");
  ASSERT_EQ(ref.code, 0) << ref.err;
  const std::string prefix = "new ids";
  const size_t at = ref.out.find(prefix);
  ASSERT_NE(at, std::string::npos) << ref.out;
  std::istringstream line(ref.out.substr(at + prefix.size(), ref.out.find('\n', at) - at - prefix.size()));
  std::vector<int64_t> want;
  for (int64_t id; line >> id;) want.push_back(id);
  ASSERT_EQ(want.size(), 8u) << ref.out;

  start({}, model);
  const json upload = {{"name", "fixture"},
                       {"kind", "LORA"},
                       {"config", json::parse(slurp(model + "/adapter/adapter_config.json"))},
                       {"tensors", mixpeft::serve::base64_encode(slurp(model + "/adapter/adapter_model.safetensors"))}};
  ASSERT_EQ(call(port(), "POST", "/v1/profiles", upload.dump()).status, 201);
  Reply g = call(port(), "POST", "/v1/generate", R"({"profile": "fixture", "input_ids": [5, 17, 42], "max_new_tokens": 8})");
  ASSERT_EQ(g.status, 200) << g.text;
  EXPECT_EQ(g.body["tokens"].get<std::vector<int64_t>>(), want) << g.text << "\n" << ref.out;
  EXPECT_EQ(g.body["finish_reason"], "length");
  // Streamed: the same tokens, one line each as they come, then the answer.
  Reply s = call(port(), "POST", "/v1/generate",
                 R"({"profile": "fixture", "input_ids": [5, 17, 42], "max_new_tokens": 8, "stream": true})");
  ASSERT_EQ(s.status, 200) << s.text;
  std::istringstream lines(s.text);
  std::vector<int64_t> streamed;
  json last;
  for (std::string l; std::getline(lines, l);) {
    json j = json::parse(l);
    if (j.contains("token")) streamed.push_back(j["token"]);
    else last = j;
  }
  EXPECT_EQ(streamed, want) << s.text;
  EXPECT_EQ(last["tokens"].get<std::vector<int64_t>>(), want) << s.text;
  // The base model alone generates something else: the adapter was applied.
  CliRun base = run_cli("--threads 1 generate --model " + model + " --ids '5 17 42' --max-new-tokens 8");
  EXPECT_EQ(base.out.find(ref.out.substr(at, ref.out.find('\n', at) - at)), std::string::npos) << base.out;
  // And a classifier request on a causal LM is the wrong task.
  EXPECT_EQ(call(port(), "POST", "/v1/classify", R"({"profile": "fixture", "input_ids": [[5]]})").status, 400);
  EXPECT_EQ(server_->stop(), 0);
}
