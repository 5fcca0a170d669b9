#pragma once
// The split regexes of tokenizer.json are Oniguruma patterns (HF compiles them with onig). tessera runs them
// with PCRE2 (JIT, UTF + UCP) after translating the few constructs whose meaning differs: \s (Oniguruma's
// exact set), \p{L} and \p{N} (completed with the letters/numbers of Oniguruma's newer Unicode). Constructs
// whose meaning differs and that are not translated are refused rather than run with another meaning.

#ifndef PCRE2_CODE_UNIT_WIDTH
#define PCRE2_CODE_UNIT_WIDTH 8
#endif
#include <pcre2.h>

#include <cstddef>
#include <string>
#include <string_view>

#include "tessera/core/error.hpp"

namespace tessera::data {

// The PCRE2 pattern with the meaning `onig_pattern` has in HF. Throws tessera::Error saying which construct
// is unsupported (the caller adds the file and JSON path).
std::string onig_to_pcre2(std::string_view onig_pattern);

// A PCRE2 pattern matching `literal` exactly (HF's {"String": ...} split patterns).
std::string literal_pattern(std::string_view literal);

// Per-call match state: PCRE2 match data, and a JIT stack grown only if a match needs more than the default.
class RegexScratch {
 public:
  RegexScratch() = default;
  RegexScratch(const RegexScratch&) = delete;
  RegexScratch& operator=(const RegexScratch&) = delete;
  ~RegexScratch();

 private:
  friend class Regex;
  pcre2_match_data* match_ = nullptr;
  pcre2_match_context* context_ = nullptr;
  pcre2_jit_stack* stack_ = nullptr;
};

class Regex {
 public:
  // Compiles a PCRE2 pattern (UTF, UCP, LF newlines). Throws tessera::Error with PCRE2's reason, and
  // refuses patterns that can match the empty string (HF's iteration over empty matches is not replicated).
  explicit Regex(const std::string& pcre2_pattern);
  Regex(Regex&& other) noexcept;
  Regex& operator=(Regex&& other) noexcept;
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;
  ~Regex();

  // Calls on_match(begin, end) for each successive non-overlapping match in `text`, which must be valid
  // UTF-8 (not checked again here), scanning left to right as Oniguruma's find_iter does.
  template <class OnMatch>
  void for_each_match(std::string_view text, RegexScratch& scratch, OnMatch&& on_match) const {
    size_t offset = 0;
    while (offset < text.size()) {
      size_t begin = 0, end = 0;
      if (!match_at(text, offset, scratch, begin, end)) return;
      on_match(begin, end);
      offset = end;
    }
  }

  // Whether the pattern matches at exactly `offset` (anchored), for one-character class tests.
  bool matches_at(std::string_view text, size_t offset, RegexScratch& scratch) const;

 private:
  bool match_at(std::string_view text, size_t offset, RegexScratch& scratch, size_t& begin, size_t& end) const;
  int run(std::string_view text, size_t offset, uint32_t options, RegexScratch& scratch) const;

  pcre2_code* code_ = nullptr;
  bool jit_ = false;
};

}  // namespace tessera::data
