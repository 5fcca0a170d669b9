#include "tokenizer_components.hpp"

#include <string>

#include "tessera/core/error.hpp"

namespace tessera::data {
namespace {

Regex compile(const JsonField& where, const std::string& pattern) {
  try {
    return Regex(pattern);
  } catch (const Error& e) {
    where.fail("{}", e.what());
  }
}

PreTokenizerStep byte_level_step(const JsonField& p) {
  p.only_keys({"type", "add_prefix_space", "trim_offsets", "use_regex"});
  PreTokenizerStep step;
  step.kind = PreTokenizerStep::Kind::kByteLevel;
  step.add_prefix_space = p.at("add_prefix_space").boolean();
  if (auto trim = p.find("trim_offsets")) trim->boolean();  // offsets only; the ids do not depend on it
  const bool use_regex = p.find("use_regex") ? p.at("use_regex").boolean() : true;  // HF's default
  if (use_regex) step.regex.emplace(compile(p, onig_to_pcre2(kGpt2Pattern)));
  return step;
}

}  // namespace

bool parse_normalizer(const JsonField& n) {
  const std::string type = n.type_name();
  if (type == "NFC") {
    n.only_keys({"type"});
    return true;
  }
  if (type == "Sequence") {
    n.only_keys({"type", "normalizers"});
    const JsonField list = n.at("normalizers");
    bool nfc = false;
    for (size_t i = 0; i < list.size(); ++i) nfc = parse_normalizer(list.item(i)) || nfc;
    return nfc;
  }
  n.at("type").fail("unsupported normalizer '{}': tessera implements NFC (alone or in a Sequence)", type);
}

void parse_pre_tokenizer(const JsonField& p, std::vector<PreTokenizerStep>& steps) {
  const std::string type = p.type_name();
  if (type == "Sequence") {
    p.only_keys({"type", "pretokenizers"});
    const JsonField list = p.at("pretokenizers");
    for (size_t i = 0; i < list.size(); ++i) parse_pre_tokenizer(list.item(i), steps);
  } else if (type == "ByteLevel") {
    steps.push_back(byte_level_step(p));
  } else if (type == "Split") {
    p.only_keys({"type", "pattern", "behavior", "invert"});
    PreTokenizerStep step;
    const JsonField pattern = p.at("pattern");
    pattern.only_keys({"Regex", "String"});
    std::string translated;
    if (auto regex = pattern.find("Regex")) {
      try {
        translated = onig_to_pcre2(regex->string());
      } catch (const Error& e) {
        regex->fail("{}", e.what());
      }
      step.regex.emplace(compile(*regex, translated));
    } else if (auto literal = pattern.find("String")) {
      step.regex.emplace(compile(*literal, literal_pattern(literal->string())));
    } else {
      pattern.fail("expected {{\"Regex\": ...}} or {{\"String\": ...}}");
    }
    const JsonField behavior = p.at("behavior");
    const std::string b = behavior.string();
    if (b == "Removed") {
      step.behavior = SplitBehavior::kRemoved;
    } else if (b == "Isolated") {
      step.behavior = SplitBehavior::kIsolated;
    } else if (b == "MergedWithPrevious") {
      step.behavior = SplitBehavior::kMergedWithPrevious;
    } else if (b == "MergedWithNext") {
      step.behavior = SplitBehavior::kMergedWithNext;
    } else if (b == "Contiguous") {
      step.behavior = SplitBehavior::kContiguous;
    } else {
      behavior.fail("unknown split behavior '{}'", b);
    }
    step.invert = p.at("invert").boolean();
    steps.push_back(std::move(step));
  } else {
    p.at("type").fail("unsupported pre-tokenizer '{}': tessera implements Split, ByteLevel and Sequence", type);
  }
}

void parse_decoder(const JsonField& d) {
  const std::string type = d.type_name();
  if (type == "ByteLevel") {
    // The ByteLevel decoder only maps characters back to bytes; its options concern offsets.
    d.only_keys({"type", "add_prefix_space", "trim_offsets", "use_regex"});
  } else if (type == "Sequence") {
    d.only_keys({"type", "decoders"});
    const JsonField list = d.at("decoders");
    if (list.size() != 1) list.fail("tessera decodes with a single ByteLevel decoder");
    parse_decoder(list.item(0));
  } else {
    d.at("type").fail("unsupported decoder '{}': tessera decodes byte-level BPE with ByteLevel", type);
  }
}

// Adds what a post-processor puts around a single sequence to `prefix`/`suffix` (processors in a Sequence
// apply in order, each wrapping the result of the previous one).
void parse_post_processor(const JsonField& p, std::vector<int32_t>& prefix, std::vector<int32_t>& suffix) {
  const std::string type = p.type_name();
  if (type == "ByteLevel") {
    p.only_keys({"type", "add_prefix_space", "trim_offsets", "use_regex"});  // offsets only
  } else if (type == "Sequence") {
    p.only_keys({"type", "processors"});
    const JsonField list = p.at("processors");
    for (size_t i = 0; i < list.size(); ++i) parse_post_processor(list.item(i), prefix, suffix);
  } else if (type == "TemplateProcessing") {
    p.only_keys({"type", "single", "pair", "special_tokens"});
    const JsonField single = p.at("single");
    const JsonField specials = p.at("special_tokens");
    std::vector<int32_t> before, after;
    bool seen_sequence = false;
    for (size_t i = 0; i < single.size(); ++i) {
      const JsonField piece = single.item(i);
      piece.only_keys({"SpecialToken", "Sequence"});
      if (auto sequence = piece.find("Sequence")) {
        sequence->only_keys({"id", "type_id"});
        if (sequence->at("id").string() != "A" || seen_sequence) {
          sequence->fail("a single-sequence template holds sequence A once");
        }
        seen_sequence = true;
      } else if (auto special = piece.find("SpecialToken")) {
        special->only_keys({"id", "type_id"});
        const std::string name = special->at("id").string();
        const JsonField entry = specials.at(name);
        entry.only_keys({"id", "ids", "tokens"});
        const JsonField ids = entry.at("ids");
        for (size_t k = 0; k < ids.size(); ++k) {
          const int64_t id = ids.item(k).integer();
          if (id < 0 || id > INT32_MAX) ids.item(k).fail("id {} out of range", id);
          (seen_sequence ? after : before).push_back(static_cast<int32_t>(id));
        }
      } else {
        piece.fail("expected {{\"SpecialToken\": ...}} or {{\"Sequence\": ...}}");
      }
    }
    if (!seen_sequence) single.fail("the template never places sequence A");
    prefix.insert(prefix.begin(), before.begin(), before.end());
    suffix.insert(suffix.end(), after.begin(), after.end());
  } else {
    p.at("type").fail("unsupported post-processor '{}': tessera implements ByteLevel, TemplateProcessing and Sequence",
                      type);
  }
}

}  // namespace tessera::data
