// Tokenizer: reads tokenizer.json into its components and runs them in HF's order:
//   added tokens (raw) -> NFC -> added tokens (normalised) -> pre-tokenizer -> BPE per pre-token.
#include "tessera/data/tokenizer.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <unordered_map>

#include "bpe_model.hpp"
#include "tessera/core/error.hpp"
#include "tessera/core/file.hpp"
#include "tokenizer_added_tokens.hpp"
#include "tokenizer_byte_level.hpp"
#include "tokenizer_components.hpp"
#include "tokenizer_json.hpp"
#include "tokenizer_normalizer.hpp"
#include "tokenizer_pretokenizer.hpp"
#include "tokenizer_vocab.hpp"
#include "utf8.hpp"

namespace tessera::data {
namespace {

enum class IdKind : uint8_t { kNone, kModel, kAdded, kSpecial };

// Strings indexed by id, stored back to back.
class StringTable {
 public:
  void resize(size_t n) { entries_.assign(n, {0, 0}); }
  void set(size_t id, std::string_view s) {
    entries_[id] = {static_cast<uint32_t>(text_.size()), static_cast<uint32_t>(s.size())};
    text_.append(s);
  }
  std::string_view get(size_t id) const { return std::string_view(text_).substr(entries_[id].first, entries_[id].second); }

 private:
  std::string text_;
  std::vector<std::pair<uint32_t, uint32_t>> entries_;
};

// The ByteLevel decoder's view of a token: the bytes its characters spell, or, when one of them is not a
// byte character, the token's own UTF-8 (HF's per-token fallback).
std::string decoded_bytes(std::string_view token) {
  std::string bytes;
  if (byte_level::to_bytes(token, bytes)) return bytes;
  return std::string(token);
}

}  // namespace

struct Tokenizer::Impl {
  std::string source;
  std::string sha256;
  std::optional<NfcNormalizer> nfc;
  std::unique_ptr<PreTokenizer> pre_tokenizer;
  std::unique_ptr<BpeModel> bpe;
  std::vector<AddedToken> added;
  std::unique_ptr<AddedTokenMatcher> raw_matcher;         // added tokens with normalized=false
  std::unique_ptr<AddedTokenMatcher> normalized_matcher;  // added tokens with normalized=true
  std::vector<int32_t> template_prefix, template_suffix;

  int32_t vocab_size = 0;
  std::vector<IdKind> kinds;
  StringTable tokens;   // id -> vocabulary string or added content
  StringTable decoded;  // id -> bytes the ByteLevel decoder makes of it
  TokenMap token_ids;   // added tokens override the model's, as in HF's lookup

  struct Scratch {
    RegexScratch regex;
    PreTokenizerScratch pre;
    BpeScratch bpe;
    std::vector<Segment> segments, inner_segments;
    std::vector<std::string_view> pieces;
    std::string normalized;
  };

  void tokenize_text(std::string_view text, Scratch& s, std::vector<int32_t>& ids) const {
    pre_tokenizer->run(text, s.pre, s.pieces);
    for (std::string_view piece : s.pieces) bpe->encode_word(piece, s.bpe, ids);
    s.pre.owned.clear();
  }

  std::vector<int32_t> encode(std::string_view input, bool allow_special) const {
    std::string repaired;
    std::string_view text = input;
    if (utf8::valid_prefix(input) != input.size()) {
      repaired = utf8::replace_invalid(input);
      text = repaired;
    }
    std::vector<int32_t> ids;
    ids.reserve(text.size() / 3 + 8);
    Scratch s;
    const BpeModel::CacheLease cache = bpe->lease_cache();
    s.bpe.cache = cache.get();
    s.segments.clear();
    if (raw_matcher) {
      raw_matcher->split(text, !allow_special, s.regex, s.segments);
    } else if (!text.empty()) {
      s.segments.push_back({0, text.size(), -1});
    }
    for (const Segment& segment : s.segments) {
      if (segment.id >= 0) {
        ids.push_back(segment.id);
        continue;
      }
      std::string_view piece = text.substr(segment.begin, segment.end - segment.begin);
      if (nfc) piece = nfc->apply(piece, s.normalized);
      if (!normalized_matcher) {
        tokenize_text(piece, s, ids);
        continue;
      }
      s.inner_segments.clear();
      normalized_matcher->split(piece, !allow_special, s.regex, s.inner_segments);
      for (const Segment& inner : s.inner_segments) {
        if (inner.id >= 0) {
          ids.push_back(inner.id);
        } else {
          tokenize_text(piece.substr(inner.begin, inner.end - inner.begin), s, ids);
        }
      }
    }
    return ids;
  }

