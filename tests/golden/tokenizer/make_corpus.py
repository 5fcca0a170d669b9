#!/usr/bin/env python3
"""Writes the golden corpus for tessera's byte-level BPE tokenizer and the ids Hugging Face `tokenizers`
gives for it, so the C++ tests compare against the reference without Python.

    pip install tokenizers          # the reference; nothing else is downloaded
    python3 tests/golden/tokenizer/make_corpus.py [--tokenizer DIR]

Outputs (next to this script, gzip with a zero mtime so reruns are byte-identical):
  corpus.jsonl.gz   one document per line: {"kind", "text"} for valid UTF-8, {"kind", "hex"} for raw bytes
                    that are not; "nfc" is added when HF's NFC changes a valid document (for round trips).
  qwen3_ids.jsonl.gz  per document: {"doc", "ids", "ids_plain"}: HF ids with special tokens recognised and
                    with `encode_special_tokens = True` (special tokens encoded as plain text).
  tiny/*.json       small tokenizers derived from the Qwen3 file (truncated merges) that exercise the
                    configurations Qwen3 does not use: Llama-3 style, GPT-2 style, added-token flags,
                    other split behaviours, a template post-processor.
  tiny_ids.jsonl.gz per (tiny tokenizer, document): ids, template ids, decodes.

The generator is deterministic: fixed seeds, no clock, no network. Documents that are not valid UTF-8 are
decoded the way Python does (`errors="replace"`) before they reach HF, which is the contract tessera's
`encode(bytes)` implements.
"""
import argparse
import copy
import gzip
import json
import os
import random
import unicodedata

from tokenizers import Tokenizer, normalizers

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_TOKENIZER = os.path.normpath(os.path.join(HERE, "..", "..", "..", "..", "shared", "data",
                                                  "qwen3-tokenizer"))

# ----------------------------------------------------------------------------------------------------------
# Text sources. Everything is written here or assembled from these pieces with seeded random choices.

ENGLISH_PARAGRAPHS = [
    "The quick brown fox jumps over the lazy dog. It's a sentence that uses every letter, and it's been "
    "typed by generations of students who weren't told why.",
    "I'd have gone, but they'd already left; we'll catch up tomorrow. You're right that she's late, "
    "though I'M NOT SURE he'LL mind. DON'T worry, it'S fine.",
    "In 1969, Apollo 11 landed on the Moon. Neil Armstrong said: \"That's one small step for [a] man, "
    "one giant leap for mankind.\" The mission lasted 8 days, 3 hours, 18 minutes and 35 seconds.",
    "Training large language models needs three things: data, compute and patience. Ours doesn't "
    "need a fourth -- luck -- if the checkpoints are written atomically.",
    "Mr. O'Neill's dog's bone wasn't where the dogs' owners'd left it. Y'all'd've known.",
    "She said, \u201cIt\u2019s over,\u201d and he replied \u2018we\u2019ll see\u2019 \u2014 neither "
    "was right\u2026",
    "Rock 'n' roll, 'tis the season, 'twas the night; ma'am, o'clock, fo'c'sle, ne'er-do-well.",
    "E-mail me at someone@example.com or visit https://example.org/path?q=1&r=two#frag before 5 p.m.",
]

ENGLISH_WORDS = (
    "the of and to in is was for that with as on by at from it this be are or an which have not "
    "has but were had their they one all been its also more can first other new after some would "
    "when there two time into only about may over such most these years many then what out who "
    "model training data token gradient loss batch layer attention weight optimizer learning rate "
    "parallel tensor pipeline expert checkpoint cluster node rank memory bandwidth kernel launch "
    "river mountain city village harbour garden window morning evening winter summer ancient modern "
    "quickly slowly carefully suddenly quietly loudly happily sadly really almost never always "
    "although because however therefore meanwhile otherwise nevertheless furthermore consequently "
    "Alice Bob Charlie Paris London Tokyo Beijing Seoul Berlin Madrid Cairo Lagos Lima Sydney "
    "antidisestablishmentarianism floccinaucinihilipilification supercalifragilisticexpialidocious "
    "café naïve résumé coöperate façade jalapeño piñata über Zürich São Paulo Kraków"
).split()

CONTRACTIONS = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'RE", "'VE", "'M", "'LL", "'D",
                "'Re", "'rE", "'Ve", "'Ll", "'lL", "\u2019s", "\u2019t", "'\u017f", "'x", "''s", "' s"]

