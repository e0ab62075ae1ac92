// UTF-8 helpers and the Unicode data the tokenizers need (normalization
// forms, per-character lower-casing, general categories), backed by ICU.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace mixpeft::tok::detail {

// Decodes the code point at s[pos] and advances pos. The input must be valid
// UTF-8 (checked once by find_invalid_utf8).
inline char32_t next_code_point(std::string_view s, size_t& pos) {
  const auto b0 = static_cast<unsigned char>(s[pos]);
  if (b0 < 0x80) {
    ++pos;
    return b0;
  }
  int n = b0 >= 0xF0 ? 3 : b0 >= 0xE0 ? 2 : 1;
  char32_t cp = b0 & (0x3F >> n);
  for (int i = 1; i <= n; ++i) cp = (cp << 6) | (static_cast<unsigned char>(s[pos + i]) & 0x3F);
  pos += n + 1;
  return cp;
}

// Byte length of the UTF-8 sequence that starts with lead byte b.
inline size_t utf8_length(unsigned char b) {
  return b < 0x80 ? 1 : b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : 2;
}

// Offset of the first byte that breaks UTF-8 (overlongs, surrogates and
// truncated sequences included), or npos when s is valid.
size_t find_invalid_utf8(std::string_view s);

// Throws kInvalidArgument naming `where` and the byte offset when s is not UTF-8.
void check_utf8(std::string_view s, const char* where);

void append_utf8(std::string& out, char32_t cp);

// Bytes to text, each maximal invalid subsequence replaced by U+FFFD (the
// behaviour of Python's errors="replace" and Rust's from_utf8_lossy).
std::string utf8_lossy(std::string_view bytes);

enum class NormForm { kNFC, kNFD, kNFKC, kNFKD };
std::string normalize(std::string_view s, NormForm form);

// Python's per-character str.lower() (full case mapping, no context: a
// capital sigma always becomes U+03C3).
std::string lowercase_chars(std::string_view s);

// Drops non-spacing marks (category Mn) after NFD: HF's _run_strip_accents.
std::string strip_accents(std::string_view s);

bool is_nonspacing_mark(char32_t cp);   // Mn
bool is_bert_control(char32_t cp);      // category C*, except \t \n \r
bool is_bert_whitespace(char32_t cp);   // ' ', \t, \n, \r or category Zs
bool is_bert_punctuation(char32_t cp);  // ASCII 33-47, 58-64, 91-96, 123-126 or category P*
bool is_cjk(char32_t cp);               // HF BasicTokenizer._is_chinese_char ranges
bool is_python_space(char32_t cp);      // Python str.isspace()
bool is_word_char(char32_t cp);         // alphanumeric or '_' (added tokens' single_word)

}  // namespace mixpeft::tok::detail
