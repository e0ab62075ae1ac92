// Helpers shared by the src/io tests: hand-built safetensors bytes, temporary
// folders and error assertions.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "mixpeft/error.h"

namespace mixpeft::io::testing {

// u64 little-endian length + header + data, the header taken verbatim.
inline std::string make_file(const std::string& header, const std::string& data = "") {
  std::string out(8, '\0');
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>(n >> (8 * i));
  return out + header + data;
}

// Same with an explicit (possibly lying) header length.
inline std::string make_file_with_length(uint64_t length, const std::string& rest) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>(length >> (8 * i));
  return out + rest;
}

// A fresh folder under $TMPDIR, removed with its contents on destruction.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "mixpeft-io-XXXXXX").string();
    char* p = ::mkdtemp(tmpl.data());
    if (p == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = p;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Runs `fn`, expects a mixpeft::Error of `kind` whose message starts with
// `prefix` and contains every string in `parts`.
template <typename Fn>
::testing::AssertionResult throws_error(Fn&& fn, ErrorKind kind, const std::string& prefix,
                                        const std::vector<std::string>& parts = {}) {
  try {
    fn();
  } catch (const Error& e) {
    std::string msg = e.what();
    if (e.kind() != kind) {
      return ::testing::AssertionFailure() << "kind " << to_string(e.kind()) << " instead of "
                                           << to_string(kind) << ": " << msg;
    }
    if (msg.rfind(prefix, 0) != 0) {
      return ::testing::AssertionFailure() << "message does not start with \"" << prefix << "\": " << msg;
    }
    for (const std::string& part : parts) {
      if (msg.find(part) == std::string::npos) {
        return ::testing::AssertionFailure() << "message lacks \"" << part << "\": " << msg;
      }
    }
    return ::testing::AssertionSuccess() << msg;
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << "threw a non-mixpeft exception: " << e.what();
  }
  return ::testing::AssertionFailure() << "did not throw";
}

}  // namespace mixpeft::io::testing
