// tokenize_chat: the rendered chat's ids and one label per id, derived from the byte ranges the tokens
// cover (the rule is in chat_template.hpp under LABELS). The ids are encode(text) of the whole text, never
// a concatenation of pieces, so they equal what transformers gives; the labels then come from where each
// token's bytes fall.
#include <algorithm>
#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "tessera/core/error.hpp"
#include "tessera/data/chat_template.hpp"

namespace tessera::data {
namespace {

using Ranges = std::vector<std::pair<size_t, size_t>>;

// GPT-2's byte-level alphabet, inverted: code point -> the byte it stands for (-1 outside the alphabet).
// Printable Latin-1 bytes stand for themselves; the other 68 bytes, in order, for U+0100 onwards.
struct ByteLevelInverse {
  std::array<int16_t, 0x144> byte{};
};

constexpr ByteLevelInverse make_byte_level_inverse() {
  ByteLevelInverse table;
  for (auto& b : table.byte) b = -1;
  int next = 0x100;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    table.byte[static_cast<size_t>(printable ? b : next++)] = static_cast<int16_t>(b);
  }
  return table;
}

constexpr ByteLevelInverse kByteLevel = make_byte_level_inverse();

// The bytes token `id` stands for in the (normalised) text. A vocabulary entry is spelled in the byte-level
// alphabet; an added token is its literal content. The two readings agree for pieces of printable ASCII
// ("<think>", "hello"), and a piece with a character outside the alphabet (a space, U+0301) can only be
// literal. What remains ambiguous is a non-special added token with Latin-1 letters ("éclair"): `exact`
// settles it by asking the tokenizer whether the piece, read literally, is that one token, which a
// vocabulary entry never is (its literal reading is other bytes).
std::string token_bytes(const Tokenizer& tokenizer, int32_t id, bool exact) {
  const std::string_view piece = tokenizer.id_to_token(id);
  if (tokenizer.is_special(id)) return std::string(piece);
  std::string out;
  out.reserve(piece.size());
  bool ascii = true;
  for (size_t i = 0; i < piece.size();) {
    const auto b0 = static_cast<unsigned char>(piece[i]);
    uint32_t cp = b0;
    size_t len = 1;
    if (b0 >= 0x80) {
      // The alphabet ends at U+0143, so it needs at most two-byte sequences.
      if ((b0 & 0xE0) != 0xC0 || i + 1 >= piece.size()) return std::string(piece);
      cp = ((b0 & 0x1Fu) << 6) | (static_cast<unsigned char>(piece[i + 1]) & 0x3Fu);
      len = 2;
      ascii = false;
    }
    if (cp >= kByteLevel.byte.size() || kByteLevel.byte[cp] < 0) return std::string(piece);
    out += static_cast<char>(kByteLevel.byte[cp]);
    i += len;
  }
  if (exact && !ascii) {
    const std::vector<int32_t> literal = tokenizer.encode(piece);
    if (literal.size() == 1 && literal[0] == id) return std::string(piece);
  }
  return out;
}

// The tokens' bytes laid end to end: the text as the tokenizer normalised it.
std::string token_stream(const Tokenizer& tokenizer, const std::vector<int32_t>& ids, bool exact,
                         std::vector<size_t>* ends) {
  std::string stream;
  if (ends != nullptr) ends->clear();
  for (int32_t id : ids) {
    stream += token_bytes(tokenizer, id, exact);
    if (ends != nullptr) ends->push_back(stream.size());
  }
  return stream;
}

void check_chatml_tokenizer(const Tokenizer& tokenizer) {
  for (const char* token : {"<|im_start|>", "<|im_end|>"}) {
    const auto id = tokenizer.token_to_id(token);
    TESSERA_CHECK(id.has_value() && tokenizer.is_special(*id),
                  "tokenizer {} has no special token {}; the Qwen3 chat template needs a Qwen (ChatML) "
                  "tokenizer",
                  tokenizer.source(), token);
  }
}

// The trainable ranges moved from the rendered text to the token stream, for text the tokenizer's
// normaliser (NFC) changed. Every range boundary sits right after a '\n' or after <|im_end|>, where NFC
// cannot join characters across, so normalising the pieces between boundaries one by one gives the
// normalised text piece by piece; that is checked, not assumed.
Ranges ranges_in_stream(const Tokenizer& tokenizer, const RenderedChat& chat, const std::string& stream) {
  std::vector<size_t> cuts;
  for (const auto& [first, second] : chat.trainable) {
    cuts.push_back(first);
    cuts.push_back(second);
  }
  std::vector<size_t> moved(cuts.size());
  std::string rebuilt;
  size_t from = 0;
  for (size_t k = 0; k <= cuts.size(); ++k) {
    const size_t to = k < cuts.size() ? cuts[k] : chat.text.size();
    const std::string_view piece = std::string_view(chat.text).substr(from, to - from);
    rebuilt += token_stream(tokenizer, tokenizer.encode(piece), /*exact=*/true, nullptr);
    if (k < cuts.size()) moved[k] = rebuilt.size();
    from = to;
  }
  TESSERA_CHECK(rebuilt == stream,
                "cannot place the chat's label boundaries in the tokens: normalising the text in pieces does "
                "not give the normalised whole (tokenizer {})",
                tokenizer.source());
  Ranges out;
  for (size_t k = 0; k < moved.size(); k += 2) out.emplace_back(moved[k], moved[k + 1]);
  return out;
}

}  // namespace

TokenizedChat tokenize_chat(const Tokenizer& tokenizer, const std::vector<Message>& messages,
                            const ChatOptions& options) {
  check_chatml_tokenizer(tokenizer);
  const RenderedChat chat = render_chat(messages, options);
  TokenizedChat out;
  out.ids = tokenizer.encode(chat.text);

  // Each token's end offset in the stream of token bytes. The quick reading is exact whenever the stream
  // reproduces the text; otherwise the text was normalised (or holds an ambiguous added token) and the
  // exact reading and the piecewise placement of the ranges take over.
  std::vector<size_t> ends;
  std::string stream = token_stream(tokenizer, out.ids, /*exact=*/false, &ends);
  Ranges ranges = chat.trainable;
  if (stream != chat.text) {
    stream = token_stream(tokenizer, out.ids, /*exact=*/true, &ends);
    if (stream != chat.text) ranges = ranges_in_stream(tokenizer, chat, stream);
  }

  // <|im_end|> is special, so every range must end on a token boundary; a straddling end would mean the
  // tokenizer is not the ChatML one the labels are defined for.
  for (const auto& range : ranges) {
    TESSERA_CHECK(std::binary_search(ends.begin(), ends.end(), range.second),
                  "no token ends at the <|im_end|> closing an assistant turn (byte {}); tokenizer {} does not "
                  "split the text at its special tokens",
                  range.second, tokenizer.source());
  }

  // Overlap rule: both lists are sorted, so one pass.
  out.labels.assign(out.ids.size(), 0);
  size_t r = 0;
  size_t start = 0;
  for (size_t i = 0; i < out.ids.size(); ++i) {
    const size_t end = ends[i];
    while (r < ranges.size() && ranges[r].second <= start) ++r;
    if (r < ranges.size() && ranges[r].first < end) out.labels[i] = 1;
    start = end;
  }
  return out;
}

}  // namespace tessera::data
