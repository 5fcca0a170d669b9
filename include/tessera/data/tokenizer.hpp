#pragma once
// Byte-level BPE tokenizer read from a Hugging Face tokenizer.json (Qwen2/Qwen3, Llama-3 and GPT-2 style
// files). It gives the same ids as Hugging Face `tokenizers`, component for component: added tokens matched
// first (with their special/normalized/lstrip/rstrip/single_word flags), NFC, the Split/ByteLevel
// pre-tokenizers, BPE merges by rank, the ByteLevel decoder. A file using a component that would change the
// ids and that tessera does not implement is refused with the file and JSON path, never half-read.
//
// Input is bytes: text that is not valid UTF-8 is first decoded as Python's
// bytes.decode("utf-8", errors="replace") does, so ids match HF given that decoded str.
//
// A Tokenizer is immutable after load() and safe to use from many threads at once.

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace tessera::data {

class Tokenizer {
 public:
  // `path` is a tokenizer.json file or a directory holding one.
  static Tokenizer load(const std::string& path);

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  // The ids of `text` alone: HF's `encode(text, add_special_tokens=False)`. With allow_special=false,
  // special added tokens written in the text are encoded as plain text (HF's `encode_special_tokens=True`);
  // non-special added tokens (Qwen3's <think>) are still recognised, as in HF.
  std::vector<int32_t> encode(std::string_view text, bool allow_special = true) const;

  // encode() plus what the file's post-processor adds around a single sequence (Llama-3's
  // <|begin_of_text|>): HF's default `encode(text)`. Identical to encode() for Qwen files.
  std::vector<int32_t> encode_with_template(std::string_view text, bool allow_special = true) const;

  // Text of `ids` as HF's `decode` gives it (bytes that are not UTF-8 become U+FFFD). Unlike HF, an id
  // outside the vocabulary is an error rather than silently dropped.
  std::string decode(std::span<const int32_t> ids, bool skip_special = false) const;

  // Added tokens first, then the model vocabulary, as HF looks tokens up.
  std::optional<int32_t> token_to_id(std::string_view token) const;
  // The vocabulary string (byte-level characters, e.g. "Ġthe") or the added token's content (in NFC for a
  // `normalized` token when the file normalises, as HF spells it).
  std::string_view id_to_token(int32_t id) const;
  // True for added tokens marked special (what decode(skip_special=true) drops).
  bool is_special(int32_t id) const;

  // One past the largest id, added tokens included: the rows an embedding needs at least.
  int32_t vocab_size() const;
  // Hex SHA-256 of the tokenizer.json bytes, for recording in data files.
  std::string sha256() const;
  // The tokenizer.json this was loaded from.
  const std::string& source() const;

 private:
  struct Impl;
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Hex SHA-256 digest of `bytes` (what Tokenizer::sha256 reports).
std::string sha256_hex(std::string_view bytes);

// `bytes` with every maximal ill-formed UTF-8 subpart replaced by U+FFFD: Python's
// bytes.decode("utf-8", errors="replace"), which is what encode() applies to its input.
std::string replace_invalid_utf8(std::string_view bytes);

}  // namespace tessera::data
