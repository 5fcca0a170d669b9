// The Qwen3 chat template (tokenizer_config.json's Jinja) as code: render_chat follows the template
// statement by statement, so each block below names the template rule it implements. The messages are
// read the way transformers 5.24 hands them to the template (messages_from_json).
#include "tessera/data/chat_template.hpp"

#include <nlohmann/json.hpp>

#include <string_view>

#include "tessera/core/error.hpp"

namespace tessera::data {
namespace {

using ojson = nlohmann::ordered_json;

constexpr std::string_view kImStart = "<|im_start|>";
constexpr std::string_view kImEnd = "<|im_end|>";

bool known_role(std::string_view role) {
  return role == "system" || role == "user" || role == "assistant" || role == "tool";
}

// Python's str.strip/lstrip/rstrip with the argument '\n': only newlines go.
std::string_view lstrip_newlines(std::string_view s) {
  const size_t first = s.find_first_not_of('\n');
  return first == std::string_view::npos ? std::string_view() : s.substr(first);
}
std::string_view rstrip_newlines(std::string_view s) {
  const size_t last = s.find_last_not_of('\n');
  return last == std::string_view::npos ? std::string_view() : s.substr(0, last + 1);
}
std::string_view strip_newlines(std::string_view s) { return rstrip_newlines(lstrip_newlines(s)); }

// A user message that is one whole tool response is not a query (the template's multi_step_tool scan).
bool is_tool_response(std::string_view content) {
  return content.starts_with("<tool_response>") && content.ends_with("</tool_response>");
}

// transformers drops keys whose value is None before rendering, so null and absent mean the same.
const ojson* field(const ojson& object, const char* key) {
  const auto it = object.find(key);
  return it == object.end() || it->is_null() ? nullptr : &*it;
}

ToolCall tool_call_from_json(const ojson& call, const std::string& where) {
  TESSERA_CHECK(call.is_object(), "{}: a tool call must be an object, got {}", where, call.type_name());
  // `{%- if tool_call.function %}{%- set tool_call = tool_call.function %}`: an empty object is falsy.
  const ojson* function = &call;
  if (const ojson* f = field(call, "function")) {
    TESSERA_CHECK(f->is_object(), "{}.function: must be an object, got {}", where, f->type_name());
    if (!f->empty()) function = f;
  }
  const std::string at = function == &call ? where : where + ".function";
  ToolCall out;
  const ojson* name = field(*function, "name");
  TESSERA_CHECK(name != nullptr, "{}: the tool call has no name", at);
  TESSERA_CHECK(name->is_string(), "{}.name: must be a string, got {}", at, name->type_name());
  out.name = name->get<std::string>();
  // A string is written verbatim, anything else through tojson (`arguments is string`). Nested nulls are
  // kept by transformers, so null arguments are written "null", as the template does.
  const auto it = function->find("arguments");
  TESSERA_CHECK(it != function->end(), "{}: the tool call has no arguments", at);
  out.arguments_json = it->is_string() ? it->get<std::string>() : python_json_dumps(*it);
  return out;
}

Message message_from_json(const ojson& m, const std::string& where) {
  TESSERA_CHECK(m.is_object(), "{}: a message must be an object, got {}", where, m.type_name());
  Message out;
  const ojson* role = field(m, "role");
  TESSERA_CHECK(role != nullptr, "{}: the message has no role", where);
  TESSERA_CHECK(role->is_string(), "{}.role: must be a string, got {}", where, role->type_name());
  out.role = role->get<std::string>();
  TESSERA_CHECK(known_role(out.role),
                "{}: role '{}' is not one the Qwen3 chat template renders (system, user, assistant, tool)",
                where, out.role);  // checked here too, before the fields, so the error is about the role

  if (const ojson* calls = field(m, "tool_calls")) {
    TESSERA_CHECK(calls->is_array(), "{}.tool_calls: must be an array, got {}", where, calls->type_name());
    for (size_t i = 0; i < calls->size(); ++i) {
      out.tool_calls.push_back(tool_call_from_json((*calls)[i], where + ".tool_calls[" + std::to_string(i) + "]"));
    }
  }

  if (const ojson* content = field(m, "content")) {
    TESSERA_CHECK(!content->is_array(),
                  "{}.content: a list of content parts (multimodal) is not supported by the Qwen3 text "
                  "template; give the text as a string",
                  where);
    TESSERA_CHECK(content->is_string(), "{}.content: must be a string, got {}", where, content->type_name());
    out.content = content->get<std::string>();
  } else {
    TESSERA_CHECK(out.role == "assistant" && !out.tool_calls.empty(),
                  "{}: the {} message has no content (null or absent content is accepted only on an "
                  "assistant message with tool_calls)",
                  where, out.role);
  }

  // transformers' _alias_reasoning_fields: the first non-null of these names becomes reasoning_content.
  for (const char* key : {"reasoning_content", "thinking", "reasoning"}) {
    if (const ojson* reasoning = field(m, key)) {
      TESSERA_CHECK(reasoning->is_string(), "{}.{}: must be a string, got {}", where, key, reasoning->type_name());
      out.reasoning_content = reasoning->get<std::string>();
      break;
    }
  }
  return out;
}

// What the template would drop without a word, refused instead. `context` prefixes the message ("" from
// render_chat, "WHERE: " from messages_from_json).
void check_message(const Message& m, size_t index, const std::string& context) {
  TESSERA_CHECK(known_role(m.role),
                "{}message {} has role '{}'; the Qwen3 chat template renders only system, user, assistant "
                "and tool messages",
                context, index, m.role);
  if (m.role == "assistant") return;
  TESSERA_CHECK(m.tool_calls.empty(),
                "{}message {} ({}) has tool_calls; the Qwen3 chat template renders tool calls only on "
                "assistant messages",
                context, index, m.role);
  TESSERA_CHECK(!m.reasoning_content || m.reasoning_content->empty(),
                "{}message {} ({}) has reasoning; the Qwen3 chat template renders reasoning only on "
                "assistant messages",
                context, index, m.role);
}

std::vector<ojson> parse_tools(const std::string& tools_json) {
  std::vector<ojson> tools;
  if (tools_json.empty()) return tools;
  const ojson parsed = parse_json_for_python(tools_json, "chat options: tools_json");
  TESSERA_CHECK(parsed.is_array(), "chat options: tools_json must be a JSON array of tool schemas, got {}",
                parsed.type_name());
  for (size_t i = 0; i < parsed.size(); ++i) {
    TESSERA_CHECK(parsed[i].is_object(), "chat options: tools_json[{}] must be an object (a tool schema), got {}",
                  i, parsed[i].type_name());
    tools.push_back(parsed[i]);
  }
  return tools;
}

}  // namespace

std::vector<Message> messages_from_json(const nlohmann::ordered_json& messages, const std::string& where) {
  TESSERA_CHECK(messages.is_array(), "{}: messages must be an array, got {}", where, messages.type_name());
  TESSERA_CHECK(!messages.empty(), "{}: the conversation has no messages", where);
  std::vector<Message> out;
  out.reserve(messages.size());
  for (size_t i = 0; i < messages.size(); ++i) {
    out.push_back(message_from_json(messages[i], where + ": messages[" + std::to_string(i) + "]"));
    check_message(out.back(), i, where + ": ");
  }
  return out;
}

std::vector<Message> messages_from_json(const nlohmann::json& messages, const std::string& where) {
  return messages_from_json(nlohmann::ordered_json(messages), where);
}

RenderedChat render_chat(const std::vector<Message>& messages, const ChatOptions& options) {
  TESSERA_CHECK(!messages.empty(), "the conversation has no messages");
  for (size_t i = 0; i < messages.size(); ++i) check_message(messages[i], i, "");
  const std::vector<ojson> tools = parse_tools(options.tools_json);

  RenderedChat out;
  std::string& text = out.text;
  const bool system_first = messages.front().role == "system";

  // Opening: the first system message, and the tools block when there are tools.
  if (!tools.empty()) {
    text += "<|im_start|>system\n";
    if (system_first) {
      text += messages.front().content;
      text += "\n\n";
    }
    text +=
        "# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided "
        "with function signatures within <tools></tools> XML tags:\n<tools>";
    for (const ojson& tool : tools) {
      text += '\n';
      text += python_json_dumps(tool);
    }
    text +=
        "\n</tools>\n\nFor each function call, return a json object with function name and arguments within "
        "<tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": "
        "<args-json-object>}\n</tool_call><|im_end|>\n";
  } else if (system_first) {
    text += "<|im_start|>system\n";
    text += messages.front().content;
    text += "<|im_end|>\n";
  }

  // ns.last_query_index: the last user message that is not a tool response, else the last index.
  size_t last_query = messages.size() - 1;
  for (size_t i = messages.size(); i-- > 0;) {
    if (messages[i].role == "user" && !is_tool_response(messages[i].content)) {
      last_query = i;
      break;
    }
  }

  for (size_t i = 0; i < messages.size(); ++i) {
    const Message& m = messages[i];
    const bool last = i + 1 == messages.size();
    if (m.role == "user" || (m.role == "system" && i != 0)) {
      text += kImStart;
      text += m.role;
      text += '\n';
      text += m.content;
      text += kImEnd;
      text += '\n';
    } else if (m.role == "assistant") {
      std::string_view content = m.content;
      std::string_view reasoning;
      if (m.reasoning_content) {
        reasoning = *m.reasoning_content;
      } else if (const size_t close = content.find("</think>"); close != std::string_view::npos) {
        // content.split('</think>')[0].rstrip('\n').split('<think>')[-1].lstrip('\n')
        std::string_view before = rstrip_newlines(content.substr(0, close));
        if (const size_t open = before.rfind("<think>"); open != std::string_view::npos) {
          before = before.substr(open + std::string_view("<think>").size());
        }
        reasoning = lstrip_newlines(before);
        // content.split('</think>')[-1].lstrip('\n')
        content = lstrip_newlines(content.substr(content.rfind("</think>") + std::string_view("</think>").size()));
      }
      text += "<|im_start|>assistant\n";
      const size_t body_start = text.size();
      if (i > last_query && (last || !reasoning.empty())) {
        text += "<think>\n";
        text += strip_newlines(reasoning);
        text += "\n</think>\n\n";
        text += lstrip_newlines(content);
      } else {
        text += content;
      }
      for (size_t k = 0; k < m.tool_calls.size(); ++k) {
        // `(loop.first and content) or (not loop.first)`: tested on content before its lstrip above.
        if (k > 0 || !content.empty()) text += '\n';
        text += "<tool_call>\n{\"name\": \"";
        text += m.tool_calls[k].name;
        text += "\", \"arguments\": ";
        text += m.tool_calls[k].arguments_json;
        text += "}\n</tool_call>";
      }
      text += kImEnd;
      out.trainable.emplace_back(body_start, text.size());
      text += '\n';
    } else if (m.role == "tool") {
      if (i == 0 || messages[i - 1].role != "tool") text += "<|im_start|>user";
      text += "\n<tool_response>\n";
      text += m.content;
      text += "\n</tool_response>";
      if (last || messages[i + 1].role != "tool") {
        text += kImEnd;
        text += '\n';
      }
    }
  }

  if (options.add_generation_prompt) {
    text += "<|im_start|>assistant\n";
    if (!options.enable_thinking) text += "<think>\n\n</think>\n\n";
  }
  return out;
}

}  // namespace tessera::data
