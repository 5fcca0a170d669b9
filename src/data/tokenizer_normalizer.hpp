#pragma once
// NFC as HF tokenizers applies it, computed with utf8proc. Two things make it more than utf8proc_NFC:
// speed (most text is already NFC, which a per-code-point bitmap proves without calling utf8proc) and
// HF's older Unicode tables (code points HF does not know are inert starters there, so the text is
// normalised in pieces around them; see tokenizer_unicode_tables.hpp).

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace tessera::data {

class NfcNormalizer {
 public:
  NfcNormalizer();

  // `text` (valid UTF-8) in NFC. Returns `text` itself when it is already NFC, else a view of `storage`.
  std::string_view apply(std::string_view text, std::string& storage) const;

 private:
  static bool test(const std::vector<uint64_t>& bits, char32_t cp) { return (bits[cp >> 6] >> (cp & 63)) & 1; }
  static void set(std::vector<uint64_t>& bits, char32_t cp) { bits[cp >> 6] |= uint64_t{1} << (cp & 63); }

  // Code points that may change under NFC or make a neighbour change: the rest is NFC whatever surrounds it.
  std::vector<uint64_t> active_;
  std::vector<uint64_t> inert_;
};

}  // namespace tessera::data
