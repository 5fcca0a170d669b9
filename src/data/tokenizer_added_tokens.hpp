#pragma once
// Added tokens (special tokens such as <|im_start|>, and others such as Qwen3's <think>) are found in the
// text before anything else and never split. This reproduces HF's AddedVocabulary::find_matches: a
// leftmost-longest scan over the token contents, then per token the single_word test and the lstrip/rstrip
// widening over whitespace, with HF's exact quirks (a skipped match still consumes its bytes).

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer_regex.hpp"

namespace tessera::data {

struct AddedToken {
  std::string content;
  int32_t id = -1;
  bool special = false;
  bool lstrip = false;
  bool rstrip = false;
  bool single_word = false;
  bool normalized = false;
};

// A piece of text: either an added token (id >= 0) or text still to tokenize (id < 0).
struct Segment {
  size_t begin = 0;
  size_t end = 0;
  int32_t id = -1;
};

class AddedTokenMatcher {
 public:
  // `patterns[i]` is what to look for (the content, or its normalised form) for `tokens[i]`. Earlier
  // patterns win ties between identical patterns, as in HF.
  AddedTokenMatcher(std::vector<std::string> patterns, std::vector<const AddedToken*> tokens);
  AddedTokenMatcher(AddedTokenMatcher&&) noexcept;
  AddedTokenMatcher& operator=(AddedTokenMatcher&&) noexcept;
  ~AddedTokenMatcher();

  bool empty() const { return tokens_.empty(); }

  // Appends the segments covering `text` (valid UTF-8) to `out`, offsets relative to `text`. With
  // skip_special, special tokens are not recognised (HF's encode_special_tokens).
  void split(std::string_view text, bool skip_special, RegexScratch& scratch, std::vector<Segment>& out) const;

 private:
  struct Node {
    std::vector<std::pair<unsigned char, int32_t>> next;
    int32_t token = -1;  // index into tokens_ when a pattern ends here
  };
  // Longest pattern starting at text[at]: its token index and length, or -1.
  int32_t longest_at(std::string_view text, size_t at, size_t& length) const;
  bool word_char(char32_t cp, RegexScratch& scratch) const;

  std::vector<Node> trie_;
  std::vector<const AddedToken*> tokens_;
  bool first_byte_[256] = {};
  std::unique_ptr<Regex> word_;  // Rust regex \w, only built when a token is single_word
};

}  // namespace tessera::data
