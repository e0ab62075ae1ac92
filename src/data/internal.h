// Private helpers of src/data: message formatting, hashing and the
// tokenization cache.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "mixpeft/data.h"

namespace mixpeft::data::detail {

// `s` in double quotes; control bytes escaped (\n, \t, \xNN); cut after
// `max` bytes with "...".
std::string quote(std::string_view s, size_t max = 120);
// "\"a\", \"b\", \"c\"" (each quoted); after `max_items` items ", ... (N in all)".
std::string quote_list(const std::vector<std::string>& items, size_t max_items = 30);

// SHA-256 (FIPS 180-4), incremental.
class Sha256 {
 public:
  Sha256();
  void update(const void* data, size_t n);
  void update(std::string_view s) { update(s.data(), s.size()); }
  // Appends the length (u64 little-endian) then the bytes: unambiguous framing.
  void update_framed(std::string_view s);
  std::array<uint8_t, 32> digest();  // finishes; the object must not be reused
  std::string hex_digest();

 private:
  void block(const uint8_t* p);
  std::array<uint32_t, 8> h_;
  std::array<uint8_t, 64> buf_;
  size_t buf_len_ = 0;
  uint64_t total_ = 0;
};
std::string sha256_hex(std::string_view data);

// Version of the cache layout and of the tokenization rules; bump it when
// either changes so that old caches are ignored.
constexpr const char* kCacheFormat = "mixpeft-data-cache/1";

// Writes every split of `ds` into one safetensors file (atomically).
void write_cache(const std::string& path, const Dataset& ds);
// Reads a cache file written by write_cache. Returns false (and leaves `ds`
// untouched) when the file is absent, unreadable, of another format, for
// another key, or inconsistent: the caller then tokenizes and rewrites it.
bool read_cache(const std::string& path, const std::string& key, Dataset& ds);

}  // namespace mixpeft::data::detail
