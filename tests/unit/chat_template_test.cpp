// The Qwen3 chat template against Hugging Face transformers: every conversation of
// tests/golden/chat/conversations.json (written by generate.py with apply_chat_template) must render to the
// same text byte for byte, tokenize to the same ids, and get the labels the generator derived on its own
// from the rendered string. Rendering needs no tokenizer; ids and labels need the shared Qwen3 tokenizer.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "tessera/core/error.hpp"
#include "tessera/data/chat_template.hpp"
#include "tessera/data/tokenizer.hpp"
#include "test_support.hpp"

namespace {

namespace fs = std::filesystem;
using namespace tessera::data;
using ojson = nlohmann::ordered_json;

const std::string kGoldenFile = std::string(TESSERA_SOURCE_DIR) + "/tests/golden/chat/conversations.json";
const std::string kQwenDir = tessera::testing::qwen3_tokenizer_dir();

// ordered_json: the tool schemas and arguments must keep the key order json.dumps saw.
const ojson& golden() {
  static const ojson data = [] {
    std::ifstream in(kGoldenFile);
    if (!in) throw std::runtime_error("cannot open " + kGoldenFile);
    return ojson::parse(in);
  }();
  return data;
}

const Tokenizer* qwen() { return tessera::testing::qwen3_tokenizer(); }

#define REQUIRE_QWEN()                                                                                   \
  if (qwen() == nullptr) GTEST_SKIP() << "the Qwen3 tokenizer is not at " << kQwenDir                  \
                                      << " (the shared data directory); ids and labels are not checked"

ChatOptions options_of(const ojson& conversation) {
  ChatOptions options;
  options.add_generation_prompt = conversation.at("add_generation_prompt").get<bool>();
  options.enable_thinking = conversation.at("enable_thinking").get<bool>();
  if (!conversation.at("tools").is_null()) options.tools_json = conversation.at("tools").dump();
  return options;
}

std::vector<Message> messages_of(const ojson& conversation) {
  return messages_from_json(conversation.at("messages"), conversation.at("name").get<std::string>());
}

std::string labels_string(const std::vector<uint8_t>& labels) {
  std::string out;
  for (uint8_t l : labels) out += static_cast<char>('0' + l);
  return out;
}

// The ids of the text cut at the trainable boundaries and encoded piece by piece, each piece's tokens
// labelled when the piece is trainable: the labels when no token straddles a boundary.
std::pair<std::vector<int32_t>, std::vector<uint8_t>> piecewise(const Tokenizer& tokenizer, const RenderedChat& chat) {
  std::vector<int32_t> ids;
  std::vector<uint8_t> labels;
  size_t from = 0;
  auto add = [&](size_t to, uint8_t label) {
    for (int32_t id : tokenizer.encode(std::string_view(chat.text).substr(from, to - from))) {
      ids.push_back(id);
      labels.push_back(label);
    }
    from = to;
  };
  for (const auto& [first, second] : chat.trainable) {
    add(first, 0);
    add(second, 1);
  }
  add(chat.text.size(), 0);
  return {ids, labels};
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const tessera::Error& e) {
    return e.what();
  }
  return "(no error)";
}

Message msg(std::string role, std::string content) {
  Message m;
  m.role = std::move(role);
  m.content = std::move(content);
  return m;
}

// ---------------------------------------------------------------------------------------------------------
// Golden conversations.

