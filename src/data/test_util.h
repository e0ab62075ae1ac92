// Helpers shared by the src/data tests: fixture tokenizers, and the
// temporary folders and error assertions of core/test_util.h.
#pragma once

#include <memory>
#include <string>

#include "core/test_util.h"
#include "mixpeft/tokenizer.h"

namespace mixpeft::data::testing {

using mixpeft::testing::TempDir;
using mixpeft::testing::throws_error_starting_with;

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

}  // namespace mixpeft::data::testing
