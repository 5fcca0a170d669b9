// The byte-level BPE tokenizer against Hugging Face tokenizers: the golden corpus of
// tests/golden/tokenizer (written by make_corpus.py with HF's ids) must match id for id.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <zlib.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <thread>

#include "tessera/core/error.hpp"
#include "tessera/data/tokenizer.hpp"
#include "test_support.hpp"

namespace {

namespace fs = std::filesystem;
using tessera::data::Tokenizer;

const std::string kGolden = std::string(TESSERA_SOURCE_DIR) + "/tests/golden/tokenizer";
const std::string kQwenDir = tessera::testing::qwen3_tokenizer_dir();

std::string read_gz(const std::string& path) {
  gzFile file = gzopen(path.c_str(), "rb");
  if (file == nullptr) throw std::runtime_error("cannot open " + path);
  std::string out;
  char buffer[1 << 16];
  int n = 0;
  while ((n = gzread(file, buffer, sizeof(buffer))) > 0) out.append(buffer, static_cast<size_t>(n));
  gzclose(file);
  if (n < 0) throw std::runtime_error("cannot decompress " + path);
  return out;
}

std::vector<nlohmann::json> json_lines(const std::string& path) {
  const std::string text = read_gz(path);
  std::vector<nlohmann::json> out;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    if (end > start) out.push_back(nlohmann::json::parse(text.substr(start, end - start)));
    start = end + 1;
  }
  return out;
}

std::string from_hex(const std::string& hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) out.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  return out;
}

struct Document {
  std::string kind;
  std::string bytes;   // what encode() is given
  bool valid = true;   // valid UTF-8
  std::string nfc;     // HF's NFC of the text (== bytes when unchanged)
};

const std::vector<Document>& corpus() {
  static const std::vector<Document> docs = [] {
    std::vector<Document> out;
    for (const auto& line : json_lines(kGolden + "/corpus.jsonl.gz")) {
      Document d;
      d.kind = line.at("kind").get<std::string>();
      if (line.contains("hex")) {
        d.bytes = from_hex(line.at("hex").get<std::string>());
        d.valid = false;
      } else {
        d.bytes = line.at("text").get<std::string>();
      }
      d.nfc = line.contains("nfc") ? line.at("nfc").get<std::string>() : d.bytes;
      out.push_back(std::move(d));
    }
    return out;
  }();
  return docs;
}

const Tokenizer* qwen() { return tessera::testing::qwen3_tokenizer(); }

#define REQUIRE_QWEN()                                                                                   \
  if (qwen() == nullptr) GTEST_SKIP() << "the Qwen3 tokenizer is not at " << kQwenDir                  \
                                      << "/tokenizer.json (../shared/data is not checked out here)"

std::string printable(std::string_view s, size_t limit = 160) {
  std::string out;
  for (size_t i = 0; i < s.size() && i < limit; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7F) {
      out += fmt::format("\\x{:02x}", c);
    } else {
      out += static_cast<char>(c);
    }
  }
  if (s.size() > limit) out += "...";
  return out;
}

std::string ids_around(const std::vector<int32_t>& ids, size_t at) {
  const size_t begin = at >= 6 ? at - 6 : 0;
  const size_t end = std::min(ids.size(), at + 6);
  std::string out = begin > 0 ? "... " : "";
  for (size_t i = begin; i < end; ++i) out += (i == at ? "[" : "") + std::to_string(ids[i]) + (i == at ? "] " : " ");
  if (end < ids.size()) out += "...";
  return out;
}

// Where two id lists part, with the text there, for a failure message a person can act on.
std::string mismatch(const Tokenizer& tok, size_t doc, std::string_view text, const std::vector<int32_t>& want,
                     const std::vector<int32_t>& got) {
  size_t at = 0;
  while (at < want.size() && at < got.size() && want[at] == got[at]) ++at;
  const std::string before = tok.decode(std::span(want).first(at));
  const size_t offset = before.size() > 40 ? before.size() - 40 : 0;
  return fmt::format(
      "document {} ({} bytes) differs at id #{} (HF {} ids, tessera {} ids)\n  text start: \"{}\"\n"
      "  text near the divergence: \"{}\"\n  HF:      {}\n  tessera: {}",
      doc, text.size(), at, want.size(), got.size(), printable(text), printable(std::string_view(text).substr(
                                                                               std::min(offset, text.size()))),
      ids_around(want, at), ids_around(got, at));
}

std::vector<int32_t> ids_of(const nlohmann::json& j) { return j.get<std::vector<int32_t>>(); }

