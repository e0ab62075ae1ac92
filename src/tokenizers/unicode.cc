#include "tokenizers/unicode.h"

#include <unicode/uchar.h>
#include <unicode/unorm2.h>
#include <unicode/ustring.h>

#include <vector>

#include "mixpeft/error.h"

namespace mixpeft::tok::detail {
namespace {

bool is_ascii(std::string_view s) {
  for (char c : s) {
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  }
  return true;
}

std::u16string to_utf16(std::string_view s) {
  std::u16string out(s.size(), u'\0');  // UTF-16 never needs more units than UTF-8 bytes
  int32_t len = 0;
  UErrorCode status = U_ZERO_ERROR;
  u_strFromUTF8(reinterpret_cast<UChar*>(out.data()), static_cast<int32_t>(out.size()), &len,
                s.data(), static_cast<int32_t>(s.size()), &status);
  MIXPEFT_CHECK(U_SUCCESS(status), ErrorKind::kInternal, "unicode: UTF-8 to UTF-16 failed: ",
                u_errorName(status));
  out.resize(len);
  return out;
}

std::string to_utf8(const std::u16string& s) {
  std::string out(s.size() * 3, '\0');
  int32_t len = 0;
  UErrorCode status = U_ZERO_ERROR;
  u_strToUTF8(out.data(), static_cast<int32_t>(out.size()), &len,
              reinterpret_cast<const UChar*>(s.data()), static_cast<int32_t>(s.size()), &status);
  MIXPEFT_CHECK(U_SUCCESS(status), ErrorKind::kInternal, "unicode: UTF-16 to UTF-8 failed: ",
                u_errorName(status));
  out.resize(len);
  return out;
}

const UNormalizer2* normalizer(NormForm form) {
  UErrorCode status = U_ZERO_ERROR;
  const UNormalizer2* n = nullptr;
  switch (form) {
    case NormForm::kNFC: n = unorm2_getNFCInstance(&status); break;
    case NormForm::kNFD: n = unorm2_getNFDInstance(&status); break;
    case NormForm::kNFKC: n = unorm2_getNFKCInstance(&status); break;
    case NormForm::kNFKD: n = unorm2_getNFKDInstance(&status); break;
  }
  MIXPEFT_CHECK(U_SUCCESS(status) && n, ErrorKind::kInternal,
                "unicode: ICU normalizer unavailable: ", u_errorName(status));
  return n;
}

bool in_range(unsigned char b, unsigned lo, unsigned hi) { return b >= lo && b <= hi; }

// Length of the well-formed prefix (1..4) of the sequence at s[pos], and
// whether it is complete. A lone invalid byte gives {1, false}.
std::pair<size_t, bool> utf8_prefix(std::string_view s, size_t pos) {
  const auto b0 = static_cast<unsigned char>(s[pos]);
  if (b0 < 0x80) return {1, true};
  size_t need;
  unsigned lo = 0x80, hi = 0xBF;  // range of the second byte
  if (in_range(b0, 0xC2, 0xDF)) {
    need = 2;
  } else if (in_range(b0, 0xE0, 0xEF)) {
    need = 3;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (in_range(b0, 0xF0, 0xF4)) {
    need = 4;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return {1, false};
  }
  size_t n = 1;
  while (n < need && pos + n < s.size()) {
    const auto b = static_cast<unsigned char>(s[pos + n]);
    if (n == 1 ? !in_range(b, lo, hi) : !in_range(b, 0x80, 0xBF)) break;
    ++n;
  }
  return {n, n == need};
}

}  // namespace

size_t find_invalid_utf8(std::string_view s) {
  size_t pos = 0;
  while (pos < s.size()) {
    if (static_cast<unsigned char>(s[pos]) < 0x80) {
      ++pos;
      continue;
    }
    auto [n, ok] = utf8_prefix(s, pos);
    if (!ok) return pos;
    pos += n;
  }
  return std::string_view::npos;
}

void check_utf8(std::string_view s, const char* where) {
  size_t bad = find_invalid_utf8(s);
  MIXPEFT_CHECK(bad == std::string_view::npos, ErrorKind::kInvalidArgument, where,
                ": text is not valid UTF-8 (bad byte at offset ", bad, ")");
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

std::string utf8_lossy(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  size_t pos = 0;
  while (pos < bytes.size()) {
    auto [n, ok] = utf8_prefix(bytes, pos);
    if (ok) {
      out.append(bytes.substr(pos, n));
    } else {
      out += "\xEF\xBF\xBD";  // U+FFFD for the maximal invalid subpart
    }
    pos += n;
  }
  return out;
}

std::string normalize(std::string_view s, NormForm form) {
  if (is_ascii(s)) return std::string(s);  // ASCII is invariant under all four forms
  const UNormalizer2* n = normalizer(form);
  std::u16string src = to_utf16(s);
  UErrorCode status = U_ZERO_ERROR;
  if (unorm2_isNormalized(n, reinterpret_cast<const UChar*>(src.data()),
                          static_cast<int32_t>(src.size()), &status) &&
      U_SUCCESS(status)) {
    return std::string(s);
  }
  status = U_ZERO_ERROR;
  std::u16string dst(src.size() * 4 + 16, u'\0');
  int32_t len = unorm2_normalize(n, reinterpret_cast<const UChar*>(src.data()),
                                 static_cast<int32_t>(src.size()),
                                 reinterpret_cast<UChar*>(dst.data()),
                                 static_cast<int32_t>(dst.size()), &status);
  if (status == U_BUFFER_OVERFLOW_ERROR) {
    status = U_ZERO_ERROR;
    dst.assign(len, u'\0');
    len = unorm2_normalize(n, reinterpret_cast<const UChar*>(src.data()),
                           static_cast<int32_t>(src.size()), reinterpret_cast<UChar*>(dst.data()),
                           static_cast<int32_t>(dst.size()), &status);
  }
  MIXPEFT_CHECK(U_SUCCESS(status), ErrorKind::kInternal, "unicode: normalization failed: ",
                u_errorName(status));
  dst.resize(len);
  return to_utf8(dst);
}

std::string lowercase_chars(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t pos = 0;
  while (pos < s.size()) {
    const auto b = static_cast<unsigned char>(s[pos]);
    if (b < 0x80) {
      out += static_cast<char>(b >= 'A' && b <= 'Z' ? b + 32 : b);
      ++pos;
      continue;
    }
    char32_t cp = next_code_point(s, pos);
    // U+0130 is the only code point whose context-free full lowercase mapping
    // (SpecialCasing.txt) is not its simple one: "i" + U+0307.
    if (cp == 0x130) {
      out += "i\xCC\x87";
    } else {
      append_utf8(out, static_cast<char32_t>(u_tolower(static_cast<UChar32>(cp))));
    }
  }
  return out;
}

std::string strip_accents(std::string_view s) {
  std::string nfd = normalize(s, NormForm::kNFD);
  std::string out;
  out.reserve(nfd.size());
  size_t pos = 0;
  while (pos < nfd.size()) {
    size_t start = pos;
    char32_t cp = next_code_point(nfd, pos);
    if (!is_nonspacing_mark(cp)) out.append(nfd, start, pos - start);
  }
  return out;
}

bool is_nonspacing_mark(char32_t cp) {
  return cp >= 0x300 && u_charType(static_cast<UChar32>(cp)) == U_NON_SPACING_MARK;
}

bool is_bert_control(char32_t cp) {
  if (cp == '\t' || cp == '\n' || cp == '\r') return false;
  switch (u_charType(static_cast<UChar32>(cp))) {
    case U_CONTROL_CHAR:
    case U_FORMAT_CHAR:
    case U_UNASSIGNED:
    case U_PRIVATE_USE_CHAR:
    case U_SURROGATE:
      return true;
    default:
      return false;
  }
}

bool is_bert_whitespace(char32_t cp) {
  if (cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r') return true;
  return cp >= 0x80 && u_charType(static_cast<UChar32>(cp)) == U_SPACE_SEPARATOR;
}

bool is_bert_punctuation(char32_t cp) {
  if ((cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) ||
      (cp >= 123 && cp <= 126)) {
    return true;
  }
  if (cp < 0x80) return false;
  switch (u_charType(static_cast<UChar32>(cp))) {
    case U_DASH_PUNCTUATION:
    case U_START_PUNCTUATION:
    case U_END_PUNCTUATION:
    case U_CONNECTOR_PUNCTUATION:
    case U_OTHER_PUNCTUATION:
    case U_INITIAL_PUNCTUATION:
    case U_FINAL_PUNCTUATION:
      return true;
    default:
      return false;
  }
}

bool is_cjk(char32_t cp) {
  return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
         (cp >= 0x20000 && cp <= 0x2A6DF) || (cp >= 0x2A700 && cp <= 0x2B73F) ||
         (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B820 && cp <= 0x2CEAF) ||
         (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

bool is_python_space(char32_t cp) {
  if ((cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20)) return true;
  switch (cp) {
    case 0x85: case 0xA0: case 0x1680: case 0x2028: case 0x2029:
    case 0x202F: case 0x205F: case 0x3000:
      return true;
    default:
      return cp >= 0x2000 && cp <= 0x200A;
  }
}

bool is_word_char(char32_t cp) {
  return cp == '_' || u_isalnum(static_cast<UChar32>(cp));
}

}  // namespace mixpeft::tok::detail
