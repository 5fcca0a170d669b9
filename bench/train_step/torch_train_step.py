"""PyTorch eager peer of tessera_bench_train_step: the same model (transformers' Qwen3 / Qwen3-MoE built from
the tessera YAML), the same batch (one sample per row, targets = next token), fp32 on the CPU, forward +
backward + torch.optim.AdamW, timed over the same number of steps after a warm-up. Prints one JSON line."""
import json
import sys
import time

import torch
import yaml
from transformers import AutoConfig, AutoModelForCausalLM


def main():
    config_path, steps = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 3
    c = yaml.safe_load(open(config_path))
    m, t, o = c["model"], c.get("train", {}), c.get("optim", {})
    moe = m.get("num_experts", 0) > 0
    kwargs = dict(vocab_size=m["vocab_size"], hidden_size=m["hidden_size"], num_hidden_layers=m["num_layers"],
                  num_attention_heads=m["num_attention_heads"], num_key_value_heads=m["num_kv_heads"],
                  head_dim=m["head_dim"], intermediate_size=m["ffn_hidden_size"], rms_norm_eps=1e-6,
                  tie_word_embeddings=False, use_cache=False, attn_implementation="sdpa")
    if moe:
        kwargs.update(num_experts=m["num_experts"], num_experts_per_tok=m["num_experts_per_tok"],
                      moe_intermediate_size=m["moe_ffn_hidden_size"], norm_topk_prob=True,
                      output_router_logits=True, router_aux_loss_coef=m.get("router_aux_loss_coef", 0.001))
    config = AutoConfig.for_model("qwen3_moe" if moe else "qwen3", **kwargs)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, torch_dtype=torch.float32)
    model.train()
    seq, rows = c["data"]["seq_length"], t.get("micro_batch_size", 1)
    ids = torch.tensor([[(r * 7919 + i * 104729) % m["vocab_size"] for i in range(seq)] for r in range(rows)])
    opt = torch.optim.AdamW(model.parameters(), lr=o.get("lr", 3e-4), betas=(0.9, 0.95), weight_decay=0.1)

    def step():
        opt.zero_grad(set_to_none=False)
        out = model(input_ids=ids, labels=ids, use_cache=False)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    seconds = (time.perf_counter() - start) / steps
    print(json.dumps({"impl": "pytorch", "seconds_per_step": round(seconds, 4),
                      "tokens_per_s": round(rows * seq / seconds, 1), "threads": torch.get_num_threads(),
                      "torch": torch.__version__}))


if __name__ == "__main__":
    main()