CHINESE_SENTENCES = [
    "机器学习是人工智能的一个分支，它使计算机能够从数据中学习。",
    "今天天气很好，我们去公园散步吧！",
    "大型语言模型的训练需要大量的计算资源和高质量的数据。",
    "他说：“这个问题很复杂，需要仔细考虑。”",
    "北京、上海、广州和深圳是中国的一线城市。",
    "请在下午三点之前提交报告（包括附件）。",
    "龍門客棧的故事發生在明朝，繁體字與簡體字並存。",
    "我们用张量并行、流水线并行和数据并行来扩展训练规模。",
]
CHINESE_WORDS = ("我们 你们 他们 今天 明天 昨天 学习 工作 生活 时间 问题 方法 数据 模型 训练 计算 "
                 "系统 网络 中国 世界 城市 经济 发展 社会 文化 历史 科学 技术 研究 大学 学生 老师 "
                 "朋友 家庭 电脑 手机 语言 文字 音乐 电影 天气 春天 夏天 秋天 冬天 山 水 火 木 金 "
                 "土 日 月 星 风 雨 雪 花 草 树 鸟 鱼 马 牛 羊 猫 狗 的 了 是 在 有 和 就 不 人 都 "
                 "一 个 上 也 很 到 说 要 去 会 着 没有 看 好 自己 这 那 么 吗 呢 吧").split()
CHINESE_PUNCT = ["，", "。", "！", "？", "、", "：", "；", "“", "”", "（", "）", "《", "》", "……", "——"]

JAPANESE_SENTENCES = [
    "東京は日本の首都で、人口は約千四百万人です。",
    "私はラーメンが大好きです！毎日食べたいくらい。",
    "コンピューターサイエンスの研究者たちは、新しいアルゴリズムを開発しました。",
    "「おはようございます」と彼女は言った。",
    "ｶﾀｶﾅの半角文字とカタカナの全角文字、そして　全角スペース。",
]
JAPANESE_WORDS = ("わたし あなた これ それ あれ ここ そこ です ます でした ません ひと やま かわ "
                  "そら うみ はな とり コーヒー テレビ パソコン インターネット データ モデル "
                  "学習 計算 言語 日本 東京 大阪 京都 会社 学校 先生 学生 時間 今日 明日 "
                  "は が を に で と の へ から まで より").split()
KOREAN_SENTENCES = [
    "안녕하세요, 만나서 반갑습니다.",
    "한국어는 한글로 씁니다. 세종대왕이 만들었습니다!",
    "대규모 언어 모델을 훈련하려면 많은 GPU가 필요합니다.",
    "서울특별시는 대한민국의 수도입니다.",
]
KOREAN_WORDS = ("나 너 우리 그들 오늘 내일 어제 학교 회사 사람 시간 컴퓨터 데이터 모델 학습 "
                "언어 한국 서울 부산 음식 김치 사랑 친구 가족 이 가 은 는 을 를 에 에서 와 과 "
                "입니다 합니다 했습니다 있습니다 없습니다").split()