TEST(ChatTemplateGolden, CoversEveryTemplateRule) {
  const ojson& cases = golden().at("cases");
  ASSERT_GE(cases.size(), 20u);
  bool tools = false, consecutive_tools = false, no_thinking_prompt = false, earlier_reasoning = false,
       inline_think = false, unicode = false, empty_content = false, later_system = false, straddle = false,
       tool_response_user = false, no_system = false;
  for (const ojson& c : cases) {
    const ojson& m = c.at("messages");
    tools |= !c.at("tools").is_null();
    no_thinking_prompt |= c.at("add_generation_prompt").get<bool>() && !c.at("enable_thinking").get<bool>();
    straddle |= c.at("straddling_tokens").get<int>() > 0;
    no_system |= m.front().at("role") != "system";
    for (size_t i = 0; i < m.size(); ++i) {
      const std::string role = m[i].at("role");
      const std::string content = m[i].value("content", "");
      consecutive_tools |= role == "tool" && i > 0 && m[i - 1].at("role") == "tool";
      earlier_reasoning |= role == "assistant" && m[i].contains("reasoning_content") && i + 1 < m.size();
      inline_think |= role == "assistant" && content.find("</think>") != std::string::npos;
      empty_content |= content.empty();
      later_system |= role == "system" && i > 0;
      tool_response_user |= role == "user" && content.starts_with("<tool_response>");
      for (unsigned char ch : content) unicode |= ch >= 0x80;
    }
  }
  EXPECT_TRUE(tools && consecutive_tools && no_thinking_prompt && earlier_reasoning && inline_think && unicode &&
              empty_content && later_system && straddle && tool_response_user && no_system);
}

TEST(ChatTemplateGolden, RenderMatchesTransformers) {
  size_t matched = 0;
  for (const ojson& c : golden().at("cases")) {
    SCOPED_TRACE(c.at("name").get<std::string>());
    const RenderedChat chat = render_chat(messages_of(c), options_of(c));
    EXPECT_EQ(chat.text, c.at("text").get<std::string>());
    std::vector<std::pair<size_t, size_t>> expected;
    for (const ojson& r : c.at("trainable")) expected.emplace_back(r[0].get<size_t>(), r[1].get<size_t>());
    EXPECT_EQ(chat.trainable, expected);
    matched += chat.text == c.at("text").get<std::string>() && chat.trainable == expected;
  }
  EXPECT_EQ(matched, golden().at("cases").size());
}

TEST(ChatTemplateGolden, IdsAndLabelsMatchTransformers) {
  REQUIRE_QWEN();
  EXPECT_EQ(qwen()->sha256(), golden().at("generator").at("tokenizer_json_sha256").get<std::string>());
  for (const ojson& c : golden().at("cases")) {
    SCOPED_TRACE(c.at("name").get<std::string>());
    const TokenizedChat t = tokenize_chat(*qwen(), messages_of(c), options_of(c));
    EXPECT_EQ(t.ids, c.at("ids").get<std::vector<int32_t>>());
    EXPECT_EQ(t.ids, qwen()->encode(c.at("text").get<std::string>()));
    EXPECT_EQ(labels_string(t.labels), c.at("labels").get<std::string>());
  }
}

// The template implemented here is the one in the shared tokenizer_config.json, byte for byte.
TEST(ChatTemplateGolden, GeneratedFromTheSharedTemplate) {
  const std::string config_path = kQwenDir + "/tokenizer_config.json";
  if (!fs::exists(config_path)) GTEST_SKIP() << "the Qwen3 tokenizer config is not at " << config_path;
  std::ifstream in(config_path);
  const std::string chat_template = nlohmann::json::parse(in).at("chat_template").get<std::string>();
  EXPECT_EQ(sha256_hex(chat_template), golden().at("generator").at("chat_template_sha256").get<std::string>());
}

// Boundaries are clean (cutting the text there changes no id) except where the generator counted tokens
// straddling one; then the overlap rule labels the straddling token.
TEST(ChatTemplateGolden, LabelBoundariesAreTokenBoundaries) {
  REQUIRE_QWEN();
  for (const ojson& c : golden().at("cases")) {
    SCOPED_TRACE(c.at("name").get<std::string>());
    const auto messages = messages_of(c);
    const RenderedChat chat = render_chat(messages, options_of(c));
    const TokenizedChat t = tokenize_chat(*qwen(), messages, options_of(c));
    const auto [ids, labels] = piecewise(*qwen(), chat);
    if (c.at("straddling_tokens").get<int>() == 0) {
      EXPECT_EQ(ids, t.ids);
      EXPECT_EQ(labels, t.labels);
    } else {
      EXPECT_NE(ids, t.ids);
    }
  }
}

