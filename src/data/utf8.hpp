#pragma once
// UTF-8 helpers for the tokenizer. Hugging Face tokenizers works on Python str, so bytes that are not
// UTF-8 must first become text the way Python's bytes.decode("utf-8", errors="replace") makes it; the
// rest of the pipeline may then assume valid UTF-8 and decode without checks.

#include <cstddef>
#include <string>
#include <string_view>

namespace tessera::data::utf8 {

// Length of the longest prefix of `s` that is valid UTF-8 (== s.size() when all of it is).
size_t valid_prefix(std::string_view s);

// `s` with each maximal ill-formed subpart replaced by U+FFFD, as Python's "replace" error handler does.
std::string replace_invalid(std::string_view s);

// Appends the UTF-8 encoding of `cp` (a scalar value) to `out`.
void append(std::string& out, char32_t cp);

// Decodes the code point starting at s[i] in VALID UTF-8 and returns its length in bytes.
inline size_t decode(std::string_view s, size_t i, char32_t& cp) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) {
    cp = b0;
    return 1;
  }
  auto cont = [&](size_t k) { return static_cast<char32_t>(static_cast<unsigned char>(s[i + k]) & 0x3F); };
  if (b0 < 0xE0) {
    cp = (static_cast<char32_t>(b0 & 0x1F) << 6) | cont(1);
    return 2;
  }
  if (b0 < 0xF0) {
    cp = (static_cast<char32_t>(b0 & 0x0F) << 12) | (cont(1) << 6) | cont(2);
    return 3;
  }
  cp = (static_cast<char32_t>(b0 & 0x07) << 18) | (cont(1) << 12) | (cont(2) << 6) | cont(3);
  return 4;
}

// The last code point of non-empty VALID UTF-8.
inline char32_t last(std::string_view s) {
  size_t i = s.size() - 1;
  while (i > 0 && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) --i;
  char32_t cp = 0;
  decode(s, i, cp);
  return cp;
}

}  // namespace tessera::data::utf8