CODE_SNIPPETS = [
    # Python with 4-space indents
    "def {name}(xs: list[int], k: int = 3) -> int:\n    \"\"\"Return the k-th largest.\"\"\"\n"
    "    if not xs:\n        raise ValueError(f\"empty input: {{xs!r}}\")\n    return sorted(xs)[-k]\n\n\n"
    "class {cls}:\n    def __init__(self):\n        self._cache = {{}}  # type: dict[str, int]\n",
    # C++ with tabs
    "#include <vector>\n#include <cstdint>\n\nnamespace {ns} {{\n\ntemplate <typename T>\n"
    "T {name}(const std::vector<T>& v) {{\n\tT acc{{}};\n\tfor (size_t i = 0; i < v.size(); ++i) {{\n"
    "\t\tacc += v[i] * static_cast<T>(i);\n\t}}\n\treturn acc;\n}}\n\n}}  // namespace {ns}\n",
    # Rust
    "fn {name}(input: &str) -> Result<Vec<u32>, Box<dyn std::error::Error>> {{\n    let mut out = "
    "Vec::with_capacity(input.len());\n    for (i, ch) in input.char_indices() {{\n        if ch."
    "is_alphanumeric() {{ out.push(i as u32); }}\n    }}\n    Ok(out)\n}}\n",
    # JavaScript with CRLF
    "const {name} = async (url) => {{\r\n  const res = await fetch(url, {{ method: 'GET' }});\r\n"
    "  if (!res.ok) throw new Error(`HTTP ${{res.status}}`);\r\n  return res.json();\r\n}};\r\n",
    # Go with tabs
    "package main\n\nimport (\n\t\"fmt\"\n\t\"strings\"\n)\n\nfunc {name}(s string) string {{\n"
    "\treturn strings.ToUpper(s) + fmt.Sprintf(\"%d\", len(s))\n}}\n",
    # SQL
    "SELECT u.id, u.name, COUNT(o.id) AS n_orders\nFROM users u\nLEFT JOIN orders o ON o.user_id = u.id\n"
    "WHERE u.created_at >= '2024-01-01' AND u.name LIKE '%{name}%'\nGROUP BY u.id, u.name\n"
    "HAVING COUNT(o.id) > 3\nORDER BY n_orders DESC;\n",
    # HTML
    "<!DOCTYPE html>\n<html lang=\"en\">\n  <head><meta charset=\"utf-8\"><title>{cls}</title></head>\n"
    "  <body>\n    <div class=\"{name}\" data-x='1'>&lt;hello&gt; &amp; goodbye</div>\n  </body>\n</html>\n",
    # JSON
    "{{\n  \"{name}\": [1, 2.5, -3e10, true, null],\n  \"nested\": {{\"k\": \"v\\n\\t\\\"q\\\"\"}},\n"
    "  \"unicode\": \"\\u00e9\\ud83d\\ude00\"\n}}\n",
    # Shell
    "#!/usr/bin/env bash\nset -euo pipefail\nfor f in \"$@\"; do\n  if [[ -f \"$f\" ]]; then\n"
    "    echo \"${{f%.txt}}.bak\" >&2 && cp -- \"$f\" \"${{f}}.bak\"\n  fi\ndone\n",
    # YAML with trailing spaces
    "model:   \n  name: {name}\n  hidden_size: 4096   \n  layers:\n    - attn\n    - mlp\n"
    "optim: {{lr: 3.0e-4, betas: [0.9, 0.95]}}\n",
    # Makefile with tabs
    "{name}: {name}.o util.o\n\t$(CC) $(CFLAGS) -o $@ $^\n\n%.o: %.c\n\t$(CC) -c $< -o $@\n",
]

EMOJI = ["😀", "😂", "🥲", "❤️", "👍", "👍🏻", "👍🏼", "👍🏽", "👍🏾", "👍🏿", "👨‍👩‍👧‍👦",
         "👩‍💻", "🧑🏽‍🚀", "🏳️‍🌈", "🏴‍☠️", "👨🏿‍❤️‍💋‍👨🏻", "🇯🇵", "🇺🇸", "🇨🇳", "🇪🇺", "#️⃣",
         "1️⃣", "©️", "™", "🫠", "🫶🏾", "🦀", "🐍", "☕", "⌚", "🧬", "🏃‍♀️", "🏃🏻‍♂️‍➡️",
         "😶‍🌫️", "❤️‍🔥", "🐕‍🦺", "👁️‍🗨️", "🧔‍♀️", "🫨", "🩷", "🪿"]

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
            "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
            "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>", "<tool_call>",
            "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>",
            "<|repo_name|>", "<|file_sep|>", "<tool_response>", "</tool_response>", "<think>",
            "</think>"]
NEAR_SPECIALS = ["<|im_start", "im_start|>", "<|im_end|", "<|endoftext", "<think", "think>", "</ think>",
                 "<THINK>", "<|IM_START|>", "<||>", "<|>", "<<|im_start|>>", "<|im_start|><|im_end|>",
                 "<tool_call></tool_call>", "< think >"]

WHITESPACE = [" ", "  ", "   ", "    ", "\t", "\t\t", "\n", "\n\n", "\n\n\n", "\r\n", "\r\n\r\n", "\r",
              " \n", "\n ", " \t \n", "\u00a0", "\u3000", "\u2028", "\u2029", "\x0b", "\x0c", "\x85",
              "\u2003", "\u200b", "\u202f", "\u180e", "\ufeff", " " * 17, "\n" * 25, "\t" * 9]

COMBINING = ["\u0300", "\u0301", "\u0302", "\u0303", "\u0308", "\u030a", "\u0323", "\u0327", "\u0328",
             "\u031b", "\u0316", "\u0334", "\u0345", "\u05b0", "\u093c", "\u094d", "\u0e48", "\u3099",
             "\u309a", "\u20dd", "\u0340", "\u0344"]