// NFC changes decomposed characters, so the tokens' bytes are not the rendered text's; labels stay exact.
TEST(ChatTemplateGolden, NormalisedTextKeepsExactLabels) {
  REQUIRE_QWEN();
  for (const ojson& c : golden().at("cases")) {
    if (c.at("name") != "unicode") continue;
    const TokenizedChat t = tokenize_chat(*qwen(), messages_of(c), options_of(c));
    EXPECT_NE(qwen()->decode(t.ids), c.at("text").get<std::string>());  // the text was normalised
    EXPECT_EQ(labels_string(t.labels), c.at("labels").get<std::string>());
    return;
  }
  FAIL() << "no 'unicode' conversation in " << kGoldenFile;
}

// ---------------------------------------------------------------------------------------------------------
// Rules spelled out.

TEST(ChatTemplate, GenerationPromptAndThinkingSwitch) {
  ChatOptions options;
  options.add_generation_prompt = true;
  EXPECT_EQ(render_chat({msg("user", "hi")}, options).text,
            "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
  options.enable_thinking = false;
  const RenderedChat chat = render_chat({msg("user", "hi")}, options);
  EXPECT_EQ(chat.text, "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n");
  EXPECT_TRUE(chat.trainable.empty());  // the prompt is not the model's output
}

TEST(ChatTemplate, TrainableRangeIsBodyThroughImEnd) {
  std::vector<Message> m = {msg("user", "q"), msg("assistant", "a")};
  m[1].reasoning_content = "r";
  const RenderedChat chat = render_chat(m, {});
  ASSERT_EQ(chat.trainable.size(), 1u);
  const auto [first, second] = chat.trainable[0];
  EXPECT_EQ(chat.text.substr(first, second - first), "<think>\nr\n</think>\n\na<|im_end|>");
  EXPECT_EQ(chat.text.substr(second), "\n");
}

TEST(ChatTemplate, AbsentAndEmptyReasoningDiffer) {
  std::vector<Message> m = {msg("user", "q"), msg("assistant", "<think>r</think>a")};
  EXPECT_EQ(render_chat(m, {}).text,
            "<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n<think>\nr\n</think>\n\na<|im_end|>\n");
  m[1].reasoning_content = "";
  EXPECT_EQ(render_chat(m, {}).text,
            "<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n<think>r</think>a"
            "<|im_end|>\n");
}

TEST(ChatTemplate, NullContentWithToolCallsReadsAsEmpty) {
  const ojson with_null = ojson::parse(R"([{"role": "user", "content": "w?"},
    {"role": "assistant", "content": null, "tool_calls": [{"function": {"name": "f", "arguments": {"b": 1, "a": [2.0]}}}]}])");
  const ojson with_empty = ojson::parse(R"([{"role": "user", "content": "w?"},
    {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "f", "arguments": {"b": 1, "a": [2.0]}}}]}])");
  const std::string text = render_chat(messages_from_json(with_null, "t"), {}).text;
  EXPECT_EQ(text, render_chat(messages_from_json(with_empty, "t"), {}).text);
  EXPECT_NE(text.find("<tool_call>\n{\"name\": \"f\", \"arguments\": {\"b\": 1, \"a\": [2.0]}}\n</tool_call>"),
            std::string::npos);
}

TEST(ChatTemplate, ReasoningAliasesAsTransformers) {
  const auto read = [](const char* text) {
    return messages_from_json(ojson::parse(text), "t").at(0).reasoning_content;
  };
  EXPECT_EQ(read(R"([{"role": "assistant", "content": "", "thinking": "t"}])"), "t");
  EXPECT_EQ(read(R"([{"role": "assistant", "content": "", "reasoning": "r"}])"), "r");
  EXPECT_EQ(read(R"([{"role": "assistant", "content": "", "reasoning_content": "c", "thinking": "t"}])"), "c");
  EXPECT_EQ(read(R"([{"role": "assistant", "content": "", "reasoning_content": null, "thinking": "t"}])"), "t");
  EXPECT_EQ(read(R"([{"role": "assistant", "content": ""}])"), std::nullopt);
}