  void check_id(int32_t id) const {
    TESSERA_CHECK(id >= 0 && id < vocab_size && kinds[id] != IdKind::kNone,
                  "token id {} is not in the vocabulary of {} (size {})", id, source, vocab_size);
  }
};

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

Tokenizer Tokenizer::load(const std::string& path) {
  namespace fs = std::filesystem;
  std::string file = path;
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    file = (fs::path(path) / "tokenizer.json").string();
    TESSERA_CHECK(fs::exists(file, ec), "{}: no tokenizer.json in this directory", path);
  } else {
    TESSERA_CHECK(fs::exists(path, ec), "{}: no such tokenizer file or directory", path);
  }

  auto impl = std::make_unique<Impl>();
  impl->source = file;
  const std::string bytes = read_file(file);
  impl->sha256 = sha256_hex(bytes);
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(bytes);
  } catch (const nlohmann::json::exception& e) {  // parse_error, and out_of_range for numbers too large
    TESSERA_FAIL("{}: not valid JSON: {}", file, e.what());
  }
  const JsonField root(doc, "", impl->source);
  root.only_keys({"version", "truncation", "padding", "added_tokens", "normalizer", "pre_tokenizer",
                  "post_processor", "decoder", "model"});
  if (auto truncation = root.find("truncation")) {
    truncation->fail("truncation would cut HF's ids; tessera packs sequences itself, so it must be null");
  }
  if (auto padding = root.find("padding")) {
    padding->fail("padding would add ids; tessera packs sequences itself, so it must be null");
  }

  BpeSpec model = read_bpe_model(root.at("model"));

  // Normaliser and pre-tokenizer.
  if (auto normalizer = root.find("normalizer"); normalizer && parse_normalizer(*normalizer)) impl->nfc.emplace();
  const JsonField pre = root.at("pre_tokenizer");
  if (pre.is_null()) pre.fail("null: a byte-level BPE needs a ByteLevel pre-tokenizer");
  std::vector<PreTokenizerStep> steps;
  parse_pre_tokenizer(pre, steps);
  const auto byte_levels = std::count_if(steps.begin(), steps.end(), [](const PreTokenizerStep& s) {
    return s.kind == PreTokenizerStep::Kind::kByteLevel;
  });
  if (byte_levels != 1 || steps.empty() || steps.back().kind != PreTokenizerStep::Kind::kByteLevel) {
    pre.fail("tessera needs exactly one ByteLevel pre-tokenizer, as the last step");
  }
  impl->pre_tokenizer = std::make_unique<PreTokenizer>(std::move(steps));
  const JsonField decoder = root.at("decoder");
  if (decoder.is_null()) decoder.fail("null: tessera decodes byte-level BPE with a ByteLevel decoder");
  parse_decoder(decoder);

  if (auto list = root.find("added_tokens")) impl->added = read_added_tokens(*list, model);

  // Id tables.
  int32_t size = static_cast<int32_t>(model.tokens.size());
  for (const auto& t : impl->added) size = std::max(size, t.id + 1);
  impl->vocab_size = size;
  impl->kinds.assign(size, IdKind::kNone);
  impl->tokens.resize(size);
  impl->decoded.resize(size);
  std::unordered_map<std::string, int32_t> raw_vocab;
  std::string raw;
  for (size_t id = 0; id < model.tokens.size(); ++id) {
    if (model.tokens[id] == nullptr) continue;
    impl->kinds[id] = IdKind::kModel;
    impl->tokens.set(id, *model.tokens[id]);
    impl->decoded.set(id, decoded_bytes(*model.tokens[id]));
    if (model.ignore_merges && byte_level::to_bytes(*model.tokens[id], raw)) {
      raw_vocab.emplace(raw, static_cast<int32_t>(id));
    }
  }
  impl->token_ids = std::move(model.ids);
  for (const auto& t : impl->added) {
    impl->kinds[t.id] = t.special ? IdKind::kSpecial : IdKind::kAdded;
    // HF looks a token up by its content but spells (and decodes) a normalized one in normalised form.
    std::string storage;
    const std::string_view spelled = t.normalized && impl->nfc ? impl->nfc->apply(t.content, storage) : t.content;
    impl->tokens.set(t.id, spelled);
    impl->decoded.set(t.id, decoded_bytes(spelled));
    impl->token_ids.insert_or_assign(t.content, t.id);
  }
  impl->bpe = std::make_unique<BpeModel>(model.byte_ids, model.merges, model.ignore_merges, std::move(raw_vocab));

  // Matchers in HF's order: special tokens, then the others, each in file order.
  std::vector<std::string> raw_patterns, normalized_patterns;
  std::vector<const AddedToken*> raw_tokens, normalized_tokens;
  for (const bool special : {true, false}) {
    for (const auto& t : impl->added) {
      if (t.special != special) continue;
      if (t.normalized) {
        std::string storage;
        normalized_patterns.emplace_back(impl->nfc ? impl->nfc->apply(t.content, storage) : t.content);
        normalized_tokens.push_back(&t);
      } else {
        raw_patterns.push_back(t.content);
        raw_tokens.push_back(&t);
      }
    }
  }
  if (!raw_tokens.empty()) {
    impl->raw_matcher = std::make_unique<AddedTokenMatcher>(std::move(raw_patterns), std::move(raw_tokens));
  }
  if (!normalized_tokens.empty()) {
    impl->normalized_matcher =
        std::make_unique<AddedTokenMatcher>(std::move(normalized_patterns), std::move(normalized_tokens));
  }

  if (auto post = root.find("post_processor")) {
    parse_post_processor(*post, impl->template_prefix, impl->template_suffix);
    for (const auto* ids : {&impl->template_prefix, &impl->template_suffix}) {
      for (int32_t id : *ids) {
        if (id >= impl->vocab_size || impl->kinds[id] == IdKind::kNone) {
          post->fail("the template adds id {}, which is not in the vocabulary", id);
        }
      }
    }
  }
  return Tokenizer(std::move(impl));
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool allow_special) const {
  return impl_->encode(text, allow_special);
}