# Marks whose canonical combining class the Unicode 9 tables of HF's NFC do not know (see
# src/data/tokenizer_unicode_tables.cpp): they must behave as inert starters.
YOUNG_MARKS = [0x7fd, 0x898, 0x8ca, 0x8d3, 0x9fe, 0xc3c, 0xd3b, 0xd3c, 0xeba, 0x1715, 0x1abf, 0x1ace,
               0x1df6, 0x1dfa, 0xa82c, 0x10d24, 0x10eab, 0x10efd, 0x10f46, 0x10f82, 0x11070, 0x1133b,
               0x1145e, 0x11839, 0x1193d, 0x11943, 0x119e0, 0x11a34, 0x11a47, 0x11a99, 0x11d42, 0x11d97,
               0x11f41, 0x16ff0, 0x16ff1, 0x1e08f, 0x1e130, 0x1e2ae, 0x1e2ec, 0x1e4ec]


def sentence(rng, words, lo=4, hi=18):
    n = rng.randint(lo, hi)
    ws = [rng.choice(words) for _ in range(n)]
    if rng.random() < 0.3:
        i = rng.randrange(n)
        ws[i] = ws[i] + rng.choice(CONTRACTIONS)
    s = " ".join(ws)
    s = s[0].upper() + s[1:]
    if rng.random() < 0.1:
        s = s.upper()
    return s + rng.choice([".", ".", ".", "!", "?", ";", ",", ":", "..."])


def english_doc(rng):
    parts = []
    for _ in range(rng.randint(1, 12)):
        if rng.random() < 0.25:
            parts.append(rng.choice(ENGLISH_PARAGRAPHS))
        else:
            parts.append(" ".join(sentence(rng, ENGLISH_WORDS) for _ in range(rng.randint(1, 6))))
    return rng.choice(["\n\n", "\n", " "]).join(parts)


def cjk_doc(rng, sentences, words, punct, joiner):
    out = []
    for _ in range(rng.randint(2, 40)):
        if rng.random() < 0.3:
            out.append(rng.choice(sentences))
        else:
            out.append(joiner.join(rng.choice(words) for _ in range(rng.randint(3, 15))) + rng.choice(punct))
        if rng.random() < 0.15:
            out.append(rng.choice([" ", "\n", " GPU ", " 2024年", " ABC ", "（注）"]))
    return "".join(out)


def code_doc(rng):
    names = ["parse_tokens", "getValue", "compute_loss", "MyClass", "x", "__init__", "fooBar2",
             "HTTPServer", "data_loader", "i", "shard_id"]
    out = []
    for _ in range(rng.randint(1, 5)):
        snippet = rng.choice(CODE_SNIPPETS).format(name=rng.choice(names), cls=rng.choice(names),
                                                   ns=rng.choice(["tessera", "detail", "ns2"]))
        r = rng.random()
        if r < 0.2:
            snippet = snippet.replace("\n", "\r\n")
        elif r < 0.35:
            snippet = snippet.replace("    ", "\t")
        elif r < 0.45:
            snippet = snippet.replace("\n", "  \n")
        out.append(snippet)
    return "\n".join(out)


def emoji_doc(rng):
    out = []
    for _ in range(rng.randint(5, 80)):
        r = rng.random()
        if r < 0.5:
            out.append(rng.choice(EMOJI))
        elif r < 0.8:
            out.append(" " + rng.choice(ENGLISH_WORDS) + " ")
        else:
            out.append(rng.choice(EMOJI) * rng.randint(2, 5))
    return "".join(out)


def number_doc(rng):
    out = []
    for _ in range(rng.randint(5, 60)):
        r = rng.random()
        n = rng.randint(1, 40)
        if r < 0.4:
            out.append("".join(rng.choice("0123456789") for _ in range(n)))
        elif r < 0.5:
            out.append(f"{rng.randint(0, 10**6):,}")
        elif r < 0.6:
            out.append(f"{rng.random() * 10 ** rng.randint(-5, 9):.{rng.randint(0, 8)}f}")
        elif r < 0.65:
            out.append(f"{rng.random():e}")
        elif r < 0.7:
            out.append(f"+1 ({rng.randint(100, 999)}) {rng.randint(100, 999)}-{rng.randint(1000, 9999)}")
        elif r < 0.75:
            out.append(f"{rng.randint(1900, 2100)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}")
        elif r < 0.8:
            out.append("".join(rng.choice("٠١٢٣٤٥٦٧٨٩") for _ in range(n % 7 + 1)))
        elif r < 0.85:
            out.append("".join(rng.choice("０１２３４５６７８９") for _ in range(n % 7 + 1)))
        elif r < 0.9:
            out.append(rng.choice(["½", "¼", "²", "³", "Ⅷ", "ⅻ", "①", "⑳", "𝟘𝟙", "१२३", "໑໒", "三千"]))
        else:
            out.append(f"v{rng.randint(0, 9)}.{rng.randint(0, 99)}.{rng.randint(0, 999)}")
        out.append(rng.choice([" ", ", ", "\n", "", "x", " = ", "%", "$"]))
    return "".join(out)


