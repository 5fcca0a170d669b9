#pragma once
// The pre-tokenizer steps HF applies to each piece of normalised text: Split (a regex or a literal, with
// one of HF's five delimiter behaviours, optionally inverted) and ByteLevel (an optional prefix space and
// the optional GPT-2 regex; its byte-to-character mapping happens in the BPE model on raw bytes).

#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer_regex.hpp"

namespace tessera::data {

enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

struct PreTokenizerStep {
  enum class Kind { kSplit, kByteLevel } kind = Kind::kSplit;
  // Split: the regex, what happens to matches, and whether matches and gaps swap roles.
  // ByteLevel: the GPT-2 regex when use_regex (split Isolated), and add_prefix_space.
  std::optional<Regex> regex;
  SplitBehavior behavior = SplitBehavior::kIsolated;
  bool invert = false;
  bool add_prefix_space = false;
};

struct PreTokenizerScratch {
  RegexScratch regex;
  std::vector<std::string_view> current, next;
  std::deque<std::string> owned;  // pieces that gained a prefix space
  struct Split {
    size_t begin, end;
    bool flag;  // is a match (before the behaviour fold), then "remove" (after it)
  };
  std::vector<Split> splits;
};

// The GPT-2 regex that ByteLevel uses when use_regex is true, in Oniguruma syntax.
inline constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

class PreTokenizer {
 public:
  explicit PreTokenizer(std::vector<PreTokenizerStep> steps);

  // Replaces `out` with the pre-tokens of `text` (valid UTF-8). Views point into `text` or into
  // scratch.owned, which must outlive their use.
  void run(std::string_view text, PreTokenizerScratch& scratch, std::vector<std::string_view>& out) const;

 private:
  void split(const PreTokenizerStep& step, std::string_view piece, PreTokenizerScratch& scratch,
             std::vector<std::string_view>& out) const;
  std::vector<PreTokenizerStep> steps_;
};

}  // namespace tessera::data
