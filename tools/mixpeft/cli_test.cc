// Runs the built `mixpeft` binary (MIXPEFT_CLI_PATH) and checks exit codes
// and messages: the contract scripts rely on.
#include <sys/wait.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include "cli_test_util.h"
#include <nlohmann/json.hpp>
#include <torch/cuda.h>

namespace {

using mixpeft::testing::CliRun;
using mixpeft::testing::has;
using mixpeft::testing::run_cli;

TEST(Cli, EnvWithoutBench) {
  CliRun r = run_cli("env --no-bench");
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_TRUE(has(r.out, "mixpeft ")) << r.out;
  EXPECT_TRUE(has(r.out, "libtorch")) << r.out;
  EXPECT_TRUE(has(r.out, "blas ")) << r.out;
  EXPECT_TRUE(has(r.out, "not measured (--no-bench)")) << r.out;
  EXPECT_EQ(r.err, "");
}

TEST(Cli, EnvJson) {
  CliRun r = run_cli("--threads 1 env --no-bench --json");
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["mixpeft"]["version"], MIXPEFT_VERSION);
  EXPECT_FALSE(j["blas"]["library"].get<std::string>().empty());
  EXPECT_EQ(j["threads"]["intra_op"], 1);  // --threads applied before the command
  EXPECT_TRUE(j["gemm"].empty());
}

TEST(Cli, GlobalOptionAfterTheCommand) {
  CliRun r = run_cli("env --no-bench --json --threads 1");
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["threads"]["intra_op"], 1);
}

TEST(Cli, Help) {
  CliRun r = run_cli("--help");
  EXPECT_EQ(r.code, 0);
  EXPECT_TRUE(has(r.out, "env")) << r.out;
  EXPECT_TRUE(has(r.out, "--threads")) << r.out;
  EXPECT_TRUE(has(r.out, "--device")) << r.out;

  CliRun sub = run_cli("env --help");
  EXPECT_EQ(sub.code, 0);
  EXPECT_TRUE(has(sub.out, "--no-bench")) << sub.out;
}

TEST(Cli, NoCommandPrintsHelp) {
  CliRun r = run_cli("");
  EXPECT_EQ(r.code, 0);
  EXPECT_TRUE(has(r.out, "env")) << r.out;
}

TEST(Cli, Version) {
  CliRun r = run_cli("--version");
  EXPECT_EQ(r.code, 0);
  EXPECT_TRUE(has(r.out, std::string("mixpeft ") + MIXPEFT_VERSION)) << r.out;
}

TEST(Cli, UnknownCommandIsAUsageError) {
  CliRun r = run_cli("frobnicate");
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(has(r.err, "unknown command 'frobnicate'")) << r.err;
}

TEST(Cli, BadOptionsAreUsageErrors) {
  CliRun r = run_cli("env --no-such-flag");
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(has(r.err, "mixpeft: ")) << r.err;
  EXPECT_TRUE(has(r.err, "--no-such-flag")) << r.err;
  EXPECT_TRUE(has(r.err, "mixpeft env --help")) << r.err;
  EXPECT_EQ(run_cli("--threads -1 env --no-bench").code, 2);
  EXPECT_EQ(run_cli("--threads many env --no-bench").code, 2);
}

TEST(Cli, BadDeviceIsAnError) {
  CliRun r = run_cli("--device tpu env --no-bench");
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(has(r.err, "mixpeft: invalid argument: --device tpu")) << r.err;
}

TEST(Cli, CudaWithoutCudaIsAClearError) {
  if (torch::cuda::is_available()) GTEST_SKIP() << "a GPU is visible";
  CliRun r = run_cli("--device cuda env --no-bench");
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(has(r.err, "mixpeft: unsupported: --device cuda")) << r.err;
  EXPECT_TRUE(has(r.err, "--device cpu")) << r.err;
  EXPECT_EQ(r.out, "");  // the command did not run
}

}  // namespace
