#include "tokenizer_regex.hpp"

#include <cctype>
#include <utility>

#include "tokenizer_unicode_tables.hpp"

namespace tessera::data {
namespace {

// Class items (no brackets) for \p{L} or \p{N} as HF's Oniguruma defines them: PCRE2's property plus what
// a newer Unicode added.
std::string property_items(std::string_view property, std::span<const unicode::Range> extra) {
  std::string items = fmt::format("\\p{{{}}}", property);
  for (const auto& r : extra) {
    items += fmt::format("\\x{{{:X}}}", static_cast<uint32_t>(r.first));
    if (r.last != r.first) items += fmt::format("-\\x{{{:X}}}", static_cast<uint32_t>(r.last));
  }
  return items;
}

class Translator {
 public:
  explicit Translator(std::string_view p) : p_(p) {}

  std::string run() {
    while (i_ < p_.size()) {
      const char c = p_[i_];
      if (c == '\\') {
        escape(false);
      } else if (c == '[') {
        char_class();
      } else if (c == '^' || c == '$') {
        refuse(std::string(1, c), "Oniguruma anchors it at line ends, PCRE2 at the subject's");
      } else if (c == '(' && i_ + 2 < p_.size() && p_[i_ + 1] == '?' &&
                 (std::isalpha(static_cast<unsigned char>(p_[i_ + 2])) || p_[i_ + 2] == '-')) {
        inline_options();
      } else {
        out_ += c;
        ++i_;
      }
    }
    return std::move(out_);
  }

 private:
  [[noreturn]] void refuse(const std::string& construct, std::string_view why) const {
    TESSERA_FAIL("regex construct '{}' at offset {} is not supported ({})", construct, i_, why);
  }

  // (?i:...), (?x) and friends: only options that mean the same in both engines pass.
  void inline_options() {
    size_t j = i_ + 2;
    while (j < p_.size() && (std::isalpha(static_cast<unsigned char>(p_[j])) || p_[j] == '-')) {
      if (p_[j] != 'i' && p_[j] != 'x' && p_[j] != '-') {
        refuse(std::string(p_.substr(i_, j + 1 - i_)), "inline option letters differ between Oniguruma and PCRE2");
      }
      ++j;
    }
    out_ += p_.substr(i_, j - i_);
    i_ = j;
  }

  // Reads "{Name}" after \p or \P and returns the class items it stands for.
  std::string property() {
    const size_t open = i_ + 2;
    if (open >= p_.size() || p_[open] != '{') refuse(std::string(p_.substr(i_, 2)), "only \\p{L} and \\p{N}");
    const size_t close = p_.find('}', open);
    if (close == std::string_view::npos) refuse(std::string(p_.substr(i_)), "unterminated property");
    const std::string_view name = p_.substr(open + 1, close - open - 1);
    std::string items;
    if (name == "L") {
      items = property_items("L", unicode::extra_letters());
    } else if (name == "N") {
      items = property_items("N", unicode::extra_numbers());
    } else {
      refuse(std::string(p_.substr(i_, close + 1 - i_)), "only \\p{L} and \\p{N} are translated");
    }
    i_ = close + 1;
    return items;
  }

  void escape(bool in_class) {
    if (i_ + 1 >= p_.size()) refuse("\\", "trailing backslash");
    const char e = p_[i_ + 1];
    const std::string spaces = unicode::kOnigSpaceItems;
    switch (e) {
      case 's':
        out_ += in_class ? spaces : "[" + spaces + "]";
        i_ += 2;
        return;
      case 'S':
        if (in_class) refuse("\\S", "negated class inside a class");
        out_ += "[^" + spaces + "]";
        i_ += 2;
        return;
      case 'p':
      case 'P': {
        if (e == 'P' && in_class) refuse("\\P", "negated property inside a class");
        const std::string items = property();
        out_ += in_class ? items : (e == 'p' ? "[" : "[^") + items + "]";
        return;
      }
      case 'u': {  // Oniguruma's \uHHHH
        if (i_ + 6 > p_.size()) refuse("\\u", "expected four hex digits");
        out_ += "\\x{" + std::string(p_.substr(i_ + 2, 4)) + "}";
        i_ += 6;
        return;
      }
      case 'v':  // a vertical tab in Oniguruma, a class of vertical space in PCRE2
        out_ += "\\x0B";
        i_ += 2;
        return;
      case 't':
      case 'n':
      case 'r':
      case 'f':
      case 'e':
      case 'a':
      case 'x':
        out_ += p_.substr(i_, 2);
        i_ += 2;
        return;
      case 'A':
      case 'z':
        if (in_class) break;
        out_ += p_.substr(i_, 2);
        i_ += 2;
        return;
      default:
        if (!std::isalnum(static_cast<unsigned char>(e))) {  // an escaped punctuation character
          out_ += p_.substr(i_, 2);
          i_ += 2;
          return;
        }
    }
    refuse(std::string(p_.substr(i_, 2)), "its Unicode meaning differs between Oniguruma and PCRE2");
  }

