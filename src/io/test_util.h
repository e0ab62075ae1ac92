// Helpers shared by the src/io tests: hand-built safetensors bytes, and the
// temporary folders and error assertions of core/test_util.h.
#pragma once

#include <cstdint>
#include <string>

#include "core/test_util.h"

namespace mixpeft::io::testing {

using mixpeft::testing::TempDir;
using mixpeft::testing::throws_error_starting_with;

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

}  // namespace mixpeft::io::testing
