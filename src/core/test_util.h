// Helpers every test program may use, torch-free: assertions on the
// mixpeft::Error a call throws, and a temporary folder.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "mixpeft/error.h"

namespace mixpeft::testing {

namespace internal {

// Runs `fn` and checks the mixpeft::Error it throws: its kind, then
// `check(message)`, which returns an empty string when the message is right
// and otherwise what is wrong with it. Failures print the actual kind and
// message.
inline ::testing::AssertionResult check_error(const std::function<void()>& fn, ErrorKind kind,
                                              const std::function<std::string(const std::string&)>& check) {
  try {
    fn();
  } catch (const Error& e) {
    const std::string msg = e.what();
    if (e.kind() != kind) {
      return ::testing::AssertionFailure()
             << "kind " << to_string(e.kind()) << " instead of " << to_string(kind) << ": " << msg;
    }
    const std::string wrong = check(msg);
    if (!wrong.empty()) return ::testing::AssertionFailure() << wrong << ": " << msg;
    return ::testing::AssertionSuccess() << msg;
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << "threw a non-mixpeft exception: " << e.what();
  }
  return ::testing::AssertionFailure() << "did not throw";
}

inline std::string missing_part(const std::string& msg, const std::vector<std::string>& needles) {
  for (const std::string& n : needles)
    if (msg.find(n) == std::string::npos) return "message lacks \"" + n + "\"";
  return "";
}

}  // namespace internal

// Runs `fn`, expects a mixpeft::Error of `kind` whose message contains every
// one of `needles`. Use as EXPECT_TRUE(throws_error(...)).
inline ::testing::AssertionResult throws_error(const std::function<void()>& fn, ErrorKind kind,
                                               const std::vector<std::string>& needles) {
  return internal::check_error(fn, kind, [&](const std::string& msg) { return internal::missing_part(msg, needles); });
}

// The same, and the message starts with `prefix` (where the error came from).
inline ::testing::AssertionResult throws_error_starting_with(const std::function<void()>& fn, ErrorKind kind,
                                                             const std::string& prefix,
                                                             const std::vector<std::string>& needles = {}) {
  return internal::check_error(fn, kind, [&](const std::string& msg) {
    if (msg.rfind(prefix, 0) != 0) return "message does not start with \"" + prefix + "\"";
    return internal::missing_part(msg, needles);
  });
}

// Runs `fn`, expects a mixpeft::Error of `kind` whose message is `message`.
inline ::testing::AssertionResult throws_error_exactly(const std::function<void()>& fn, ErrorKind kind,
                                                       const std::string& message) {
  return internal::check_error(fn, kind, [&](const std::string& msg) {
    return msg == message ? std::string() : "message is not \"" + message + "\"";
  });
}

// A fresh folder under $TMPDIR, removed with its contents on destruction.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "mixpeft-test-XXXXXX").string();
    const char* p = ::mkdtemp(tmpl.data());
    if (p == nullptr) throw std::runtime_error("mkdtemp failed for " + tmpl);
    path_ = p;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  // Writes `contents` to `name` in this folder and returns its path.
  std::string write(const std::string& name, const std::string& contents) const {
    std::string p = file(name);
    std::ofstream out(p, std::ios::binary);
    out << contents;
    if (!out) throw std::runtime_error("cannot write " + p);
    return p;
  }

 private:
  std::string path_;
};

}  // namespace mixpeft::testing
