#include "tokenizer_normalizer.hpp"

#include <utf8proc.h>

#include <cstdlib>
#include <cstring>

#include "tessera/core/error.hpp"
#include "tokenizer_unicode_tables.hpp"
#include "utf8.hpp"

namespace tessera::data {
namespace {

constexpr char32_t kCodeSpace = 0x110000;

void append_nfc(std::string_view piece, std::string& out) {
  if (piece.empty()) return;
  utf8proc_uint8_t* result = nullptr;
  const utf8proc_ssize_t n =
      utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(piece.data()), static_cast<utf8proc_ssize_t>(piece.size()),
                   &result, static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  TESSERA_CHECK(n >= 0, "utf8proc could not normalise text: {}", utf8proc_errmsg(n));
  out.append(reinterpret_cast<const char*>(result), static_cast<size_t>(n));
  std::free(result);
}

}  // namespace

NfcNormalizer::NfcNormalizer() : active_(kCodeSpace / 64), inert_(kCodeSpace / 64) {
  utf8proc_int32_t buffer[32];
  for (char32_t cp = 0x80; cp < kCodeSpace; ++cp) {
    if (cp >= 0xD800 && cp <= 0xDFFF) continue;
    // Precomposed Hangul syllables decompose algorithmically but are NFC unless a trailing jamo follows,
    // and the jamo (U+1100..U+11FF) are marked active below.
    if (cp >= 0xAC00 && cp <= 0xD7A3) continue;
    const auto c = static_cast<utf8proc_int32_t>(cp);
    if (utf8proc_get_property(c)->combining_class != 0) set(active_, cp);
    int boundclass = 0;
    const utf8proc_ssize_t n = utf8proc_decompose_char(
        c, buffer, 32, static_cast<utf8proc_option_t>(UTF8PROC_DECOMPOSE | UTF8PROC_STABLE), &boundclass);
    if (n > 1 || (n == 1 && buffer[0] != c)) {
      set(active_, cp);
      // Anything after the first code point of a decomposition can compose with what precedes it.
      for (utf8proc_ssize_t k = 1; k < n; ++k) set(active_, static_cast<char32_t>(buffer[k]));
    }
  }
  for (char32_t cp = 0x1100; cp <= 0x11FF; ++cp) set(active_, cp);
  for (const auto& r : unicode::nfc_inert()) {
    for (char32_t cp = r.first; cp <= r.last; ++cp) {
      set(inert_, cp);
      set(active_, cp);
    }
  }
}

std::string_view NfcNormalizer::apply(std::string_view text, std::string& storage) const {
  bool stable = true;
  for (size_t i = 0; i < text.size();) {
    if (static_cast<unsigned char>(text[i]) < 0x80) {
      ++i;
      continue;
    }
    char32_t cp = 0;
    i += utf8::decode(text, i, cp);
    if (test(active_, cp)) {
      stable = false;
      break;
    }
  }
  if (stable) return text;

  // NFC(x d y) == NFC(x) d NFC(y) when d is a starter that neither decomposes nor composes, which is what
  // HF's tables make of the code points they do not know.
  storage.clear();
  size_t start = 0;
  for (size_t i = 0; i < text.size();) {
    char32_t cp = 0;
    const size_t len = utf8::decode(text, i, cp);
    if (cp >= 0x80 && test(inert_, cp)) {
      append_nfc(text.substr(start, i - start), storage);
      storage.append(text.substr(i, len));
      start = i + len;
    }
    i += len;
  }
  append_nfc(text.substr(start), storage);
  return storage;
}

}  // namespace tessera::data
