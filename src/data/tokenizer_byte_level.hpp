#pragma once
// GPT-2's bytes_to_unicode: byte-level vocabularies spell each byte as a printable character (a space is
// 'Ġ', a newline 'Ċ'), so token strings in tokenizer.json are these characters, not raw bytes.

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "utf8.hpp"

namespace tessera::data::byte_level {

// The character spelling each byte: printable Latin-1 bytes spell themselves, the other 68 bytes take
// U+0100.. in increasing byte order.
inline constexpr std::array<char32_t, 256> kByteToChar = [] {
  std::array<char32_t, 256> table{};
  char32_t next = 256;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    table[b] = printable ? static_cast<char32_t>(b) : next++;
  }
  return table;
}();

// The byte a character spells, or -1 when it is not one of the 256.
inline int char_to_byte(char32_t cp) {
  if (cp < 256) return kByteToChar[cp] == cp ? static_cast<int>(cp) : -1;
  if (cp >= 256 + 68) return -1;
  for (int b = 0; b < 256; ++b) {
    if (kByteToChar[b] == cp) return b;
  }
  return -1;
}

// The raw bytes a token string spells; false (and `out` unspecified) when a character is not a byte
// character. `token` must be valid UTF-8.
inline bool to_bytes(std::string_view token, std::string& out) {
  out.clear();
  for (size_t i = 0; i < token.size();) {
    char32_t cp = 0;
    i += utf8::decode(token, i, cp);
    const int b = char_to_byte(cp);
    if (b < 0) return false;
    out.push_back(static_cast<char>(b));
  }
  return true;
}

inline std::string spell(unsigned char byte) {
  std::string s;
  utf8::append(s, kByteToChar[byte]);
  return s;
}

}  // namespace tessera::data::byte_level
