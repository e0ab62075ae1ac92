#include "tokenizers/byte_level.h"

#include "tokenizers/unicode.h"

namespace mixpeft::tok::detail {
namespace {

struct Tables {
  std::array<std::string, 256> to_unicode;
  std::array<int16_t, 512> to_byte;  // every mapped code point is < 0x144

  Tables() {
    to_byte.fill(-1);
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      char32_t cp = printable ? static_cast<char32_t>(b) : next++;
      append_utf8(to_unicode[b], cp);
      to_byte[cp] = static_cast<int16_t>(b);
    }
  }
};

const Tables& tables() {
  static const Tables t;
  return t;
}

}  // namespace

const std::array<std::string, 256>& byte_to_unicode() { return tables().to_unicode; }

int unicode_to_byte(char32_t cp) { return cp < 512 ? tables().to_byte[cp] : -1; }

void append_byte_level(std::string_view bytes, std::string& out) {
  const auto& t = tables().to_unicode;
  for (char c : bytes) out += t[static_cast<unsigned char>(c)];
}

void append_token_bytes(std::string_view token, std::string& out) {
  size_t start = out.size();
  size_t pos = 0;
  while (pos < token.size()) {
    int b = unicode_to_byte(next_code_point(token, pos));
    if (b < 0) {
      out.resize(start);
      out.append(token);
      return;
    }
    out += static_cast<char>(b);
  }
}

}  // namespace mixpeft::tok::detail
