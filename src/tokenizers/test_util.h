// Shared helpers for the tokenizer tests: fixture paths and cases.jsonl.
#pragma once

#include <string>
#include <vector>

#include "mixpeft/tokenizer.h"

namespace mixpeft::tok::testing {

// One line of a cases.jsonl fixture: ids (and tokens, when listed) that HF
// gives for `text` without special tokens.
struct Case {
  std::string text;
  std::vector<TokenId> ids;
  std::vector<std::string> tokens;
  bool has_tokens = false;
};

// tests/data/fixtures/tokenizers/<name>
std::string fixture_dir(const std::string& name);
// deps/tokenizers/<name> (filled by scripts/fetch_tokenizers.sh)
std::string deps_dir(const std::string& name);
std::vector<Case> read_cases(const std::string& path);

// A fresh empty folder under the system temp dir.
std::string make_temp_dir(const std::string& tag);
void write_text(const std::string& path, const std::string& text);

}  // namespace mixpeft::tok::testing
