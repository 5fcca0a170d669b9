#include "tokenizer_added_tokens.hpp"

#include <algorithm>

#include "utf8.hpp"

namespace tessera::data {
namespace {

// Rust regex's \s, which HF uses for lstrip/rstrip: the White_Space property.
bool white_space(char32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F ||
         cp == 0x3000;
}

// Start of the whitespace run that ends `text`.
size_t space_leftmost_at_end(std::string_view text) {
  size_t i = text.size();
  while (i > 0) {
    size_t j = i - 1;
    while (j > 0 && (static_cast<unsigned char>(text[j]) & 0xC0) == 0x80) --j;
    char32_t cp = 0;
    utf8::decode(text, j, cp);
    if (!white_space(cp)) break;
    i = j;
  }
  return i;
}

// Length of the whitespace run that starts `text`.
size_t space_rightmost_at_start(std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    char32_t cp = 0;
    const size_t len = utf8::decode(text, i, cp);
    if (!white_space(cp)) break;
    i += len;
  }
  return i;
}

}  // namespace

AddedTokenMatcher::AddedTokenMatcher(std::vector<std::string> patterns, std::vector<const AddedToken*> tokens)
    : trie_(1) {
  bool any_single_word = false;
  for (size_t t = 0; t < patterns.size(); ++t) {
    const std::string& pattern = patterns[t];
    if (pattern.empty()) continue;
    int32_t node = 0;
    for (const char c : pattern) {
      const auto byte = static_cast<unsigned char>(c);
      auto& next = trie_[node].next;
      auto it = std::find_if(next.begin(), next.end(), [&](const auto& e) { return e.first == byte; });
      if (it == next.end()) {
        trie_.push_back({});
        trie_[node].next.emplace_back(byte, static_cast<int32_t>(trie_.size() - 1));
        node = static_cast<int32_t>(trie_.size() - 1);
      } else {
        node = it->second;
      }
    }
    if (trie_[node].token >= 0) continue;  // an identical earlier pattern wins
    trie_[node].token = static_cast<int32_t>(tokens_.size());
    tokens_.push_back(tokens[t]);
    first_byte_[static_cast<unsigned char>(pattern[0])] = true;
    any_single_word = any_single_word || tokens[t]->single_word;
  }
  if (any_single_word) {
    // Rust regex's Unicode \w, which HF's single_word test uses.
    word_ = std::make_unique<Regex>("[\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\p{Join_Control}]");
  }
}

AddedTokenMatcher::AddedTokenMatcher(AddedTokenMatcher&&) noexcept = default;
AddedTokenMatcher& AddedTokenMatcher::operator=(AddedTokenMatcher&&) noexcept = default;
AddedTokenMatcher::~AddedTokenMatcher() = default;

int32_t AddedTokenMatcher::longest_at(std::string_view text, size_t at, size_t& length) const {
  int32_t node = 0;
  int32_t best = -1;
  for (size_t i = at; i < text.size(); ++i) {
    const auto byte = static_cast<unsigned char>(text[i]);
    const auto& next = trie_[node].next;
    auto it = std::find_if(next.begin(), next.end(), [&](const auto& e) { return e.first == byte; });
    if (it == next.end()) break;
    node = it->second;
    if (trie_[node].token >= 0) {
      best = trie_[node].token;
      length = i + 1 - at;
    }
  }
  return best;
}

bool AddedTokenMatcher::word_char(char32_t cp, RegexScratch& scratch) const {
  std::string one;
  utf8::append(one, cp);
  return word_->matches_at(one, 0, scratch);
}

void AddedTokenMatcher::split(std::string_view text, bool skip_special, RegexScratch& scratch,
                              std::vector<Segment>& out) const {
  size_t start_offset = 0;  // end of what has been emitted
  size_t search = 0;        // where the next match may start: the end of the previous match found
  while (!tokens_.empty() && search < text.size()) {
    size_t start = search;
    size_t length = 0;
    int32_t index = -1;
    for (; start < text.size(); ++start) {
      if (!first_byte_[static_cast<unsigned char>(text[start])]) continue;
      index = longest_at(text, start, length);
      if (index >= 0) break;
    }
    if (index < 0) break;
    size_t stop = start + length;
    search = stop;
    const AddedToken& token = *tokens_[index];
    if (skip_special && token.special) continue;
    if (token.single_word) {
      const bool start_space = start == 0 || !word_char(utf8::last(text.substr(0, start)), scratch);
      char32_t next = 0;
      if (stop < text.size()) utf8::decode(text, stop, next);
      const bool stop_space = stop == text.size() || !word_char(next, scratch);
      if (!start_space || !stop_space) continue;
    }
    if (token.lstrip) start = std::max(space_leftmost_at_end(text.substr(0, start)), start_offset);
    if (token.rstrip) stop += space_rightmost_at_start(text.substr(stop));
    if (start_offset < start) out.push_back({start_offset, start, -1});
    out.push_back({start, stop, token.id});
    start_offset = stop;
  }
  if (start_offset < text.size()) out.push_back({start_offset, text.size(), -1});
}

}  // namespace tessera::data