TEST(Sha256, KnownVectors) {
  using tessera::data::sha256_hex;
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(sha256_hex(std::string(1000000, 'a')), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  // Lengths around the 55/56/64-byte padding boundaries.
  EXPECT_EQ(sha256_hex(std::string(55, 'a')), "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318");
  EXPECT_EQ(sha256_hex(std::string(56, 'a')), "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a");
  EXPECT_EQ(sha256_hex(std::string(64, 'a')), "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb");
}

TEST(Utf8Replacement, MatchesPythonDecodeReplace) {
  using tessera::data::replace_invalid_utf8;
  const std::string r = "\xEF\xBF\xBD";
  EXPECT_EQ(replace_invalid_utf8("ok"), "ok");
  EXPECT_EQ(replace_invalid_utf8("a\x80" "b"), "a" + r + "b");
  EXPECT_EQ(replace_invalid_utf8("\xF0\x9F\x98"), r);                 // truncated: one maximal subpart
  EXPECT_EQ(replace_invalid_utf8("\xED\xA0\x80"), r + r + r);         // a surrogate: three
  EXPECT_EQ(replace_invalid_utf8("\xE0\x80\xAF"), r + r + r);         // overlong
  EXPECT_EQ(replace_invalid_utf8("\xF4\x90\x80\x80x"), r + r + r + r + "x");  // above U+10FFFF
  EXPECT_EQ(replace_invalid_utf8("\xC2\xC2\xA9"), r + "\xC2\xA9");
  EXPECT_EQ(replace_invalid_utf8("\xF0\x9F\x98\x80\x80"), "\xF0\x9F\x98\x80" + r);
  EXPECT_EQ(replace_invalid_utf8("\xE4\xB8"), r);
  EXPECT_EQ(replace_invalid_utf8(std::string("a\0b", 3)), std::string("a\0b", 3));
}

TEST(QwenTokenizer, GoldenCorpusMatchesHuggingFace) {
  REQUIRE_QWEN();
  const Tokenizer& tok = *qwen();
  const auto& docs = corpus();
  const auto golden = json_lines(kGolden + "/qwen3_ids.jsonl.gz");
  ASSERT_EQ(golden.size(), docs.size());
  ASSERT_GE(docs.size(), 3000u);
  size_t bytes = 0, matched = 0, matched_plain = 0;
  std::string first_failure, first_plain_failure;
  for (size_t i = 0; i < docs.size(); ++i) {
    bytes += docs[i].bytes.size();
    const auto want = ids_of(golden[i].at("ids"));
    const auto got = tok.encode(docs[i].bytes);
    if (got == want) {
      ++matched;
    } else if (first_failure.empty()) {
      first_failure = mismatch(tok, i, docs[i].bytes, want, got);
    }
    const auto want_plain = ids_of(golden[i].at("ids_plain"));
    const auto got_plain = tok.encode(docs[i].bytes, /*allow_special=*/false);
    if (got_plain == want_plain) {
      ++matched_plain;
    } else if (first_plain_failure.empty()) {
      first_plain_failure = mismatch(tok, i, docs[i].bytes, want_plain, got_plain);
    }
  }
  EXPECT_GE(bytes, 2u << 20) << "the golden corpus should hold at least 2 MB";
  EXPECT_EQ(matched, docs.size()) << matched << "/" << docs.size() << " documents match; first failure:\n"
                                  << first_failure;
  EXPECT_EQ(matched_plain, docs.size()) << "with allow_special=false, " << matched_plain << "/" << docs.size()
                                        << " documents match; first failure:\n" << first_plain_failure;
}

TEST(QwenTokenizer, DecodeInvertsEncodeOnValidText) {
  REQUIRE_QWEN();
  const Tokenizer& tok = *qwen();
  const auto& docs = corpus();
  size_t checked = 0;
  for (size_t i = 0; i < docs.size(); ++i) {
    if (!docs[i].valid) continue;
    ++checked;
    ASSERT_EQ(tok.decode(tok.encode(docs[i].bytes)), docs[i].nfc) << "document " << i << ": " << printable(docs[i].bytes);
    ASSERT_EQ(tok.decode(tok.encode(docs[i].bytes, false)), docs[i].nfc) << "document " << i;
  }
  EXPECT_GT(checked, 3000u);
}

TEST(QwenTokenizer, HandWrittenCases) {
  REQUIRE_QWEN();
  const Tokenizer& tok = *qwen();
  using Ids = std::vector<int32_t>;
  EXPECT_EQ(tok.encode(""), Ids{});
  EXPECT_EQ(tok.encode("Hello world"), (Ids{9707, 1879}));
  EXPECT_EQ(tok.encode("Hello, world! It's 2024."), (Ids{9707, 11, 1879, 0, 1084, 594, 220, 17, 15, 17, 19, 13}));
  EXPECT_EQ(tok.encode("中文分词"), (Ids{104811, 17177, 99689}));
  EXPECT_EQ(tok.encode("  x\n\n"), (Ids{220, 856, 271}));
  EXPECT_EQ(tok.encode("cafe\u0301"), tok.encode("caf\u00e9")) << "NFC composes e + U+0301";
  EXPECT_EQ(tok.encode("a\x80" "b"), (Ids{64, 5691, 65})) << "an invalid byte becomes U+FFFD";

  const std::string chat = "<|im_start|>user\nhi<|im_end|>\n";
  EXPECT_EQ(tok.encode(chat), (Ids{151644, 872, 198, 6023, 151645, 198}));
  EXPECT_EQ(tok.encode(chat, /*allow_special=*/false),
            (Ids{27, 91, 318, 4906, 91, 29, 872, 198, 6023, 27, 91, 318, 6213, 91, 397}));
  // <think> is an added token that is not special: recognised either way, kept by skip_special.
  EXPECT_EQ(tok.encode("<think>\n\n</think>\n\n", false), (Ids{151667, 271, 151668, 271}));
  const Ids mixed = {151644, 9707, 151667, 220, 151643};
  EXPECT_EQ(tok.decode(mixed), "<|im_start|>Hello<think> <|endoftext|>");
  EXPECT_EQ(tok.decode(mixed, /*skip_special=*/true), "Hello<think> ");
  const Ids lone_byte = {*tok.token_to_id("\u00c3")};  // byte 0xC3 alone is not UTF-8
  EXPECT_EQ(tok.decode(lone_byte), "\xEF\xBF\xBD");

  EXPECT_EQ(tok.token_to_id("<|im_end|>"), 151645);
  EXPECT_EQ(tok.token_to_id("\u0120world"), 1879);
  EXPECT_EQ(tok.token_to_id("no such token"), std::nullopt);
  EXPECT_EQ(tok.id_to_token(1879), "\u0120world");
  EXPECT_EQ(tok.id_to_token(151667), "<think>");
  EXPECT_TRUE(tok.is_special(151643));
  EXPECT_FALSE(tok.is_special(151667));
  EXPECT_EQ(tok.vocab_size(), 151669);
  EXPECT_EQ(tok.encode_with_template("Hello world"), (Ids{9707, 1879})) << "Qwen3's post-processor adds nothing";
  EXPECT_EQ(tok.sha256(), "aeb13307a71acd8fe81861d94ad54ab689df773318809eed3cbe794b4492dae4");
  EXPECT_THROW(tok.decode(Ids{151669}), tessera::Error);
  EXPECT_THROW(tok.decode(Ids{-1}), tessera::Error);
  EXPECT_THROW(tok.id_to_token(1 << 30), tessera::Error);
}

// Runs far longer than the corpus has: one pre-token of 10^5 bytes goes through the heap merge and PCRE2
// may need more than its default JIT stack. Expected ids are HF's, summarised as (count, first, last 3).
TEST(QwenTokenizer, LongRunsMatchHuggingFace) {
  REQUIRE_QWEN();
  const Tokenizer& tok = *qwen();
  struct Case {
    std::string text;
    size_t count;
    std::vector<int32_t> head, tail;
  };
  std::string han;
  for (int i = 0; i < 30000; ++i) han += "\u4e2d";
  const std::vector<Case> cases = {
      {std::string(200000, ' ') + "x", 1564, {56940, 56940, 56940}, {56940, 15270, 856}},
      {std::string(100000, 'a'), 12500, {69440, 69440, 69440}, {69440, 69440, 69440}},
      {std::string(50000, '\n') + " ", 1564, {79083, 79083, 79083}, {79083, 24616, 220}},
      {han, 30000, {15946, 15946, 15946}, {15946, 15946, 15946}},
  };
  for (const auto& c : cases) {
    const auto ids = tok.encode(c.text);
    ASSERT_EQ(ids.size(), c.count) << printable(c.text, 20);
    EXPECT_EQ(std::vector<int32_t>(ids.begin(), ids.begin() + 3), c.head);
    EXPECT_EQ(std::vector<int32_t>(ids.end() - 3, ids.end()), c.tail);
    EXPECT_EQ(tok.decode(ids), c.text);
  }
}

TEST(QwenTokenizer, ConcurrentEncodesMatchHuggingFace) {
  REQUIRE_QWEN();
  const Tokenizer& tok = *qwen();
  const auto& docs = corpus();
  const auto golden = json_lines(kGolden + "/qwen3_ids.jsonl.gz");
  constexpr size_t kThreads = 4;
  std::vector<size_t> failures(kThreads, 0);
  std::vector<std::thread> threads;
  for (size_t t = 0; t < kThreads; ++t) {
    // Each thread walks the corpus from a different start, so the shared word cache is hit concurrently.
    threads.emplace_back([&, t] {
      for (size_t k = 0; k < docs.size(); ++k) {
        const size_t i = (k + t * docs.size() / kThreads) % docs.size();
        if (tok.encode(docs[i].bytes) != ids_of(golden[i].at("ids"))) ++failures[t];
      }
    });
  }
  for (auto& th : threads) th.join();
  for (size_t t = 0; t < kThreads; ++t) EXPECT_EQ(failures[t], 0u) << "thread " << t;
}

// Small tokenizers (made by make_corpus.py) cover what Qwen3 does not use: Llama-3 and GPT-2 layouts,
// ignore_merges, a template post-processor, every added-token flag and every split behaviour.
TEST(TinyTokenizers, MatchHuggingFace) {
  const auto cases = json_lines(kGolden + "/tiny_ids.jsonl.gz");
  const auto& docs = corpus();
  ASSERT_GT(cases.size(), 1000u);
  std::map<std::string, Tokenizer> tokenizers;
  std::map<std::string, size_t> counts;
  size_t failures = 0;
  for (const auto& c : cases) {
    const std::string name = c.at("tokenizer").get<std::string>();
    auto it = tokenizers.find(name);
    if (it == tokenizers.end()) it = tokenizers.emplace(name, Tokenizer::load(kGolden + "/tiny/" + name + ".json")).first;
    const Tokenizer& tok = it->second;
    const std::string text = c.contains("doc") ? docs.at(c.at("doc").get<size_t>()).bytes : c.at("text").get<std::string>();
    const std::string label = fmt::format("{} on \"{}\"", name, printable(text, 60));
    ++counts[name];
    const auto ids = tok.encode(text);
    const bool ok = ids == ids_of(c.at("ids")) && tok.encode_with_template(text) == ids_of(c.at("ids_template")) &&
                    tok.encode(text, false) == ids_of(c.at("ids_plain")) &&
                    tok.decode(ids) == c.at("decode").get<std::string>() &&
                    tok.decode(ids, true) == c.at("decode_skip").get<std::string>();
    if (!ok && failures++ < 5) {
      ADD_FAILURE() << label << "\n" << mismatch(tok, 0, text, ids_of(c.at("ids")), ids) << "\n  template HF "
                    << c.at("ids_template").dump() << "\n  plain HF " << c.at("ids_plain").dump() << " tessera "
                    << nlohmann::json(tok.encode(text, false)).dump() << "\n  decode HF \""
                    << printable(c.at("decode").get<std::string>()) << "\" tessera \"" << printable(tok.decode(ids))
                    << "\"\n  decode_skip HF \"" << printable(c.at("decode_skip").get<std::string>())
                    << "\" tessera \"" << printable(tok.decode(ids, true)) << "\"";
    }
  }
  EXPECT_EQ(failures, 0u) << failures << " of " << cases.size() << " cases differ";
  EXPECT_EQ(counts.size(), 4u);
}

// --- refusals: a file that would tokenize differently is refused with the file and the JSON path.

class TokenizerFile : public tessera::testing::TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    std::ifstream in(kGolden + "/tiny/tiny-llama3.json");
    base_ = nlohmann::json::parse(in);
  }

  std::string write(const nlohmann::json& j, const std::string& name = "tokenizer.json") {
    const auto path = dir_ / name;
    std::ofstream(path) << j.dump();
    return path.string();
  }
  // The message of the error loading `j` gives, which must name the file.
  std::string error_of(const nlohmann::json& j) {
    const std::string path = write(j);
    const std::string message = tessera::testing::error_of([&] { Tokenizer::load(path); });
    EXPECT_NE(message.find(path), std::string::npos) << "the message names the file: " << message;
    return message;
  }

  nlohmann::json base_;
};

