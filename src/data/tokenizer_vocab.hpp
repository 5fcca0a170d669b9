#pragma once
// The "model" (byte-level BPE vocabulary and merges) and "added_tokens" sections of tokenizer.json,
// validated the way HF reads them, with errors naming the JSON path.

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "bpe_model.hpp"
#include "tokenizer_added_tokens.hpp"
#include "tokenizer_json.hpp"

namespace tessera::data {

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};
using TokenMap = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

struct BpeSpec {
  std::vector<const std::string*> tokens;  // by id, null for unused ids; point into the parsed JSON
  TokenMap ids;                            // token string -> id
  std::array<int32_t, 256> byte_ids{};     // the single-byte token of each byte
  std::vector<MergeRule> merges;           // in rank order
  bool ignore_merges = false;
};

// Reads a byte-level BPE model; refuses other models and options that would change the ids.
BpeSpec read_bpe_model(const JsonField& model);

// Reads added_tokens. HF ignores the ids written there and assigns its own (the model's id when the
// content is in the vocabulary, else the next free one); a file where the two disagree is refused.
std::vector<AddedToken> read_added_tokens(const JsonField& list, const BpeSpec& model);

}  // namespace tessera::data
