#include "tokenizer_pretokenizer.hpp"

#include <algorithm>
#include <utility>

namespace tessera::data {

PreTokenizer::PreTokenizer(std::vector<PreTokenizerStep> steps) : steps_(std::move(steps)) {
  // ByteLevel without prefix space or regex leaves pieces as they are (its byte mapping is the BPE's job).
  std::erase_if(steps_, [](const PreTokenizerStep& s) {
    return s.kind == PreTokenizerStep::Kind::kByteLevel && !s.add_prefix_space && !s.regex;
  });
}

void PreTokenizer::split(const PreTokenizerStep& step, std::string_view piece, PreTokenizerScratch& scratch,
                         std::vector<std::string_view>& out) const {
  auto emit = [&](size_t begin, size_t end) {
    if (end > begin) out.push_back(piece.substr(begin, end - begin));
  };
  if (step.behavior == SplitBehavior::kIsolated) {
    // Matches and gaps alike become pieces, so inversion does not matter: the common case, done directly.
    size_t previous = 0;
    step.regex->for_each_match(piece, scratch.regex, [&](size_t begin, size_t end) {
      emit(previous, begin);
      emit(begin, end);
      previous = end;
    });
    emit(previous, piece.size());
    return;
  }

  // HF's Pattern::find_matches: gaps and matches in order, flagged whether they matched.
  auto& splits = scratch.splits;
  splits.clear();
  size_t previous = 0;
  step.regex->for_each_match(piece, scratch.regex, [&](size_t begin, size_t end) {
    if (previous != begin) splits.push_back({previous, begin, step.invert});
    splits.push_back({begin, end, !step.invert});
    previous = end;
  });
  if (previous != piece.size()) splits.push_back({previous, piece.size(), step.invert});

  // HF's NormalizedString::split fold; afterwards `flag` means "remove".
  std::vector<PreTokenizerScratch::Split> folded;
  bool previous_match = false;
  switch (step.behavior) {
    case SplitBehavior::kRemoved:
      folded = splits;
      break;
    case SplitBehavior::kContiguous:
      for (const auto& s : splits) {
        if (s.flag == previous_match && !folded.empty()) {
          folded.back().end = s.end;
        } else {
          folded.push_back({s.begin, s.end, false});
        }
        previous_match = s.flag;
      }
      break;
    case SplitBehavior::kMergedWithPrevious:
      for (const auto& s : splits) {
        if (s.flag && !previous_match && !folded.empty()) {
          folded.back().end = s.end;
        } else {
          folded.push_back({s.begin, s.end, false});
        }
        previous_match = s.flag;
      }
      break;
    case SplitBehavior::kMergedWithNext:
      for (auto it = splits.rbegin(); it != splits.rend(); ++it) {
        if (it->flag && !previous_match && !folded.empty()) {
          folded.back().begin = it->begin;
        } else {
          folded.push_back({it->begin, it->end, false});
        }
        previous_match = it->flag;
      }
      std::reverse(folded.begin(), folded.end());
      break;
    case SplitBehavior::kIsolated:
      break;
  }
  for (const auto& s : folded) {
    if (!s.flag) emit(s.begin, s.end);
  }
}

void PreTokenizer::run(std::string_view text, PreTokenizerScratch& scratch, std::vector<std::string_view>& out) const {
  out.clear();
  if (text.empty()) return;
  out.push_back(text);
  for (const PreTokenizerStep& step : steps_) {
    scratch.next.clear();
    for (std::string_view piece : out) {
      if (step.kind == PreTokenizerStep::Kind::kByteLevel && step.add_prefix_space && piece.front() != ' ') {
        piece = scratch.owned.emplace_back(" " + std::string(piece));
      }
      if (step.regex) {
        split(step, piece, scratch, scratch.next);
      } else {
        scratch.next.push_back(piece);
      }
    }
    std::swap(out, scratch.next);
  }
}

}  // namespace tessera::data
