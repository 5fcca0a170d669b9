"""PyTorch peer of `tessera_gpu_bench --config FILE`: the same model, built by Hugging Face transformers
(Qwen3ForCausalLM, or Qwen3MoeForCausalLM when the YAML has experts) from the tessera YAML's model section,
trained for N timed steps on one GPU. Prints ONE JSON line on stdout (everything else goes to stderr):

  {"kind":"torch_step","model":..,"params":..,"tokens":S,"step_ms":<median>,"tokens_per_s":..,
   "peak_mem_gib":..,"loss_first":..,"loss_last":.., ...}

or {"kind":"torch_step","error":...} when anything fails (out of memory included); the exit status is then 1.

usage: python3 bench/gpu/torch_step.py --config bench/gpu/dense-1b.yaml [--steps 10] [--warmup 3]
                                       [--seq 4096] [--device cuda|cpu]

One step = one sequence of S random token ids (fixed seed; labels = inputs, transformers shifts them),
forward + loss (+ router aux loss for MoE) + backward + gradient clipping (when optim.clip_grad > 0, as
tessera's step does) + AdamW step + zero_grad. Steps after the warm-up are timed with CUDA events on the
current stream, each from before the forward to after zero_grad; step_ms is their median.
"""
import argparse
import json
import math
import statistics
import sys
import time


def emit(obj):
    print(json.dumps(obj), flush=True)


def log(*args):
    print("torch_step:", *args, file=sys.stderr, flush=True)


def build_config(m, seq):
    """A transformers config equal to tessera's model section (field names from docs/configuration.md)."""
    from transformers import Qwen3Config, Qwen3MoeConfig

    moe = int(m.get("num_experts", 0) or 0) > 0
    arch = m.get("architecture", "qwen3")
    if arch not in ("qwen3", "qwen3_moe"):
        raise ValueError(f"torch_step.py builds qwen3 / qwen3_moe only, not {arch!r}")
    heads = int(m.get("num_attention_heads", 4))
    head_dim = int(m.get("head_dim", 0) or 0) or int(m["hidden_size"]) // heads
    if not m.get("qk_norm", True):
        raise ValueError("transformers' Qwen3 always has qk_norm; set model.qk_norm: true")
    kw = dict(
        vocab_size=int(m.get("vocab_size", 512)),
        hidden_size=int(m.get("hidden_size", 64)),
        intermediate_size=int(m.get("ffn_hidden_size", 128)),
        num_hidden_layers=int(m.get("num_layers", 2)),
        num_attention_heads=heads,
        num_key_value_heads=int(m.get("num_kv_heads", 2)),
        head_dim=head_dim,
        max_position_embeddings=max(int(m.get("max_position_embeddings", 4096)), seq),
        rms_norm_eps=float(m.get("rms_norm_eps", 1e-6)),
        initializer_range=float(m.get("init_std", 0.02)),
        attention_bias=bool(m.get("qkv_bias", False)),
        tie_word_embeddings=bool(m.get("tie_embeddings", False)),
        use_cache=False,
        attn_implementation="sdpa",
        rope_parameters={"rope_type": "default", "rope_theta": float(m.get("rope_theta", 1e6))},
    )
    if moe:
        kw.update(
            num_experts=int(m["num_experts"]),
            num_experts_per_tok=int(m["num_experts_per_tok"]),
            moe_intermediate_size=int(m["moe_ffn_hidden_size"]),
            norm_topk_prob=bool(m.get("norm_topk_prob", True)),
            decoder_sparse_step=1,  # every layer MoE, as tessera's qwen3_moe
            mlp_only_layers=[],
            # Include the Switch load-balancing loss in the loss (and its gradient), as tessera does;
            # tessera's default coefficient is 0.001.
            output_router_logits=True,
            router_aux_loss_coef=float(m.get("router_aux_loss_coef", 0.001)),
        )
        return moe, Qwen3MoeConfig(**kw)
    return moe, Qwen3Config(**kw)