def whitespace_doc(rng):
    out = []
    for _ in range(rng.randint(5, 60)):
        out.append(rng.choice(WHITESPACE) * rng.randint(1, 4))
        if rng.random() < 0.7:
            out.append(rng.choice(ENGLISH_WORDS + ["中文", "!", "...", "1", "'s", "😀"]))
    return "".join(out)


def special_doc(rng):
    out = []
    if rng.random() < 0.5:
        for _ in range(rng.randint(1, 5)):
            role = rng.choice(["system", "user", "assistant", "tool"])
            body = sentence(rng, ENGLISH_WORDS)
            if role == "assistant" and rng.random() < 0.6:
                body = "<think>\n" + sentence(rng, ENGLISH_WORDS) + "\n</think>\n\n" + body
            if role == "tool":
                body = "<tool_response>\n{\"ok\": true}\n</tool_response>"
            out.append(f"<|im_start|>{role}\n{body}<|im_end|>\n")
        if rng.random() < 0.5:
            out.append("<|im_start|>assistant\n")
        return "".join(out)
    for _ in range(rng.randint(3, 30)):
        r = rng.random()
        if r < 0.4:
            out.append(rng.choice(SPECIALS))
        elif r < 0.55:
            out.append(rng.choice(NEAR_SPECIALS))
        else:
            out.append(rng.choice(["", " ", "  ", "\n", "x", "hello", " world ", "中文", "'s", "\t"]))
    return "".join(out)


def combining_doc(rng):
    out = []
    for _ in range(rng.randint(5, 50)):
        r = rng.random()
        if r < 0.3:
            out.append(unicodedata.normalize("NFD", rng.choice(
                ["Tiếng Việt", "Crème brûlée", "Ångström", "naïve café", "Dvořák", "Łódź", "Ελληνικά",
                 "한국어", "がぎぐげご", "パピプペポ", "ḱṓṥ", "Ǆǅǆ", "ﬁ ﬂ", "Å Ω K"])))
        elif r < 0.6:
            out.append(rng.choice("aeiouAEIOUnczsgkxyαωиjq ") +
                       "".join(rng.choice(COMBINING) for _ in range(rng.randint(1, 4))))
        elif r < 0.7:
            out.append(rng.choice("aká") + chr(rng.choice(YOUNG_MARKS)) + rng.choice(COMBINING) +
                       chr(rng.choice(YOUNG_MARKS)))
        elif r < 0.75:
            out.append("\U00011935\U00011930 \U00011938 " + chr(0x1100) + chr(0x1161) + chr(0x11a8))
        elif r < 0.8:
            out.append(rng.choice(COMBINING) * rng.randint(1, 3))  # marks with no base
        else:
            out.append(rng.choice([" ", "\n", "word", "'s", "1"]))
    return "".join(out)


def invalid_doc(rng):
    bad = [b"\x80", b"\xbf", b"\xc0\x80", b"\xc1\xbf", b"\xc2", b"\xc3\x28", b"\xe0\x80\x80", b"\xe0\xa0",
           b"\xe2\x82", b"\xed\xa0\x80", b"\xed\xbf\xbf", b"\xef\xbf", b"\xf0\x80\x80\x80", b"\xf0\x9f",
           b"\xf0\x9f\x98", b"\xf4\x90\x80\x80", b"\xf5", b"\xf8\x88\x80\x80\x80", b"\xfe", b"\xff",
           b"\xf0\x9f\x98\x80\x80", b"\xe4\xb8", b"\x80\x80\x80", b"\xc2\xc2\xa9"]
    out = []
    for _ in range(rng.randint(2, 30)):
        r = rng.random()
        if r < 0.4:
            out.append(rng.choice(bad))
        elif r < 0.7:
            out.append(rng.choice(ENGLISH_WORDS + CHINESE_WORDS + EMOJI).encode("utf-8"))
        elif r < 0.8:
            out.append(rng.choice(SPECIALS).encode("utf-8"))
        else:
            out.append(rng.choice([b" ", b"\n", b"'s", b"'", b"1", b"\t"]))
    return b"".join(out)


