// Running the built `mixpeft` binary (MIXPEFT_CLI_PATH) from tests.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

namespace mixpeft::testing {

struct CliRun {
  int code = -1;
  std::string out;
  std::string err;
};

inline std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Runs `env mixpeft <args>` through the shell (`env`: variable assignments
// such as "A=1 B=2", or ""), stdin from /dev/null.
inline CliRun run_cli(const std::string& args, const std::string& env = "") {
  static int counter = 0;
  std::string base = ::testing::TempDir() + "mixpeft_cli_test_" + std::to_string(getpid()) + "_" +
                     std::to_string(counter++);
  std::string out = base + ".out", err = base + ".err";
  std::string cmd = env + std::string(" '") + MIXPEFT_CLI_PATH + "' " + args + " </dev/null >'" + out +
                    "' 2>'" + err + "'";
  int status = std::system(cmd.c_str());
  CliRun r;
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = slurp(out);
  r.err = slurp(err);
  std::remove(out.c_str());
  std::remove(err.c_str());
  return r;
}

inline bool has(const std::string& text, const std::string& needle) {
  return text.find(needle) != std::string::npos;
}

}  // namespace mixpeft::testing
