#!/usr/bin/env python3
"""HF tokenizers on the golden corpus, timed like tokenizer_bench.cpp (one warm-up pass, median of the
rest; also the process CPU time per pass, which a busy machine distorts less). `--mode single` encodes document by document (run it with TOKENIZERS_PARALLELISM=false);
`--mode batch` uses encode_batch, which HF spreads over all threads. Prints one JSON line."""
import argparse
import gzip
import json
import os
import statistics
import time

from tokenizers import Tokenizer


def load(path):
    docs = []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            docs.append(d["text"] if "text" in d else bytes.fromhex(d["hex"]).decode("utf-8", errors="replace"))
    return docs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("tokenizer")
    ap.add_argument("corpus")
    ap.add_argument("--mode", choices=["single", "batch"], required=True)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    tok = Tokenizer.from_file(os.path.join(args.tokenizer, "tokenizer.json"))
    docs = load(args.corpus)

    def run():
        start, cpu_start = time.perf_counter(), time.process_time()
        if args.mode == "single":
            n = sum(len(tok.encode(d, add_special_tokens=False).ids) for d in docs)
        else:
            n = sum(len(e.ids) for e in tok.encode_batch(docs, add_special_tokens=False))
        return time.perf_counter() - start, time.process_time() - cpu_start, n

    run()
    times, cpu, tokens = [], 0.0, 0
    for _ in range(args.repeats):
        t, c, tokens = run()
        times.append(t)
        cpu += c
    median = statistics.median(times)
    print(json.dumps({"side": "hf", "mode": args.mode, "threads": 1 if args.mode == "single" else os.cpu_count(),
                      "documents": len(docs), "tokens": tokens, "seconds": round(median, 4),
                      "tokens_per_s": round(tokens / median),
                      "cpu_seconds": round(cpu / args.repeats, 4)}))


if __name__ == "__main__":
    main()