def unicode_sweep_docs(onig_extra_points):
    """Documents walking the code space: every BMP code point and a sample of the others, in contexts
    that exercise the pre-tokenizer's Unicode classes and the normaliser."""
    points = [c for c in range(0x80, 0x10000) if not 0xD800 <= c <= 0xDFFF]
    for c in range(0x10000, 0x110000):
        cat = unicodedata.category(chr(c))
        if cat in ("Co", "Cn"):
            if c % 4099 == 0:
                points.append(c)
        elif 0x20000 <= c < 0x40000:
            if c % 13 == 0:
                points.append(c)
        else:
            points.append(c)
    points.extend(onig_extra_points)
    docs = []
    styles = ["{c}", "{c} ", "a{c}", "{c}1", "'{c}", " {c}{c}", "{c}\n"]
    chunk = 256
    for i in range(0, len(points), chunk):
        style = styles[(i // chunk) % len(styles)]
        docs.append("".join(style.format(c=chr(c)) for c in points[i:i + chunk]))
    return docs


# Letters and numbers new in Unicode 15 and 16 (HF's Oniguruma knows them; older PCRE2 does not).
ONIG_EXTRA_POINTS = [0x1c89, 0x1c8a, 0xa7cb, 0xa7cc, 0xa7dc, 0x105c0, 0x105f3, 0x10d4a, 0x10d40, 0x10d49,
                     0x11380, 0x113b7, 0x116d0, 0x11bc0, 0x11bf0, 0x11f04, 0x16100, 0x16130, 0x16d40,
                     0x1e5d0, 0x1e5f1, 0x31350, 0x323af, 0x2ebf0, 0x2ee5d, 0x1fbf0, 0x11f50, 0x1e4d0]


def long_docs():
    return [
        " " * 5000,
        "\n" * 3000,
        "a" * 20000,
        "ab" * 5000,
        "1" * 7000,
        "!" * 4000,
        "\u4e2d" * 3000,
        "😀" * 1000,
        "<|im_start|>" * 300,
        " \t" * 2000 + "x",
        "hello " * 2000,
    ]


HAND_DOCS = [
    "", " ", "a", "Hello world", "Hello, world!", "  leading and trailing  ", "\n", "\r\n", "'s", "it's",
    "IT'S", "'", "''", "don't", "<|im_start|>", "<|im_start|>user\nhi<|im_end|>", "<think></think>",
    "x<|endoftext|>y", "<|endoftext|><|endoftext|>", "<|im_start", "café", "cafe\u0301",
    "\u1100\u1161\u11a8", "😀", "👨‍👩‍👧‍👦", "123456789", "3.14159", "\u00a0", "a\u3000b", "\t\tx",
    "\u0301", "e\u0301\u0301", "\ufeffBOM", "x" + "\u200d" + "y", "Ǆ", "\u017f", "'\u017f",
]


def build_documents():
    rng = random.Random(20240611)
    docs = []  # (kind, bytes)

    def add(kind, text):
        docs.append((kind, text.encode("utf-8") if isinstance(text, str) else text))

    for t in HAND_DOCS:
        add("hand", t)
    for t in long_docs():
        add("long", t)
    for _ in range(700):
        add("english", english_doc(rng))
    for _ in range(300):
        add("chinese", cjk_doc(rng, CHINESE_SENTENCES, CHINESE_WORDS, CHINESE_PUNCT, ""))
    for _ in range(150):
        add("japanese", cjk_doc(rng, JAPANESE_SENTENCES, JAPANESE_WORDS, ["、", "。", "！", "？", "ー"], ""))
    for _ in range(150):
        add("korean", cjk_doc(rng, KOREAN_SENTENCES, KOREAN_WORDS, [".", ",", "!", "?"], " "))
    for _ in range(300):
        add("code", code_doc(rng))
    for _ in range(200):
        add("emoji", emoji_doc(rng))
    for _ in range(200):
        add("numbers", number_doc(rng))
    for _ in range(200):
        add("whitespace", whitespace_doc(rng))
    for _ in range(300):
        add("special", special_doc(rng))
    for _ in range(200):
        add("combining", combining_doc(rng))
    for _ in range(200):
        add("invalid_utf8", invalid_doc(rng))
    for _ in range(100):  # mixtures: the boundaries between scripts matter to the regex
        parts = [english_doc(rng)[:300], cjk_doc(rng, CHINESE_SENTENCES, CHINESE_WORDS, CHINESE_PUNCT, "")[:200],
                 code_doc(rng)[:400], emoji_doc(rng)[:100], number_doc(rng)[:100], special_doc(rng)[:200],
                 combining_doc(rng)[:100]]
        rng.shuffle(parts)
        add("mixed", "".join(parts))
    for t in unicode_sweep_docs(ONIG_EXTRA_POINTS):
        add("unicode_sweep", t)
    return docs


# ----------------------------------------------------------------------------------------------------------
# Tiny tokenizers: the Qwen3 vocabulary cut to its first merges, dressed in other configurations.

LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                  r"|\s*[\r\n]+|\s+(?!\S)|\s+")


def truncated_model(qwen, n_merges):
    src = qwen["model"]
    inv = {i: s for s, i in src["vocab"].items()}
    vocab = {inv[i]: i for i in range(256)}
    merges = []
    for a, b in src["merges"][:n_merges]:
        if a not in vocab or b not in vocab:
            continue
        merges.append([a, b])
        if a + b not in vocab:
            vocab[a + b] = len(vocab)
    model = copy.deepcopy({k: v for k, v in src.items() if k not in ("vocab", "merges")})
    model["vocab"] = vocab
    model["merges"] = merges
    return model


def added(content, id_, special=False, lstrip=False, rstrip=False, single_word=False, normalized=False):
    return {"id": id_, "content": content, "single_word": single_word, "lstrip": lstrip, "rstrip": rstrip,
            "normalized": normalized, "special": special}


def with_added_ids(model, tokens):
    """HF gives an added token the model's id when the model has it, else the next free id."""
    next_id = len(model["vocab"])
    out = []
    for t in tokens:
        t = dict(t)
        if t["content"] in model["vocab"]:
            t["id"] = model["vocab"][t["content"]]
        else:
            t["id"] = next_id
            next_id += 1
        out.append(t)
    return out


def tiny_tokenizers(qwen):
    model = truncated_model(qwen, 1200)
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}
    the = "the" if "the" in model["vocab"] else "in"
    llama_added = with_added_ids(model, [
        added("<|begin_of_text|>", 0, special=True), added("<|end_of_text|>", 0, special=True),
        added("<|eot_id|>", 0, special=True), added("<mask>", 0, special=True, lstrip=True),
        added("<sep>", 0, rstrip=True), added("[both]", 0, lstrip=True, rstrip=True),
        added("cat", 0, single_word=True), added("<|\u00e9|>", 0), added(the, 0),
        added("Stra\u00dfe", 0, normalized=True), added("<|\u00e9|>x", 0, special=True),
    ])
    bos = llama_added[0]
    llama = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": llama_added,
        "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": LLAMA3_PATTERN}, "behavior": "Isolated", "invert": False},
            byte_level]},
        "post_processor": {"type": "Sequence", "processors": [
            {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
            {"type": "TemplateProcessing",
             "single": [{"SpecialToken": {"id": bos["content"], "type_id": 0}},
                        {"Sequence": {"id": "A", "type_id": 0}}],
             "pair": [{"SpecialToken": {"id": bos["content"], "type_id": 0}},
                      {"Sequence": {"id": "A", "type_id": 0}},
                      {"SpecialToken": {"id": bos["content"], "type_id": 1}},
                      {"Sequence": {"id": "B", "type_id": 1}}],
             "special_tokens": {bos["content"]: {"id": bos["content"], "ids": [bos["id"]],
                                                 "tokens": [bos["content"]]}}}]},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": dict(model, ignore_merges=True),
    }
    gpt2_added = with_added_ids(model, [
        added("<|endoftext|>", 0, special=True), added("e\u0301clair", 0, normalized=True),
        added("x\u0301", 0), added(" spaced", 0, normalized=True, lstrip=True),
    ])
    gpt2 = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": gpt2_added,
        "normalizer": {"type": "NFC"},
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": model,
    }
    splits_a = {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": with_added_ids(model, [added("<|endoftext|>", 0, special=True)]),
        "normalizer": {"type": "Sequence", "normalizers": [{"type": "NFC"}]},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"String": " "}, "behavior": "MergedWithPrevious", "invert": False},
            {"type": "Split", "pattern": {"Regex": "[.,!?]"}, "behavior": "MergedWithNext", "invert": False},
            {"type": "Split", "pattern": {"Regex": "\\p{N}"}, "behavior": "Contiguous", "invert": False},
            dict(byte_level, add_prefix_space=True)]},
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False},
        "model": model,
    }
    splits_b = copy.deepcopy(splits_a)
    splits_b["normalizer"] = None
    splits_b["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": "\\s+"}, "behavior": "Removed", "invert": False},
        {"type": "Split", "pattern": {"Regex": "\\p{L}+"}, "behavior": "Isolated", "invert": True},
        {"type": "Split", "pattern": {"String": "ab"}, "behavior": "Removed", "invert": True},
        dict(byte_level, use_regex=True)]}
    return {"tiny-llama3": llama, "tiny-gpt2": gpt2, "tiny-splits-a": splits_a, "tiny-splits-b": splits_b}


