// GPT-2's byte-to-unicode table: every byte becomes one printable character
// (printable Latin-1 bytes stay themselves, the others map to U+0100 and up;
// the space byte is "Ġ"), so BPE works on text and decoding is exact.
#pragma once

#include <array>
#include <string>
#include <string_view>

namespace mixpeft::tok::detail {

// UTF-8 of the character that stands for each byte.
const std::array<std::string, 256>& byte_to_unicode();

// The byte that code point cp stands for, or -1 when cp is not in the table.
int unicode_to_byte(char32_t cp);

// Appends the byte-level form of `bytes` to out.
void append_byte_level(std::string_view bytes, std::string& out);

// Appends the bytes a byte-level token stands for. A token with a character
// outside the table (an added token such as "<|im_end|>" typed in another
// script) is copied as its own UTF-8, as HF's ByteLevel decoder does.
void append_token_bytes(std::string_view token, std::string& out);

}  // namespace mixpeft::tok::detail
