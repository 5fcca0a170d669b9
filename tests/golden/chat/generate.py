#!/usr/bin/env python3
"""Golden conversations for tessera's Qwen3 ChatML chat template (src/data/chat_template*.cpp).

For every conversation below, Hugging Face transformers renders the chat with the Jinja template of the
Qwen3 tokenizer_config.json (`apply_chat_template(tokenize=False)`) and tokenizes it
(`apply_chat_template(tokenize=True)`); this script records both, plus an assistant-label mask that it
computes itself from the rendered string (transformers' own `return_assistant_tokens_mask` needs
`{% generation %}` tags, which the Qwen3 template does not have).

    /tmp/gvenv/bin/python tests/golden/chat/generate.py [--tokenizer DIR]

Writes conversations.json next to this script (deterministic: no clock, no randomness). Developers run it;
CI never does. Versions used: see requirements in the output's "generator" block.

The label rule (the same rule the C++ header documents, computed here independently of the C++ code):
  * Each assistant message rendered as `<|im_start|>assistant\n` BODY `<|im_end|>\n` contributes the byte
    span BODY + `<|im_end|>`: its think block (when the template renders one), its content, its tool calls
    and the closing `<|im_end|>`. Not the `<|im_start|>assistant\n` header, not the `\n` after `<|im_end|>`.
  * The generation prompt (add_generation_prompt) has no `<|im_end|>` and carries no labels, nor do system,
    user and tool turns.
  * A token is labelled when its byte range overlaps a span (transformers' `return_assistant_tokens_mask`
    rule: "mask every token overlapping a span"). Token ranges come from the tokenizer's offset mapping,
    cross-checked against the byte lengths of the tokens themselves.
The spans are found by scanning the rendered string for `<|im_start|>assistant\n` ... the next
`<|im_end|>`, so no conversation below may write those literals inside a message.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_TOKENIZER = os.path.normpath(os.path.join(HERE, "..", "..", "..", "..", "shared", "data",
                                                  "qwen3-tokenizer"))
OUTPUT = os.path.join(HERE, "conversations.json")

HEADER = "<|im_start|>assistant\n"
END = "<|im_end|>"

# ----------------------------------------------------------------------------------------------------------
# Shared pieces.

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name, e.g. \"Z\u00fcrich\""},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
        },
    },
}

SEARCH_TOOL = {
    "type": "function",
    "function": {
        "name": "search",
        "description": "Search the web.\nReturns at most `limit` results.",
        # Keys deliberately out of alphabetical order: json.dumps keeps insertion order.
        "parameters": {
            "type": "object",
            "required": ["query"],
            "properties": {
                "query": {"type": "string"},
                "limit": {"type": "integer", "default": 10, "minimum": 1, "maximum": 100},
                "threshold": {"type": "number", "default": 0.5, "examples": [1.0, 1e-05, 1e+16, -0.0, 2.5e-7]},
                "strict": {"type": "boolean", "default": False},
                "lang": {"type": ["string", "null"], "default": None},
            },
        },
    },
}

# Escapes and non-ASCII in a tool schema: json.dumps(ensure_ascii=False) keeps UTF-8 and escapes
# quotes, backslashes and control characters.
ODD_TOOL = {
    "name": "echo_\u00e9\u4e2d",
    "description": "Quotes \" backslash \\ tab \t newline \n bell \u0007 del \u007f emoji \U0001F600",
    "parameters": {"type": "object", "properties": {}},
}


def call(name, arguments, nested=True):
    """An OpenAI-style tool call; `arguments` may be a dict (rendered with tojson) or a string (verbatim)."""
    if nested:
        return {"type": "function", "id": "call_" + name, "function": {"name": name, "arguments": arguments}}
    return {"name": name, "arguments": arguments}


def conversations():
    c = []

    def add(name, messages, tools=None, add_generation_prompt=False, enable_thinking=True, note=""):
        c.append(dict(name=name, note=note, messages=messages, tools=tools,
                      add_generation_prompt=add_generation_prompt, enable_thinking=enable_thinking))

    add("single_user", [{"role": "user", "content": "Hello!"}])
    add("user_generation_prompt", [{"role": "user", "content": "What is 2+2?"}], add_generation_prompt=True,
        note="thinking on: the prompt is just the assistant header")
    add("system_user_no_thinking_prompt",
        [{"role": "system", "content": "You are a helpful assistant."},
         {"role": "user", "content": "Give me a short answer."}],
        add_generation_prompt=True, enable_thinking=False,
        note="enable_thinking=False writes an empty think block after the generation header")
    add("system_user_assistant",
        [{"role": "system", "content": "You are terse."},
         {"role": "user", "content": "Capital of France?"},
         {"role": "assistant", "content": "Paris."}],
        note="the final assistant turn after the last query always gets a (here empty) think block")
    add("multi_turn_no_reasoning",
        [{"role": "user", "content": "Hi"},
         {"role": "assistant", "content": "Hello! How can I help?"},
         {"role": "user", "content": "Tell me a joke."},
         {"role": "assistant", "content": "Why did the chicken cross the road?"},
         {"role": "user", "content": "Why?"},
         {"role": "assistant", "content": "To get to the other side."}],
        note="earlier assistant turns have no think block")
    add("reasoning_earlier_and_last",
        [{"role": "system", "content": "Think step by step."},
         {"role": "user", "content": "What is 17*3?"},
         {"role": "assistant", "content": "51", "reasoning_content": "17*3 = 51."},
         {"role": "user", "content": "And 51+9?"},
         {"role": "assistant", "content": "60", "reasoning_content": "\n51+9 = 60.\n\n"}],
        note="reasoning before the last query is dropped; the last turn keeps it, stripped of newlines")
    add("reasoning_then_user_prompt",
        [{"role": "user", "content": "Name a prime."},
         {"role": "assistant", "content": "7", "reasoning_content": "Any prime works."},
         {"role": "user", "content": "Another one?"}],
        add_generation_prompt=True,
        note="the last message is a query: every reasoning is dropped")
    add("inline_think_last",
        [{"role": "user", "content": "Is 9 prime?"},
         {"role": "assistant", "content": "<think>\n9 = 3*3.\n</think>\n\nNo, 9 = 3 \u00d7 3."}],
        note="reasoning written inline in content is split at </think> and re-rendered")
    add("inline_think_earlier",
        [{"role": "user", "content": "Q1"},
         {"role": "assistant", "content": "<think>secret</think>\n\n\nA1"},
         {"role": "user", "content": "Q2"},
         {"role": "assistant", "content": "A2"}],
        note="an earlier turn's inline think is removed, its content lstripped of newlines")
    add("inline_think_nested_markers",
        [{"role": "user", "content": "tricky"},
         {"role": "assistant", "content": "pre<think>one<think>\n\ntwo\n</think>mid</think>\n\nfinal</think>\nend"}],
        note="reasoning = before the first </think>, after the last <think> in it; content = after the last </think>")
    add("empty_reasoning_keeps_inline_think",
        [{"role": "user", "content": "hi"},
         {"role": "assistant", "content": "<think>kept</think>as is", "reasoning_content": ""}],
        note="reasoning_content present but empty: content is not split")
    add("thinking_alias",
        [{"role": "user", "content": "hi"},
         {"role": "assistant", "content": "hello", "thinking": "greet back"}],
        note="transformers aliases `thinking`/`reasoning` to reasoning_content")
    add("consecutive_assistants_after_query",
        [{"role": "user", "content": "Count."},
         {"role": "assistant", "content": "one", "reasoning_content": "start"},
         {"role": "assistant", "content": "two"},
         {"role": "assistant", "content": "three", "reasoning_content": "\n"}],
        note="non-last turns after the query get a think block only when their reasoning is non-empty")
    add("tools_with_system",
        [{"role": "system", "content": "You can check the weather."},
         {"role": "user", "content": "Weather in Z\u00fcrich?"},
         {"role": "assistant", "content": "", "tool_calls": [call("get_weather", {"city": "Z\u00fcrich", "unit": "celsius"})]},
         {"role": "tool", "content": "{\"temp\": 21, \"sky\": \"clear\"}"},
         {"role": "assistant", "content": "It is 21 \u00b0C and clear in Z\u00fcrich."}],
        tools=[WEATHER_TOOL],
        note="system content is prefixed to the tools block; arguments dict rendered with tojson")
    add("tools_without_system",
        [{"role": "user", "content": "Search for tessera."},
         {"role": "assistant", "content": "Searching.", "reasoning_content": "Use the search tool.",
          "tool_calls": [call("search", "{\"query\":\"tessera\",\"limit\":3}")]},
         {"role": "tool", "content": "[\"tessera (mosaic)\", \"tessera runtime\"]"},
         {"role": "assistant", "content": "Found two results.", "reasoning_content": "Summarise."}],
        tools=[WEATHER_TOOL, SEARCH_TOOL],
        note="string arguments are rendered verbatim; reasoning kept on both turns after the last query")
    add("parallel_calls_and_merged_tool_results",
        [{"role": "system", "content": "Be precise."},
         {"role": "user", "content": "Weather in Oslo and Lima, and search news."},
         {"role": "assistant", "content": "Let me check.",
          "tool_calls": [call("get_weather", {"city": "Oslo"}),
                         call("get_weather", "{\"city\": \"Lima\"}", nested=False),
                         call("search", {"query": "news", "limit": 2, "threshold": 0.25, "strict": True, "lang": None})]},
         {"role": "tool", "content": "Oslo: 3\u00b0C"},
         {"role": "tool", "content": "Lima: 19\u00b0C"},
         {"role": "tool", "content": "news: none"},
         {"role": "assistant", "content": "Oslo 3 \u00b0C, Lima 19 \u00b0C; no news."}],
        tools=[WEATHER_TOOL, SEARCH_TOOL],
        note="three consecutive tool messages merge into one user turn; flat and nested call forms")
    add("multi_step_tools_reasoning",
        [{"role": "user", "content": "Plan a trip: check weather then search hotels."},
         {"role": "assistant", "content": "", "reasoning_content": "First the weather.",
          "tool_calls": [call("get_weather", {"city": "Rome"})]},
         {"role": "tool", "content": "sunny"},
         {"role": "assistant", "content": "\n", "reasoning_content": "Now hotels.",
          "tool_calls": [call("search", {"query": "hotels in Rome"})]},
         {"role": "tool", "content": "Hotel A, Hotel B"},
         {"role": "assistant", "content": "Sunny; try Hotel A.", "reasoning_content": "Done."}],
        tools=[WEATHER_TOOL, SEARCH_TOOL],
        note="content \"\\n\" is truthy: a newline precedes <tool_call> although the content renders empty")
    add("tool_response_user_message_not_a_query",
        [{"role": "user", "content": "Look it up."},
         {"role": "assistant", "content": "", "reasoning_content": "call it", "tool_calls": [call("search", {"query": "x"})]},
         {"role": "user", "content": "<tool_response>\nresult x\n</tool_response>"},
         {"role": "assistant", "content": "It is x.", "reasoning_content": "got it"}],
        tools=[SEARCH_TOOL],
        note="a user message wrapped in <tool_response> does not move the last-query index")
    add("agent_prompt_after_tool_no_thinking",
        [{"role": "user", "content": "Weather in Kyiv?"},
         {"role": "assistant", "content": "", "tool_calls": [call("get_weather", {"city": "Kyiv"})]},
         {"role": "tool", "content": "rain"}],
        tools=[WEATHER_TOOL], add_generation_prompt=True, enable_thinking=False)
    add("no_user_message",
        [{"role": "system", "content": "Monologue."},
         {"role": "assistant", "content": "I talk alone.", "reasoning_content": "ignored"}],
        note="no query at all: last_query_index stays at the end, so no think block anywhere")
    add("assistant_only", [{"role": "assistant", "content": "Just me."}])
    add("system_not_first",
        [{"role": "user", "content": "Hi"},
         {"role": "assistant", "content": "Hello"},
         {"role": "system", "content": "From now on answer in French."},
         {"role": "user", "content": "How are you?"},
         {"role": "assistant", "content": "Tr\u00e8s bien."}],
        note="a system message after the first is rendered as an ordinary turn")
    add("unicode",
        [{"role": "system", "content": "\u4f60\u662f\u4e00\u4e2a\u6709\u7528\u7684\u52a9\u624b\u3002"},
         {"role": "user", "content": "\u00bfQu\u00e9 tal? \u041f\u0440\u0438\u0432\u0435\u0442! \u0645\u0631\u062d\u0628\u0627 "
                                     "\U0001F468\u200D\U0001F469\u200D\U0001F467 \U0001F1FA\U0001F1E6 e\u0301 n\u0303"},
         {"role": "assistant", "content": "\u3053\u3093\u306b\u3061\u306f\U0001F600 cafe\u0301 \u00c5\u212b",
          "reasoning_content": "\ud55c\uad6d\uc5b4 \u0939\u093f\u0928\u094d\u0926\u0940"}],
        note="decomposed characters are NFC-normalised by the tokenizer, so token bytes differ from text bytes")
    add("empty_contents",
        [{"role": "system", "content": ""},
         {"role": "user", "content": ""},
         {"role": "assistant", "content": ""},
         {"role": "user", "content": ""},
         {"role": "assistant", "content": ""}])
    add("leading_newlines_straddle",
        [{"role": "user", "content": "a"},
         {"role": "assistant", "content": "\n\nindented answer"},
         {"role": "user", "content": "b"},
         {"role": "assistant", "content": " \n spaced"},
         {"role": "user", "content": "c"},
         {"role": "assistant", "content": "done"}],
        note="content starting with newlines merges with the header's \\n into one token that straddles the "
             "label boundary; it is labelled (it overlaps the span)")
    add("windows_newlines_and_whitespace",
        [{"role": "user", "content": "line1\r\nline2\r\n\r\n  trailing  "},
         {"role": "assistant", "content": "ok\r\n\tindented\t\n"}])
    add("special_token_text_in_user",
        [{"role": "user", "content": "Explain <|endoftext|> and <tool_call> and <think> tags."},
         {"role": "assistant", "content": "They are control tokens."}],
        note="special-token text inside content is tokenized as the special token (sanitize_control_tokens=False)")
    add("odd_tool_schema",
        [{"role": "user", "content": "echo"},
         {"role": "assistant", "content": "", "tool_calls": [call("echo_\u00e9\u4e2d", {"text": "a\"b\\c\nd\u00e9", "n": -12, "x": 3.14159, "big": 1e300, "tiny": 5e-324, "list": [1, [2, {}], []]})]},
         {"role": "tool", "content": ""},
         {"role": "assistant", "content": "echoed"}],
        tools=[ODD_TOOL],
        note="tojson of unicode, escapes, floats, empty containers; flat tool schema (no `function` wrapper)")
    add("thinking_flag_without_prompt",
        [{"role": "user", "content": "x"},
         {"role": "assistant", "content": "y", "reasoning_content": "z"}],
        enable_thinking=False,
        note="enable_thinking only affects the generation prompt")
    add("long_multi_turn",
        [{"role": "system", "content": "You are a patient tutor."}]
        + [m for i in range(1, 7) for m in (
            {"role": "user", "content": f"Question {i}: what is {i} squared?"},
            {"role": "assistant", "content": f"{i} squared is {i * i}.",
             **({"reasoning_content": f"{i}*{i}={i * i}"} if i % 2 == 0 else {})})],
        note="twelve turns, reasoning on even turns; only the last survives")
    add("empty_think_rules_with_prompt",
        [{"role": "user", "content": "<think>not an assistant</think>user text"},
         {"role": "assistant", "content": "reply"},
         {"role": "user", "content": "more"}],
        add_generation_prompt=True, enable_thinking=False,
        note="</think> in a user message is left alone")
    return c


# ----------------------------------------------------------------------------------------------------------
# The reference label mask.

def assistant_spans(text: str):
    """Character spans [start, end) of assistant bodies: after the header, through <|im_end|>."""
    spans = []
    pos = 0
    while True:
        h = text.find(HEADER, pos)
        if h < 0:
            return spans
        start = h + len(HEADER)
        e = text.find(END, start)
        if e < 0:          # the generation prompt: no body yet
            return spans
        nxt = text.find(HEADER, start)
        assert nxt < 0 or nxt > e, "an assistant header inside an assistant body"
        spans.append((start, e + len(END)))
        pos = e + len(END)


def byte_offsets(text: str):
    """byte_offsets[i] = UTF-8 length of text[:i]."""
    out = [0]
    for ch in text:
        out.append(out[-1] + len(ch.encode("utf-8")))
    return out


def bytes_to_unicode():
    """GPT-2's byte-level alphabet: printable Latin-1 bytes stand for themselves, the rest move to U+0100+."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def token_bytes(tok, ids):
    """The bytes each token stands for (what the tokenizer's decoder would concatenate)."""
    byte_decoder = {v: k for k, v in bytes_to_unicode().items()}
    added = {i for i in tok.added_tokens_decoder}
    out = []
    for i, piece in zip(ids, tok.convert_ids_to_tokens(ids)):
        out.append(piece.encode("utf-8") if i in added else bytes(byte_decoder[ch] for ch in piece))
    return out


