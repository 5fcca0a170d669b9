#pragma once
// The Qwen3 ChatML chat template, written as code. render_chat() produces byte for byte what Hugging Face
// transformers' `apply_chat_template(messages, tools=..., add_generation_prompt=..., enable_thinking=...)`
// renders with the Jinja template of Qwen3's tokenizer_config.json, and tokenize_chat() the same ids as
// `apply_chat_template(..., tokenize=True)`. tests/golden/chat/ holds the conversations that prove it.
//
// What the template does (and so what this code does):
//   * A first `system` message opens the text; with tools it is followed by the tools block
//     ("# Tools ... <tools>\n{tool}\n...</tools> ..."), each tool written as Python's json.dumps writes it.
//     Later system messages are ordinary `<|im_start|>system\n...<|im_end|>\n` turns.
//   * user: `<|im_start|>user\nCONTENT<|im_end|>\n`.
//   * tool: wrapped in `\n<tool_response>\nCONTENT\n</tool_response>` inside a user turn; consecutive tool
//     messages share one user turn.
//   * assistant: `<|im_start|>assistant\n` BODY `<|im_end|>\n`. Reasoning comes from reasoning_content or,
//     when that is absent, from CONTENT split at `</think>` (reasoning = before the first `</think>`, after
//     the last `<think>` there; content = after the last `</think>`, leading newlines dropped). Only
//     assistant turns after the last user query (a user message that is not one whole
//     `<tool_response>...</tool_response>`) show reasoning, as `<think>\nREASONING\n</think>\n\n`; such a
//     turn shows the block when its reasoning is non-empty, and the last message of the conversation
//     always does (an empty `<think>\n\n</think>\n\n` when it has none). Tool calls follow as
//     `<tool_call>\n{"name": "N", "arguments": A}\n</tool_call>` separated by `\n`, with a `\n` before the
//     first one when the content is non-empty.
//   * add_generation_prompt appends `<|im_start|>assistant\n`, plus `<think>\n\n</think>\n\n` when
//     enable_thinking is false. enable_thinking changes nothing else.
//
// Where tessera refuses what transformers accepts or silently drops (see messages_from_json and
// render_chat): roles other than system/user/assistant/tool (the template drops them without a word),
// tool calls or reasoning on a non-assistant message (dropped as well), content that is not a string.
//
// LABELS (tokenize_chat). Loss is taken on what the assistant produces and nothing else:
//   * Every assistant message contributes the bytes after its `<|im_start|>assistant\n` header up to and
//     including its `<|im_end|>`: the think block (when rendered), the content, the tool calls and the
//     `<|im_end|>`, which teaches the model to stop. The header and the `\n` after `<|im_end|>` are not
//     trained. Every assistant message is trained, earlier turns included (with their reasoning removed,
//     as the template renders them).
//   * The generation prompt (add_generation_prompt) and system, user and tool turns carry no labels.
//   * A token is labelled when its bytes overlap a trained range, the rule of transformers'
//     `return_assistant_tokens_mask` ("mask every token overlapping a span", TRL's assistant_only_loss).
//     The end of a range is always a token boundary (`<|im_end|>` is a special token; checked). The start
//     is a boundary too unless the body begins with whitespace ending in a newline (content "\n\nHi" in a
//     turn without think block): the pre-tokenizer then joins the header's `\n` to it, and that one token
//     is labelled.
// Byte ranges are taken on the text the tokenizer sees after normalisation (NFC), so content that NFC
// changes still gets exact labels.

#include <nlohmann/json_fwd.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "tessera/data/tokenizer.hpp"

namespace tessera::data {

struct ToolCall {
  std::string name;
  // Written into the text verbatim: the JSON object text of the arguments (messages_from_json gives a
  // string argument as it is and writes an object the way the template's tojson does).
  std::string arguments_json;
};

struct Message {
  std::string role;  // "system", "user", "assistant" or "tool"
  std::string content;
  // Absent and empty differ: only an absent reasoning_content lets the template take the reasoning out of
  // a `<think>...</think>` written in content.
  std::optional<std::string> reasoning_content;
  std::vector<ToolCall> tool_calls;  // assistant messages only
};

struct ChatOptions {
  bool add_generation_prompt = false;
  bool enable_thinking = true;
  std::string tools_json;  // a JSON array of tool schemas (objects), or empty; `[]` is the same as empty
};

// Messages from an OpenAI-style list, read as transformers reads them: null values count as absent;
// reasoning is taken from the first non-null of "reasoning_content", "thinking", "reasoning"; a tool call
// is {"function": {"name", "arguments"}} or {"name", "arguments"}; "arguments" is a JSON object or its
// text. Null or absent content is accepted (as "") only on an assistant message with tool calls, the
// OpenAI form, which transformers 5.24 refuses with UndefinedError. Other keys (tool_call_id, name, ...)
// are ignored. Errors name `where`, the message index and the field.
// Use the ordered_json overload when arguments are objects: json.dumps keeps the source's key order, and
// nlohmann::json has already sorted the keys (that overload writes them sorted).
std::vector<Message> messages_from_json(const nlohmann::ordered_json& messages, const std::string& where);
std::vector<Message> messages_from_json(const nlohmann::json& messages, const std::string& where);

struct RenderedChat {
  std::string text;
  // Half-open byte ranges [first, second) of `text` that carry labels, in order (see LABELS above).
  std::vector<std::pair<size_t, size_t>> trainable;
};

// The template applied to `messages`. Throws tessera::Error for an empty conversation, an unknown role
// (naming the message index and role), tool calls or non-empty reasoning on a non-assistant message, and
// tools_json that is not an array of objects.
RenderedChat render_chat(const std::vector<Message>& messages, const ChatOptions& options);

struct TokenizedChat {
  std::vector<int32_t> ids;     // == tokenizer.encode(render_chat(messages, options).text)
  std::vector<uint8_t> labels;  // one per id: 1 = loss on this token (see LABELS above)
};

// Renders and tokenizes (special tokens in the text are recognised, as apply_chat_template does). The
// tokenizer must know <|im_start|> and <|im_end|> as special tokens.
TokenizedChat tokenize_chat(const Tokenizer& tokenizer, const std::vector<Message>& messages,
                            const ChatOptions& options);

// `value` as Python's json.dumps(value, ensure_ascii=False) writes it, which is what the template's
// `tojson` filter emits: ", " and ": " separators, keys in the object's order, UTF-8 kept, control
// characters escaped as \u00XX, floats written as Python's repr (1.0, 1e-05, 1e+16).
std::string python_json_dumps(const nlohmann::ordered_json& value);

// Parses JSON text for python_json_dumps. Refuses (naming `where`) what json.loads would read differently
// from nlohmann: integers beyond 64 bits, which Python keeps exact.
nlohmann::ordered_json parse_json_for_python(const std::string& text, const std::string& where);

}  // namespace tessera::data
