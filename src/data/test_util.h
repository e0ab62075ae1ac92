// Helpers shared by the src/data tests: temporary folders, files, fixture
// tokenizers and error assertions.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "mixpeft/error.h"
#include "mixpeft/tokenizer.h"

namespace mixpeft::data::testing {

// A fresh folder under $TMPDIR, removed with its contents on destruction.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "mixpeft-data-XXXXXX").string();
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

inline std::string tokenizer_dir(const std::string& name) {
  return std::string(MIXPEFT_TEST_DATA) + "/fixtures/tokenizers/" + name;
}

// The fixture tokenizers, loaded once per test program.
inline const tok::Tokenizer& bert() {
  static std::unique_ptr<tok::Tokenizer> t = tok::Tokenizer::load(tokenizer_dir("bert-base-uncased"));
  return *t;
}
inline const tok::Tokenizer& gpt2() {
  static std::unique_ptr<tok::Tokenizer> t = tok::Tokenizer::load(tokenizer_dir("gpt2"));
  return *t;
}

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

}  // namespace mixpeft::data::testing