#define EXPECT_REFUSED(json, ...)                                                                       \
  do {                                                                                                    \
    const std::string message = error_of(json);                                                           \
    for (const char* part : {__VA_ARGS__}) EXPECT_NE(message.find(part), std::string::npos) << message;  \
  } while (0)

TEST_F(TokenizerFile, LoadsFromDirectoryOrFile) {
  const std::string file = write(base_);
  const Tokenizer a = Tokenizer::load(file);
  const Tokenizer b = Tokenizer::load(dir_.string());
  EXPECT_EQ(a.encode("hello world"), b.encode("hello world"));
  EXPECT_EQ(a.sha256(), b.sha256());
  EXPECT_EQ(b.source(), file);
}

TEST_F(TokenizerFile, RefusesUnsupportedComponents) {
  auto j = base_;
  j["model"]["type"] = "Unigram";
  EXPECT_REFUSED(j, "model.type", "Unigram");
  j = base_;
  j["normalizer"] = {{"type", "Lowercase"}};
  EXPECT_REFUSED(j, "normalizer.type", "Lowercase");
  j = base_;
  j["normalizer"] = {{"type", "Sequence"}, {"normalizers", {{{"type", "NFC"}}, {{"type", "NFKC"}}}}};
  EXPECT_REFUSED(j, "normalizer.normalizers[1].type", "NFKC");
  j = base_;
  j["pre_tokenizer"]["pretokenizers"][0] = {{"type", "Whitespace"}};
  EXPECT_REFUSED(j, "pre_tokenizer.pretokenizers[0].type", "Whitespace");
  j = base_;
  j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"String", " "}}}, {"behavior", "Isolated"}, {"invert", false}};
  EXPECT_REFUSED(j, "pre_tokenizer", "ByteLevel");
  j = base_;
  j["decoder"] = {{"type", "WordPiece"}, {"prefix", "##"}, {"cleanup", true}};
  EXPECT_REFUSED(j, "decoder.type", "WordPiece");
  j = base_;
  j["post_processor"] = {{"type", "RobertaProcessing"}};
  EXPECT_REFUSED(j, "post_processor.type", "RobertaProcessing");
  j = base_;
  j["model"]["dropout"] = 0.1;
  EXPECT_REFUSED(j, "model.dropout");
  j = base_;
  j["model"]["continuing_subword_prefix"] = "##";
  EXPECT_REFUSED(j, "model.continuing_subword_prefix");
  j = base_;
  j["truncation"] = {{"max_length", 512}};
  EXPECT_REFUSED(j, "truncation");
  j = base_;
  j["model"]["new_option"] = true;
  EXPECT_REFUSED(j, "model.new_option", "unknown key");
}