  void char_class() {
    out_ += '[';
    ++i_;
    if (i_ < p_.size() && p_[i_] == '^') {
      out_ += '^';
      ++i_;
    }
    if (i_ < p_.size() && p_[i_] == ']') refuse("[]", "a leading ']' in a class");
    while (i_ < p_.size() && p_[i_] != ']') {
      const char c = p_[i_];
      if (c == '\\') {
        escape(true);
      } else if (c == '[') {
        refuse("[", "nested classes and POSIX classes");
      } else if (c == '&' && i_ + 1 < p_.size() && p_[i_ + 1] == '&') {
        refuse("&&", "class intersection");
      } else {
        out_ += c;
        ++i_;
      }
    }
    if (i_ >= p_.size()) refuse("[", "unterminated class");
    out_ += ']';
    ++i_;
  }

  std::string_view p_;
  size_t i_ = 0;
  std::string out_;
};

std::string pcre2_message(int code) {
  PCRE2_UCHAR buffer[256];
  pcre2_get_error_message(code, buffer, sizeof(buffer));
  return reinterpret_cast<const char*>(buffer);
}

}  // namespace

std::string onig_to_pcre2(std::string_view onig_pattern) { return Translator(onig_pattern).run(); }

std::string literal_pattern(std::string_view literal) {
  std::string out;
  for (const char c : literal) {
    const auto u = static_cast<unsigned char>(c);
    if (u >= 0x80 || std::isalnum(u)) {
      out += c;
    } else if (u < 0x20 || u == 0x7F) {
      out += fmt::format("\\x{{{:X}}}", u);
    } else {
      out += '\\';
      out += c;
    }
  }
  return out;
}

RegexScratch::~RegexScratch() {
  pcre2_match_data_free(match_);
  pcre2_match_context_free(context_);
  pcre2_jit_stack_free(stack_);
}

Regex::Regex(const std::string& pcre2_pattern) {
  pcre2_compile_context* context = pcre2_compile_context_create(nullptr);
  pcre2_set_newline(context, PCRE2_NEWLINE_LF);
  int error = 0;
  PCRE2_SIZE error_offset = 0;
  code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pcre2_pattern.data()), pcre2_pattern.size(),
                        PCRE2_UTF | PCRE2_UCP, &error, &error_offset, context);
  pcre2_compile_context_free(context);
  TESSERA_CHECK(code_ != nullptr, "PCRE2 refuses the pattern at offset {}: {}", error_offset, pcre2_message(error));
  uint32_t min_length = 0;
  pcre2_pattern_info(code_, PCRE2_INFO_MINLENGTH, &min_length);
  if (min_length == 0) {
    pcre2_code_free(code_);
    code_ = nullptr;
    TESSERA_FAIL("the pattern can match the empty string, which tessera does not split on");
  }
  // Without JIT support PCRE2's interpreter gives the same matches, only slower.
  jit_ = pcre2_jit_compile(code_, PCRE2_JIT_COMPLETE) == 0;
}

Regex::Regex(Regex&& other) noexcept : code_(std::exchange(other.code_, nullptr)), jit_(other.jit_) {}

Regex& Regex::operator=(Regex&& other) noexcept {
  if (this != &other) {
    pcre2_code_free(code_);
    code_ = std::exchange(other.code_, nullptr);
    jit_ = other.jit_;
  }
  return *this;
}

Regex::~Regex() { pcre2_code_free(code_); }

int Regex::run(std::string_view text, size_t offset, uint32_t options, RegexScratch& scratch) const {
  if (scratch.match_ == nullptr) scratch.match_ = pcre2_match_data_create(1, nullptr);
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  for (;;) {
    // JIT code is compiled unanchored; an anchored test goes through pcre2_match, which then interprets.
    const int rc = jit_ && options == 0 ? pcre2_jit_match(code_, subject, text.size(), offset, options, scratch.match_,
                                          scratch.context_)
                        : pcre2_match(code_, subject, text.size(), offset, options | PCRE2_NO_UTF_CHECK,
                                      scratch.match_, scratch.context_);
    if (rc != PCRE2_ERROR_JIT_STACKLIMIT || scratch.stack_ != nullptr) return rc;
    // The default 32 KiB machine stack was not enough (very long runs); give this call a large one.
    scratch.context_ = pcre2_match_context_create(nullptr);
    scratch.stack_ = pcre2_jit_stack_create(64 * 1024, 256 * 1024 * 1024, nullptr);
    TESSERA_CHECK(scratch.context_ != nullptr && scratch.stack_ != nullptr, "out of memory for a PCRE2 JIT stack");
    pcre2_jit_stack_assign(scratch.context_, nullptr, scratch.stack_);
  }
}

bool Regex::match_at(std::string_view text, size_t offset, RegexScratch& scratch, size_t& begin,
                     size_t& end) const {
  const int rc = run(text, offset, 0, scratch);
  if (rc == PCRE2_ERROR_NOMATCH) return false;
  TESSERA_CHECK(rc >= 0, "PCRE2 failed while splitting text: {}", pcre2_message(rc));
  const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(scratch.match_);
  begin = ovector[0];
  end = ovector[1];
  return true;
}

bool Regex::matches_at(std::string_view text, size_t offset, RegexScratch& scratch) const {
  const int rc = run(text, offset, PCRE2_ANCHORED, scratch);
  if (rc == PCRE2_ERROR_NOMATCH) return false;
  TESSERA_CHECK(rc >= 0, "PCRE2 failed on a class test: {}", pcre2_message(rc));
  return true;
}

}  // namespace tessera::data