def flops_per_token(model, cfg, moe, seq):
    """tessera plan's formula, 6N + 12·L·(heads·head_dim)·S, with N the parameters that do matrix work
    per token (the input embedding lookup excluded unless it is tied to the head; for MoE only top-k of the
    experts). Used by table.py only when the tessera line is missing."""
    n = 0
    for name, p in model.named_parameters():
        if name.endswith("embed_tokens.weight") and not cfg.tie_word_embeddings:
            continue
        k = p.numel()
        if moe and ".experts." in name:
            k = k * cfg.num_experts_per_tok / cfg.num_experts
        n += k
    return 6 * n + 12 * cfg.num_hidden_layers * cfg.num_attention_heads * cfg.head_dim * seq


def run(args):
    import torch
    import transformers
    import yaml

    with open(args.config) as f:
        c = yaml.safe_load(f)
    m, o, t = c.get("model", {}), c.get("optim", {}) or {}, c.get("train", {}) or {}
    name = m.get("name", args.config)
    seq = args.seq or int((c.get("data") or {}).get("seq_length", 4096))
    result = {"kind": "torch_step", "model": name, "tokens": seq, "device": args.device}
    dev = torch.device(args.device)
    cuda = dev.type == "cuda"
    if cuda and not torch.cuda.is_available():
        raise RuntimeError("CUDA not available to torch")

    moe, cfg = build_config(m, seq)
    torch.manual_seed(int(t.get("seed", 1234)))
    # Build straight on the device (initialised there), fp32 master parameters.
    with dev:
        if moe:
            model = transformers.Qwen3MoeForCausalLM(cfg)
        else:
            model = transformers.Qwen3ForCausalLM(cfg)
    model = model.to(device=dev, dtype=torch.float32)
    model.train()
    params = sum(p.numel() for p in model.parameters())  # tied weights counted once
    result["params"] = params
    result["flops_per_token_torch"] = flops_per_token(model, cfg, moe, seq)
    result["attn"] = getattr(model.config, "_attn_implementation", None)
    result["experts"] = getattr(model.config, "_experts_implementation", None) if moe else None
    log(f"{name}: {params / 1e9:.3f}B parameters, attn {result['attn']}"
        + (f", experts {result['experts']}" if moe else "") + f", seq {seq}, device {dev}")

    # AdamW as tessera's: decoupled weight decay on matrices only (not norms / biases).
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": float(o.get("weight_decay", 0.1))},
              {"params": no_decay, "weight_decay": 0.0}]
    opt_kw = dict(lr=float(o.get("lr", 3e-4)), betas=(float(o.get("beta1", 0.9)), float(o.get("beta2", 0.95))),
                  eps=float(o.get("eps", 1e-8)))
    fused = False
    if cuda:
        try:
            opt = torch.optim.AdamW(groups, fused=True, **opt_kw)
            fused = True
        except (TypeError, RuntimeError) as e:
            log(f"fused AdamW unavailable ({e}); using foreach")
            opt = torch.optim.AdamW(groups, **opt_kw)
    else:
        opt = torch.optim.AdamW(groups, **opt_kw)
    result["fused_adamw"] = fused
    clip = float(o.get("clip_grad", 1.0))

    gen = torch.Generator(device="cpu").manual_seed(1234)
    ids = torch.randint(0, cfg.vocab_size, (1, seq), generator=gen).to(dev)

    # The standard mixed-precision recipe: fp32 parameters, gradients and Adam state; matmuls (and SDPA)
    # in bf16 under torch.autocast; the loss in fp32 (transformers upcasts the logits).
    bf16 = str(t.get("precision", "bf16")) == "bf16" and not args.no_autocast
    result["autocast_bf16"] = bf16

    # tessera's schedule (train/optimizer.cpp learning_rate): linear warmup from 0, then cosine (or linear,
    # or constant) decay to min_lr over decay_steps (default train.steps - warmup), then min_lr.
    peak, floor = opt_kw["lr"], float(o.get("min_lr", 3e-5))
    warm, total_steps = int(o.get("warmup_steps", 100)), int(t.get("steps", 1000))
    decay_kind = str(o.get("decay", "cosine"))
    decay_steps = int(o.get("decay_steps", 0)) or max(total_steps - warm, 1)

    def lr_at(n):  # n = 1 for the first update
        if warm > 0 and n <= warm:
            return peak * n / warm
        if decay_kind == "constant":
            return peak
        progress = min(1.0, (n - warm) / decay_steps)
        factor = 0.5 * (1 + math.cos(math.pi * progress)) if decay_kind == "cosine" else 1 - progress
        return floor + (peak - floor) * factor

    updates = [0]

    def step():
        updates[0] += 1
        for g in opt.param_groups:
            g["lr"] = lr_at(updates[0])
        with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=bf16):
            out = model(input_ids=ids, labels=ids, use_cache=False)
        out.loss.backward()
        if clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip, foreach=True if cuda else None)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return out.loss.detach()

    losses, times = [], []
    total = args.warmup + args.steps
    wall0 = None
    for i in range(total):
        timed = i >= args.warmup
        if timed and wall0 is None:
            if cuda:
                torch.cuda.synchronize()
            wall0 = time.perf_counter()
        if cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            losses.append(step())
            end.record()
            if timed:
                times.append((start, end))
        else:
            t0 = time.perf_counter()
            losses.append(step())
            if timed:
                times.append((time.perf_counter() - t0) * 1e3)
        if i == 0:  # first step done: report it early on stderr (it also checks the model runs at all)
            log(f"step 0 loss {losses[0].item():.4f}")
    if cuda:
        torch.cuda.synchronize()
        ms = [s.elapsed_time(e) for s, e in times]
    else:
        ms = times
    wall = time.perf_counter() - wall0 if wall0 is not None else float("nan")
    loss_vals = [float(x.item()) for x in losses]
    med = statistics.median(ms) if ms else float("nan")
    result.update(
        step_ms=med,
        step_ms_min=min(ms) if ms else None,
        step_ms_mean=statistics.fmean(ms) if ms else None,
        wall_step_ms=wall * 1e3 / len(ms) if ms else None,
        tokens_per_s=seq / (med / 1e3) if ms and med > 0 else None,
        steps=len(ms),
        warmup=args.warmup,
        peak_mem_gib=torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
        loss_first=loss_vals[0] if loss_vals else None,
        loss_last=loss_vals[-1] if loss_vals else None,
        finite=all(math.isfinite(x) for x in loss_vals),
        torch=torch.__version__,
        transformers=transformers.__version__,
        gpu=torch.cuda.get_device_name() if cuda else None,
    )
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", required=True)
    ap.add_argument("--steps", type=int, default=10, help="timed steps")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    ap.add_argument("--seq", type=int, default=0, help="tokens per step (default: data.seq_length)")
    ap.add_argument("--device", default="cuda", help="cuda (default) or cpu, for a smoke test")
    ap.add_argument("--no-autocast", action="store_true", help="fp32 compute (train.precision fp32 does too)")
    args = ap.parse_args()
    base = {"kind": "torch_step", "config": args.config}
    try:
        result = run(args)
    except Exception as e:  # noqa: BLE001 - one JSON line whatever happened, OOM included
        oom = type(e).__name__ == "OutOfMemoryError" or "out of memory" in str(e).lower()
        err = dict(base, error=f"{type(e).__name__}: {str(e)[:400]}", oom=oom)
        try:
            import torch
            if torch.cuda.is_available():
                err["peak_mem_gib"] = torch.cuda.max_memory_allocated() / 2**30
        except Exception:  # noqa: BLE001
            pass
        import traceback
        traceback.print_exc(file=sys.stderr)
        emit(err)
        return 1
    emit(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