def reference_labels(tok, text, ids):
    spans_chars = assistant_spans(text)
    boff = byte_offsets(text)
    spans = [(boff[s], boff[e]) for s, e in spans_chars]
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    assert enc["input_ids"] == ids, "tokenizer(text) differs from apply_chat_template(tokenize=True)"
    ranges = [(boff[s], boff[e]) for s, e in enc["offset_mapping"]]
    # Cross-check the offsets against the tokens' own bytes when normalisation left the text alone.
    pieces = token_bytes(tok, ids)
    if b"".join(pieces) == text.encode("utf-8"):
        pos = 0
        for (s, e), p in zip(ranges, pieces):
            # A token holding part of a multi-byte character reports the whole character; compare ends only
            # where the token ends on a character boundary.
            assert s <= pos and pos + len(p) <= e or (s, e) == (pos, pos + len(p)), (s, e, pos, p)
            pos += len(p)
    labels, straddling = [], 0
    for s, e in ranges:
        hit = [sp for sp in spans if s < sp[1] and sp[0] < e]
        labels.append(1 if hit else 0)
        if hit and not any(sp[0] <= s and e <= sp[1] for sp in hit):
            straddling += 1
    return spans, labels, straddling


# ----------------------------------------------------------------------------------------------------------

def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokenizer", default=DEFAULT_TOKENIZER)
    args = parser.parse_args()

    import jinja2
    import tokenizers
    import transformers
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(args.tokenizer)
    with open(os.path.join(args.tokenizer, "tokenizer_config.json"), "rb") as f:
        template = json.loads(f.read())["chat_template"]
    with open(os.path.join(args.tokenizer, "tokenizer.json"), "rb") as f:
        tokenizer_sha = hashlib.sha256(f.read()).hexdigest()

    cases = []
    names = set()
    for conv in conversations():
        assert conv["name"] not in names, conv["name"]
        names.add(conv["name"])
        kwargs = dict(tools=conv["tools"], add_generation_prompt=conv["add_generation_prompt"])
        if not conv["enable_thinking"]:
            kwargs["enable_thinking"] = False
        text = tok.apply_chat_template(conv["messages"], tokenize=False, **kwargs)
        ids = tok.apply_chat_template(conv["messages"], tokenize=True, return_dict=False, **kwargs)
        spans, labels, straddling = reference_labels(tok, text, ids)
        case = {k: conv[k] for k in ("name", "note", "messages", "tools", "add_generation_prompt",
                                     "enable_thinking")}
        case.update(text=text, ids=ids, labels="".join(map(str, labels)), trainable=[list(s) for s in spans],
                    straddling_tokens=straddling)
        cases.append(case)
        print(f"{conv['name']:42s} {len(text.encode()):5d} bytes {len(ids):4d} tokens "
              f"{sum(labels):4d} labelled {straddling} straddling", file=sys.stderr)

    out = {
        "generator": {
            "script": "tests/golden/chat/generate.py",
            "python": sys.version.split()[0],
            "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__,
            "jinja2": jinja2.__version__,
            "tokenizer_json_sha256": tokenizer_sha,
            "chat_template_sha256": hashlib.sha256(template.encode("utf-8")).hexdigest(),
        },
        "label_rule": "a token is labelled when its byte range overlaps an assistant span: the bytes after "
                      "'<|im_start|>assistant\\n' through the next '<|im_end|>' inclusive",
        "cases": cases,
    }
    # One case per line keeps diffs readable; ASCII escapes keep invisible characters visible.
    with open(OUTPUT, "w", encoding="ascii") as f:
        f.write("{\n")
        for key in ("generator", "label_rule"):
            f.write(f" {json.dumps(key)}: {json.dumps(out[key], ensure_ascii=True)},\n")
        f.write(' "cases": [\n')
        for i, case in enumerate(cases):
            f.write("  " + json.dumps(case, ensure_ascii=True) + (",\n" if i + 1 < len(cases) else "\n"))
        f.write(" ]\n}\n")
    print(f"wrote {OUTPUT}: {len(cases)} conversations", file=sys.stderr)


if __name__ == "__main__":
    main()