// nlohmann::json has sorted object keys before tessera sees them; ordered_json keeps json.dumps' order.
TEST(ChatTemplate, ArgumentKeyOrderFollowsTheJsonType) {
  const char* text = R"([{"role": "assistant", "content": "", "tool_calls": [{"name": "f", "arguments": {"b": 1, "a": 2}}]}])";
  EXPECT_EQ(messages_from_json(ojson::parse(text), "t")[0].tool_calls[0].arguments_json, R"({"b": 1, "a": 2})");
  EXPECT_EQ(messages_from_json(nlohmann::json::parse(text), "t")[0].tool_calls[0].arguments_json,
            R"({"a": 2, "b": 1})");
  // A string is kept verbatim, spacing and all.
  const char* verbatim = R"([{"role": "assistant", "content": "", "tool_calls": [{"name": "f", "arguments": "{\"b\":1}"}]}])";
  EXPECT_EQ(messages_from_json(ojson::parse(verbatim), "t")[0].tool_calls[0].arguments_json, R"({"b":1})");
}

// The one token that joins the header's '\n' to content starting with newlines is labelled.
TEST(ChatTemplate, StraddlingHeaderNewlineIsLabelled) {
  REQUIRE_QWEN();
  const std::vector<Message> m = {msg("user", "a"), msg("assistant", "\n\nX"), msg("user", "b")};
  const TokenizedChat t = tokenize_chat(*qwen(), m, {});
  const auto assistant = qwen()->token_to_id("assistant");
  ASSERT_TRUE(assistant.has_value());
  size_t k = 0;
  while (k < t.ids.size() && t.ids[k] != *assistant) ++k;
  ASSERT_LT(k + 1, t.ids.size());
  EXPECT_EQ(t.labels[k], 0);
  EXPECT_EQ(qwen()->decode(std::vector<int32_t>{t.ids[k + 1]}), "\n\n\n");  // header '\n' + content "\n\n"
  EXPECT_EQ(t.labels[k + 1], 1);
}

// ---------------------------------------------------------------------------------------------------------
// Refusals.

TEST(ChatTemplate, RefusesUnknownRoleNamingIndexAndRole) {
  const std::string e = error_of([] { render_chat({msg("user", "a"), msg("developer", "b")}, {}); });
  EXPECT_NE(e.find("message 1"), std::string::npos) << e;
  EXPECT_NE(e.find("'developer'"), std::string::npos) << e;
  const std::string j = error_of([] {
    messages_from_json(ojson::parse(R"([{"role": "user", "content": "a"}, {"role": "function", "content": "b"}])"),
                       "data.jsonl line 7");
  });
  EXPECT_NE(j.find("data.jsonl line 7: messages[1]"), std::string::npos) << j;
  EXPECT_NE(j.find("'function'"), std::string::npos) << j;
}

TEST(ChatTemplate, RefusesWhatTheTemplateWouldDropOrCannotRender) {
  const auto from = [](const char* text) { return error_of([&] { messages_from_json(ojson::parse(text), "f"); }); };
  const auto expect_has = [](const std::string& e, const char* part) {
    EXPECT_NE(e.find(part), std::string::npos) << "'" << part << "' not in: " << e;
  };
  expect_has(from(R"({"role": "user"})"), "messages must be an array");
  expect_has(from(R"([])"), "no messages");
  expect_has(from(R"([{"content": "x"}])"), "messages[0]: the message has no role");
  expect_has(from(R"([{"role": 3, "content": "x"}])"), "messages[0].role: must be a string");
  expect_has(from(R"([{"role": "user", "content": [{"type": "text", "text": "x"}]}])"), "messages[0].content: a list");
  expect_has(from(R"([{"role": "user", "content": 5}])"), "messages[0].content: must be a string");
  expect_has(from(R"([{"role": "user"}])"), "messages[0]: the user message has no content");
  expect_has(from(R"([{"role": "assistant", "content": null}])"), "the assistant message has no content");
  expect_has(from(R"([{"role": "user", "content": "x", "tool_calls": [{"name": "f", "arguments": {}}]}])"),
             "message 0 (user) has tool_calls");
  expect_has(from(R"([{"role": "tool", "content": "x", "reasoning_content": "r"}])"), "message 0 (tool) has reasoning");
  expect_has(from(R"([{"role": "assistant", "content": "", "tool_calls": {}}])"), "tool_calls: must be an array");
  expect_has(from(R"([{"role": "assistant", "content": "", "tool_calls": ["f"]}])"), "tool_calls[0]: a tool call must be an object");
  expect_has(from(R"([{"role": "assistant", "content": "", "tool_calls": [{"function": {"arguments": {}}}]}])"),
             "messages[0].tool_calls[0].function: the tool call has no name");
  expect_has(from(R"([{"role": "assistant", "content": "", "tool_calls": [{"name": "f"}]}])"),
             "tool_calls[0]: the tool call has no arguments");
  expect_has(from(R"([{"role": "assistant", "content": "", "reasoning_content": 1}])"),
             "messages[0].reasoning_content: must be a string");
  expect_has(error_of([] { render_chat({}, {}); }), "no messages");
  Message user = msg("user", "x");
  user.reasoning_content = "r";
  expect_has(error_of([&] { render_chat({user}, {}); }), "message 0 (user) has reasoning");
}

