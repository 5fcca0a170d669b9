#include "utf8.hpp"

#include <cstdint>
#include <cstring>

namespace tessera::data::utf8 {
namespace {

// For a lead byte: how many continuation bytes follow and the allowed range of the first one. The narrowed
// ranges (E0, ED, F0, F4) exclude overlong forms, surrogates and code points above U+10FFFF, so a sequence
// stops being a "maximal subpart" exactly where Python's decoder stops.
struct Lead {
  int continuation = -1;  // -1: not a lead byte
  unsigned char lo = 0x80, hi = 0xBF;
};

Lead lead(unsigned char b) {
  if (b >= 0xC2 && b <= 0xDF) return {1, 0x80, 0xBF};
  if (b == 0xE0) return {2, 0xA0, 0xBF};
  if (b == 0xED) return {2, 0x80, 0x9F};
  if (b >= 0xE1 && b <= 0xEF) return {2, 0x80, 0xBF};
  if (b == 0xF0) return {3, 0x90, 0xBF};
  if (b >= 0xF1 && b <= 0xF3) return {3, 0x80, 0xBF};
  if (b == 0xF4) return {3, 0x80, 0x8F};
  return {};
}

// Length of the well-formed sequence at s[i], or 0 with `consumed` set to the ill-formed subpart's length.
size_t sequence_at(std::string_view s, size_t i, size_t& consumed) {
  const auto b = static_cast<unsigned char>(s[i]);
  const Lead l = lead(b);
  if (l.continuation < 0) {
    consumed = 1;
    return 0;
  }
  size_t j = i + 1;
  for (int k = 0; k < l.continuation; ++k, ++j) {
    const unsigned char lo = k == 0 ? l.lo : 0x80;
    const unsigned char hi = k == 0 ? l.hi : 0xBF;
    if (j >= s.size() || static_cast<unsigned char>(s[j]) < lo || static_cast<unsigned char>(s[j]) > hi) {
      consumed = j - i;
      return 0;
    }
  }
  return j - i;
}

}  // namespace

size_t valid_prefix(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    // ASCII runs dominate real text; test eight bytes at a time.
    while (i + 8 <= s.size()) {
      uint64_t word = 0;
      std::memcpy(&word, s.data() + i, 8);
      if (word & 0x8080808080808080ULL) break;
      i += 8;
    }
    if (i >= s.size()) break;
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    size_t consumed = 0;
    const size_t n = sequence_at(s, i, consumed);
    if (n == 0) return i;
    i += n;
  }
  return s.size();
}

std::string replace_invalid(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 16);
  size_t i = 0;
  while (i < s.size()) {
    const size_t good = valid_prefix(s.substr(i));
    out.append(s.substr(i, good));
    i += good;
    if (i >= s.size()) break;
    size_t consumed = 0;
    sequence_at(s, i, consumed);
    out.append("\xEF\xBF\xBD");
    i += consumed;
  }
  return out;
}

void append(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

}  // namespace tessera::data::utf8
