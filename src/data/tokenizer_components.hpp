#pragma once
// Reading the pipeline components of tokenizer.json (normaliser, pre-tokenizer, decoder, post-processor).
// Each accepts exactly what tessera reproduces id for id and refuses the rest with the JSON path.

#include <cstdint>
#include <vector>

#include "tokenizer_json.hpp"
#include "tokenizer_pretokenizer.hpp"

namespace tessera::data {

// Whether the normaliser is NFC (a Sequence of NFC counts); throws for any other normaliser.
bool parse_normalizer(const JsonField& normalizer);

// Appends the steps of a pre-tokenizer (a Sequence is flattened).
void parse_pre_tokenizer(const JsonField& pre_tokenizer, std::vector<PreTokenizerStep>& steps);

// Accepts a ByteLevel decoder (alone or as the only member of a Sequence).
void parse_decoder(const JsonField& decoder);

// Adds the ids a post-processor puts around a single sequence to `prefix` and `suffix`.
void parse_post_processor(const JsonField& post_processor, std::vector<int32_t>& prefix,
                          std::vector<int32_t>& suffix);

}  // namespace tessera::data
