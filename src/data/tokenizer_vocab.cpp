#include "tokenizer_vocab.hpp"

#include <algorithm>

#include "tokenizer_byte_level.hpp"
#include "utf8.hpp"

namespace tessera::data {

BpeSpec read_bpe_model(const JsonField& model) {
  BpeSpec spec;
  model.only_keys({"type", "dropout", "unk_token", "continuing_subword_prefix", "end_of_word_suffix", "fuse_unk",
                   "byte_fallback", "ignore_merges", "vocab", "merges"});
  if (const std::string type = model.type_name(); type != "BPE") {
    model.at("type").fail("unsupported model type '{}': tessera implements byte-level BPE", type);
  }
  if (auto dropout = model.find("dropout")) {
    if (!dropout->raw().is_number() || dropout->raw().get<double>() != 0.0) {
      dropout->fail("BPE dropout makes the ids random; it must be null for tokenizing data");
    }
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (auto affix = model.find(key); affix && !affix->string().empty()) {
      affix->fail("'{}' is not supported: byte-level BPE has no word affixes", affix->string());
    }
  }
  // Without unknown characters (every byte has a token, checked below) these never apply.
  if (auto unk = model.find("unk_token")) unk->string();
  if (auto fuse = model.find("fuse_unk")) fuse->boolean();
  if (auto fallback = model.find("byte_fallback")) fallback->boolean();
  spec.ignore_merges = model.find("ignore_merges") ? model.at("ignore_merges").boolean() : false;

  const JsonField vocab = model.at("vocab");
  vocab.expect_object();
  auto& model_tokens = spec.tokens;
  TokenMap model_ids;
  model_ids.reserve(vocab.raw().size());
  for (auto it = vocab.raw().begin(); it != vocab.raw().end(); ++it) {
    // Fields are only wrapped (with their path) on the error path: the vocabulary has 10^5 entries.
    const auto& value = it.value();
    const int64_t id = value.is_number_integer() ? value.get<int64_t>() : -1;
    if (id < 0 || id >= INT32_MAX) vocab.at(it.key()).fail("expected an id in [0, 2^31 - 1), got {}", value.dump());
    if (static_cast<size_t>(id) >= model_tokens.size()) model_tokens.resize(static_cast<size_t>(id) + 1, nullptr);
    if (model_tokens[id] != nullptr) vocab.at(it.key()).fail("id {} is also the id of \"{}\"", id, *model_tokens[id]);
    model_tokens[id] = &it.key();
    model_ids.emplace(it.key(), static_cast<int32_t>(id));
  }
  for (int b = 0; b < 256; ++b) {
    const std::string spelled = byte_level::spell(static_cast<unsigned char>(b));
    auto it = model_ids.find(spelled);
    if (it == model_ids.end()) {
      vocab.fail("no token for byte 0x{:02X} (\"{}\"): not a byte-level BPE vocabulary", b, spelled);
    }
    spec.byte_ids[b] = it->second;
  }
  const JsonField merges = model.at("merges");
  auto& rules = spec.merges;
  rules.reserve(merges.size());
  std::string left, right, joined;
  for (size_t i = 0; i < merges.size(); ++i) {
    const auto& merge = merges.raw()[i];
    if (merge.is_array() && merge.size() == 2 && merge[0].is_string() && merge[1].is_string()) {
      left = merge[0].get_ref<const std::string&>();
      right = merge[1].get_ref<const std::string&>();
    } else if (merge.is_string()) {  // the older "a b" form
      const auto& line = merge.get_ref<const std::string&>();
      const size_t space = line.find(' ');
      if (space == std::string::npos || line.find(' ', space + 1) != std::string::npos) {
        merges.item(i).fail("expected two tokens separated by one space, got \"{}\"", line);
      }
      left = line.substr(0, space);
      right = line.substr(space + 1);
    } else {
      merges.item(i).fail("expected a pair of tokens, got {}", merge.dump());
    }
    joined = left + right;
    auto find = [&](const std::string& token) {
      auto it = model_ids.find(token);
      if (it == model_ids.end()) merges.item(i).fail("\"{}\" is not in model.vocab", token);
      return it->second;
    };
    rules.push_back({find(left), find(right), find(joined)});
  }

  spec.ids = std::move(model_ids);
  return spec;
}

std::vector<AddedToken> read_added_tokens(const JsonField& list, const BpeSpec& model) {
  std::vector<AddedToken> added;
  int32_t max_added = -1;
  const auto model_size = static_cast<int64_t>(model.ids.size());
  TokenMap added_ids;
  for (size_t i = 0; i < list.size(); ++i) {
    const JsonField item = list.item(i);
    item.only_keys({"id", "content", "single_word", "lstrip", "rstrip", "normalized", "special"});
    AddedToken token;
    token.content = item.at("content").string();
    if (token.content.empty()) item.at("content").fail("empty content");
    if (utf8::valid_prefix(token.content) != token.content.size()) item.at("content").fail("not valid UTF-8");
    token.single_word = item.at("single_word").boolean();
    token.lstrip = item.at("lstrip").boolean();
    token.rstrip = item.at("rstrip").boolean();
    token.normalized = item.at("normalized").boolean();
    token.special = item.at("special").boolean();
    if (added_ids.count(token.content) != 0) item.at("content").fail("\"{}\" is added twice", token.content);
    int64_t expected = 0;
    if (auto it = model.ids.find(token.content); it != model.ids.end()) {
      expected = it->second;
    } else if (max_added < 0) {
      expected = model_size;
    } else {
      expected = (max_added >= model_size || model_size == 0) ? max_added + 1 : model_size;
    }
    const int64_t id = item.at("id").integer();
    if (id != expected) {
      item.at("id").fail("is {} but HF gives \"{}\" the id {}", id, token.content, expected);
    }
    if (id >= INT32_MAX) item.at("id").fail("id {} out of range", id);
    if (static_cast<size_t>(id) < model.tokens.size() && model.tokens[id] != nullptr &&
        *model.tokens[id] != token.content) {
      item.at("id").fail("id {} is also the id of vocabulary token \"{}\"", id, *model.tokens[id]);
    }
    token.id = static_cast<int32_t>(id);
    max_added = std::max(max_added, token.id);
    added_ids.emplace(token.content, token.id);
    added.push_back(std::move(token));
  }
  return added;
}

}  // namespace tessera::data