std::vector<int32_t> Tokenizer::encode_with_template(std::string_view text, bool allow_special) const {
  std::vector<int32_t> ids = impl_->template_prefix;
  const std::vector<int32_t> body = impl_->encode(text, allow_special);
  ids.insert(ids.end(), body.begin(), body.end());
  ids.insert(ids.end(), impl_->template_suffix.begin(), impl_->template_suffix.end());
  return ids;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special) const {
  std::string bytes;
  for (const int32_t id : ids) {
    impl_->check_id(id);
    if (skip_special && impl_->kinds[id] == IdKind::kSpecial) continue;
    bytes.append(impl_->decoded.get(id));
  }
  if (utf8::valid_prefix(bytes) == bytes.size()) return bytes;
  return utf8::replace_invalid(bytes);
}

std::optional<int32_t> Tokenizer::token_to_id(std::string_view token) const {
  auto it = impl_->token_ids.find(token);
  if (it == impl_->token_ids.end()) return std::nullopt;
  return it->second;
}

std::string_view Tokenizer::id_to_token(int32_t id) const {
  impl_->check_id(id);
  return impl_->tokens.get(id);
}

bool Tokenizer::is_special(int32_t id) const {
  impl_->check_id(id);
  return impl_->kinds[id] == IdKind::kSpecial;
}

int32_t Tokenizer::vocab_size() const { return impl_->vocab_size; }
std::string Tokenizer::sha256() const { return impl_->sha256; }
const std::string& Tokenizer::source() const { return impl_->source; }

std::string replace_invalid_utf8(std::string_view bytes) { return utf8::replace_invalid(bytes); }

}  // namespace tessera::data