TEST(ChatTemplate, ToolsJson) {
  const std::vector<Message> m = {msg("user", "x")};
  const auto tools_error = [&](std::string tools) {
    ChatOptions options;
    options.tools_json = std::move(tools);
    return error_of([&] { render_chat(m, options); });
  };
  EXPECT_NE(tools_error("[{").find("tools_json: not valid JSON"), std::string::npos);
  EXPECT_NE(tools_error(R"({"name": "f"})").find("must be a JSON array"), std::string::npos);
  EXPECT_NE(tools_error(R"([{"name": "f"}, 3])").find("tools_json[1] must be an object"), std::string::npos);
  EXPECT_NE(tools_error(R"([{"max": 123456789012345678901234}])").find("123456789012345678901234"),
            std::string::npos);
  ChatOptions empty;
  empty.tools_json = "[]";
  EXPECT_EQ(render_chat(m, empty).text, render_chat(m, {}).text);  // an empty list is falsy in Jinja
}

// A byte-level tokenizer without merges (one token per byte), with NFC, the added tokens given and, with
// `chatml`, <|im_start|> and <|im_end|>; written to a temporary file and loaded.
Tokenizer tiny_tokenizer(bool chatml, const std::vector<std::string>& extra_added) {
  ojson vocab = ojson::object();
  int next = 256;
  for (int b = 0; b < 256; ++b) {  // GPT-2's byte alphabet
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    const int cp = printable ? b : next++;
    std::string s;
    if (cp < 0x80) {
      s += static_cast<char>(cp);
    } else {
      s += static_cast<char>(0xC0 | (cp >> 6));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    }
    vocab[s] = b;
  }
  ojson added = ojson::array();
  const auto add = [&](const std::string& content, bool special) {
    added.push_back({{"id", 256 + added.size()}, {"content", content}, {"single_word", false}, {"lstrip", false},
                     {"rstrip", false}, {"normalized", false}, {"special", special}});
  };
  if (chatml) {
    add("<|im_start|>", true);
    add("<|im_end|>", true);
  }
  for (const std::string& content : extra_added) add(content, false);
  const ojson byte_level = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false},
                            {"use_regex", true}};
  const ojson file = {
      {"version", "1.0"}, {"truncation", nullptr}, {"padding", nullptr}, {"added_tokens", added},
      {"normalizer", {{"type", "NFC"}}}, {"pre_tokenizer", byte_level}, {"post_processor", nullptr},
      {"decoder", byte_level},
      {"model", {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", ""},
                 {"end_of_word_suffix", ""}, {"fuse_unk", false}, {"byte_fallback", false}, {"ignore_merges", false},
                 {"vocab", vocab}, {"merges", ojson::array()}}}};
  const fs::path dir = fs::temp_directory_path() / ("tessera_chat_template_test_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "tokenizer.json") << file.dump();
  Tokenizer tokenizer = Tokenizer::load((dir / "tokenizer.json").string());
  fs::remove_all(dir);
  return tokenizer;
}