FLAG_DOCS = [
    "a <mask> b", "a   <mask>", "<mask>", "   <mask>   x", "x<mask>", "<sep>   x", "<sep>\n\ny", "a [both] b",
    "  [both]  ", "cat", "the cat sat", "concatenate", "cat_", "_cat", "\u00e9cat", "cat1", "1cat", "cat!",
    "(cat)", "cat\u0301", "\u0301cat", "<|\u00e9|>", "<|\u00e9|>x", "the", "then", "Stra\u00dfe", "Strasse",
    "e\u0301clair", "\u00e9clair", "x\u0301", "\u1e8b", " spaced", "   spaced", "x spaced", "<|endoftext|>",
    "<|begin_of_text|>hi<|eot_id|>", "12345678", "1 22 333 4444", "abcabab", "a.b,c!d?", "a  b\tc\n",
    "don't STOP", "<sep><sep> <mask><mask>", "cat cat  cat", "\u3000<mask>", "\u00a0<sep>\u00a0",
]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokenizer", default=DEFAULT_TOKENIZER, help="directory with the Qwen3 tokenizer.json")
    args = ap.parse_args()
    path = os.path.join(args.tokenizer, "tokenizer.json")
    qwen_json = json.load(open(path, encoding="utf-8"))
    qwen = Tokenizer.from_file(path)
    nfc = normalizers.NFC()

    docs = build_documents()
    corpus_lines, id_lines = [], []
    total = 0
    for i, (kind, raw) in enumerate(docs):
        total += len(raw)
        try:
            text = raw.decode("utf-8")
            entry = {"kind": kind, "text": text}
            normal = nfc.normalize_str(text)
            if normal != text:
                entry["nfc"] = normal
        except UnicodeDecodeError:
            text = raw.decode("utf-8", errors="replace")
            entry = {"kind": kind, "hex": raw.hex()}
        corpus_lines.append(json.dumps(entry, ensure_ascii=False))
        qwen.encode_special_tokens = False
        ids = qwen.encode(text, add_special_tokens=False).ids
        qwen.encode_special_tokens = True
        plain = qwen.encode(text, add_special_tokens=False).ids
        id_lines.append(json.dumps({"doc": i, "ids": ids, "ids_plain": plain}, separators=(",", ":")))
    write_gz(os.path.join(HERE, "corpus.jsonl.gz"), corpus_lines)
    write_gz(os.path.join(HERE, "qwen3_ids.jsonl.gz"), id_lines)
    print(f"corpus: {len(docs)} documents, {total} bytes")

    # Tiny tokenizers: a slice of the corpus plus documents aimed at the added-token flags.
    picked = [i for i, d in enumerate(docs) if d[0] not in ("long", "unicode_sweep")][::12]
    picked += [i for i, d in enumerate(docs) if d[0] == "unicode_sweep"][::40]
    tiny_docs = [(docs[i][0], docs[i][1], i) for i in picked]
    tiny_docs += [("flags", t.encode("utf-8"), None) for t in FLAG_DOCS]
    os.makedirs(os.path.join(HERE, "tiny"), exist_ok=True)
    tiny_lines = []
    for name, spec in tiny_tokenizers(qwen_json).items():
        file = os.path.join(HERE, "tiny", name + ".json")
        with open(file, "w", encoding="utf-8") as f:
            json.dump(spec, f, ensure_ascii=False, indent=1)
        tok = Tokenizer.from_file(file)
        for kind, raw, doc in tiny_docs:
            text = raw.decode("utf-8", errors="replace")
            tok.encode_special_tokens = False
            ids = tok.encode(text, add_special_tokens=False).ids
            templ = tok.encode(text, add_special_tokens=True).ids
            tok.encode_special_tokens = True
            plain = tok.encode(text, add_special_tokens=False).ids
            source = {"doc": doc} if doc is not None else {"text": text}
            tiny_lines.append(json.dumps({
                "tokenizer": name, "kind": kind, **source, "ids": ids, "ids_template": templ,
                "ids_plain": plain, "decode": tok.decode(ids, skip_special_tokens=False),
                "decode_skip": tok.decode(ids, skip_special_tokens=True)}, ensure_ascii=False))
    write_gz(os.path.join(HERE, "tiny_ids.jsonl.gz"), tiny_lines)
    print(f"tiny: {len(tiny_lines)} cases")


def write_gz(path, lines):
    with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as f:
        f.write(("\n".join(lines) + "\n").encode("utf-8"))


if __name__ == "__main__":
    main()