TEST_F(TokenizerFile, RefusesRegexesWithAnotherMeaning) {
  for (const char* pattern : {"\\w+", "\\d", "^a", "(?m:a.)", "[[:alpha:]]", "\\p{Lu}", "a*"}) {
    auto j = base_;
    j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = pattern;
    SCOPED_TRACE(pattern);
    EXPECT_REFUSED(j, "pre_tokenizer.pretokenizers[0].pattern.Regex");
  }
}

TEST_F(TokenizerFile, RefusesMissingAndIllTypedFields) {
  auto j = base_;
  j["model"].erase("vocab");
  EXPECT_REFUSED(j, "model.vocab", "missing");
  j = base_;
  j["added_tokens"][0]["special"] = "yes";
  EXPECT_REFUSED(j, "added_tokens[0].special", "expected true or false");
  j = base_;
  j["added_tokens"][1]["id"] = 5;
  EXPECT_REFUSED(j, "added_tokens[1].id", "HF gives");
  j = base_;
  j["model"]["merges"][3] = {"no-such-token", "x"};
  EXPECT_REFUSED(j, "model.merges[3]", "no-such-token");
  j = base_;
  j["model"]["vocab"]["\u0120"] = "seven";
  EXPECT_REFUSED(j, "model.vocab.\u0120");
  j = base_;
  j["model"]["vocab"].erase("\u010a");
  EXPECT_REFUSED(j, "model.vocab", "byte 0x0A");
  j = base_;
  j["pre_tokenizer"]["pretokenizers"][0]["behavior"] = "Sideways";
  EXPECT_REFUSED(j, "pre_tokenizer.pretokenizers[0].behavior", "Sideways");
}

TEST_F(TokenizerFile, RefusesWhatIsNotATokenizer) {
  using tessera::testing::error_of;
  const auto path = dir_ / "broken.json";
  std::ofstream(path) << "{\"model\": ";
  const std::string broken = error_of([&] { Tokenizer::load(path.string()); });
  EXPECT_NE(broken.find(path.string() + ": not valid JSON"), std::string::npos) << broken;
  const auto empty = dir_ / "empty";
  fs::create_directories(empty);
  const std::string no_file = error_of([&] { Tokenizer::load(empty.string()); });
  EXPECT_NE(no_file.find(empty.string() + ": no tokenizer.json"), std::string::npos) << no_file;
  const std::string missing = error_of([&] { Tokenizer::load((dir_ / "missing.json").string()); });
  EXPECT_NE(missing.find("missing.json: no such"), std::string::npos) << missing;
}

}  // namespace