// A tokenizer without ChatML tokens cannot carry these labels.
TEST(ChatTemplate, RefusesTokenizerWithoutChatMLTokens) {
  const Tokenizer tiny = tiny_tokenizer(/*chatml=*/false, {});
  const std::string e = error_of([&] { tokenize_chat(tiny, {msg("user", "x")}, {}); });
  EXPECT_NE(e.find("no special token <|im_start|>"), std::string::npos) << e;
}

// A non-special added token "éclair" reads differently in the byte-level alphabet, and NFC changes
// decomposed text: exercises both fallbacks of the label placement against the piecewise oracle.
TEST(ChatTemplate, LabelsWithLatinAddedTokenAndNormalisation) {
  const Tokenizer tiny = tiny_tokenizer(/*chatml=*/true, {"\xC3\xA9" "clair", "<think>", "</think>"});
  const int32_t eclair = *tiny.token_to_id("\xC3\xA9" "clair");
  for (const char* content : {"\xC3\xA9" "clair!",                            // text already NFC
                              "\xC3\xA9" "clair e\xCC\x81 \xE2\x84\xAB"}) {  // plus e + U+0301 and U+212B
    SCOPED_TRACE(content);
    const std::vector<Message> m = {msg("system", "s\xCC\x81"), msg("user", "u"), msg("assistant", content),
                                    msg("user", "v"), msg("assistant", "w")};
    const TokenizedChat t = tokenize_chat(tiny, m, {});
    const auto [ids, labels] = piecewise(tiny, render_chat(m, {}));
    EXPECT_EQ(t.ids, ids);
    EXPECT_EQ(labels_string(t.labels), labels_string(labels));
    EXPECT_NE(std::find(t.ids.begin(), t.ids.end(), eclair), t.ids.end());
  }
}

// ---------------------------------------------------------------------------------------------------------
// json.dumps.

TEST(PythonJson, MatchesJsonDumps) {
  const std::vector<std::pair<double, const char*>> floats = {
      {0.0, "0.0"}, {-0.0, "-0.0"}, {1.0, "1.0"}, {-1.5, "-1.5"}, {0.1, "0.1"}, {0.0001, "0.0001"},
      {1e-05, "1e-05"}, {1.5e-05, "1.5e-05"}, {123456.789, "123456.789"}, {1e15, "1000000000000000.0"},
      {1e16, "1e+16"}, {9999999999999998.0, "9999999999999998.0"}, {1.2345678901234568e+16, "1.2345678901234568e+16"},
      {1e22, "1e+22"}, {2.5e-07, "2.5e-07"}, {5e-324, "5e-324"}, {1.7976931348623157e+308, "1.7976931348623157e+308"},
      {3.141592653589793, "3.141592653589793"}, {100.0, "100.0"}, {1e100, "1e+100"},
      {0.30000000000000004, "0.30000000000000004"}, {9007199254740992.0, "9007199254740992.0"},
      {-2.5e-300, "-2.5e-300"}};
  for (const auto& [value, expected] : floats) EXPECT_EQ(python_json_dumps(ojson(value)), expected) << expected;

  EXPECT_EQ(python_json_dumps(ojson::parse(R"({"z": [1, -2, 18446744073709551615, true, null, {}, []], "a": {"k": "v"}})")),
            R"({"z": [1, -2, 18446744073709551615, true, null, {}, []], "a": {"k": "v"}})");
  // Only quote, backslash and C0 controls are escaped (lowercase hex); DEL and non-ASCII stay as they are.
  EXPECT_EQ(python_json_dumps(ojson(std::string("q\" b\\ n\n r\r t\t b\b f\f \x01\x1f \x7f \xC3\xA9 \xF0\x9F\x98\x80"))),
            "\"q\\\" b\\\\ n\\n r\\r t\\t b\\b f\\f \\u0001\\u001f \x7f \xC3\xA9 \xF0\x9F\x98\x80\"");
  EXPECT_EQ(python_json_dumps(parse_json_for_python("-0", "t")), "0");  // json.loads("-0") is the int 0
}

}  // namespace
