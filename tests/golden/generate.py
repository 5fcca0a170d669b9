#!/usr/bin/env python3
"""Golden files for tessera's CPU fp32 reference backend, made by Hugging Face transformers itself.

Developers run this script; CI never does (CI has no Python packages).  It writes
small, deterministic outputs under tests/golden/data/ that are committed, so the C++
tests need no Python.  See tests/golden/README.md for what every file holds.

  python tests/golden/generate.py                  # (re)generate tests/golden/data/
  python tests/golden/generate.py --check-export DIR --golden NAME
                                                   # compare an exported HF dir with golden NAME
  python tests/golden/generate.py --self-test      # check mode on the golden dirs (must pass)
                                                   # and on perturbed copies (must fail)

Exit status: 0 ok, 1 mismatch / failed proof, 2 usage or load error.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DATA_DIR = os.path.join(HERE, "data")

# ---------------------------------------------------------------------------------------
# The golden batch.  Changing anything here changes every golden file.
# ---------------------------------------------------------------------------------------
DATA_SEED = 20240601            # torch.Generator seed for the token ids
BATCH, SEQ, VOCAB = 2, 32, 256
PACKED_LENGTHS = (11, 13, 8)    # row 0: three samples packed back to back
SINGLE_LENGTHS = (32,)          # row 1: one sample filling the row
ROW_LENGTHS = (PACKED_LENGTHS, SINGLE_LENGTHS)
IGNORE_INDEX = -100
# Extra -100 labels *inside* samples, to exercise the loss mask: (row, position).
# (The label of the first token of every sample after the first in a packed row is
# also -100; that is derived from PACKED_LENGTHS, see build_batch.)
EXTRA_IGNORED = ((0, 5), (0, 18), (0, 29), (1, 7), (1, 8), (1, 20))

# Exact-math implementations: eager attention (softmax(QK^T*scale + mask) V) and the
# per-expert Python loop for MoE experts.  transformers' defaults are "sdpa" and
# "grouped_mm"; those agree only to ~1e-6.
ATTN_IMPLEMENTATION = "eager"
EXPERTS_IMPLEMENTATION = "eager"

PACK_PROOF_TOL = 1e-5           # packed-row logits vs each sample run alone
CHECK_REL_TOL = 1e-5            # check mode: max|a-b| / max|b| above this fails
MIN_ROUTER_MARGIN = 1e-3        # smallest allowed gap between the k-th and (k+1)-th router prob

COMMON = dict(
    vocab_size=VOCAB,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=16,
    max_position_embeddings=256,
    hidden_act="silu",
    attention_dropout=0.0,
    initializer_range=0.1,
    use_cache=False,
    bos_token_id=None,          # no special tokens: ids are random, and Llama's default 1/2
    eos_token_id=None,          # would only add a generation_config.json
    pad_token_id=None,
)
NO_SLIDING = dict(use_sliding_window=False, sliding_window=None)

# name -> (class name, parameter seed, config kwargs).  Order is the generation order.
MODELS = {
    "qwen3": (
        "Qwen3ForCausalLM", 1001,
        dict(COMMON, **NO_SLIDING, attention_bias=False, tie_word_embeddings=False, rms_norm_eps=1e-6,
             rope_parameters={"rope_type": "default", "rope_theta": 1000000.0}),
    ),
    "qwen3_moe": (
        "Qwen3MoeForCausalLM", 1002,
        dict(COMMON, **NO_SLIDING, attention_bias=False, tie_word_embeddings=False, rms_norm_eps=1e-6,
             rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
             num_experts=8, num_experts_per_tok=2, moe_intermediate_size=32, norm_topk_prob=True,
             output_router_logits=True, router_aux_loss_coef=0.01, decoder_sparse_step=1, mlp_only_layers=[]),
    ),
    "qwen2": (
        "Qwen2ForCausalLM", 1003,
        dict(COMMON, **NO_SLIDING, tie_word_embeddings=False, rms_norm_eps=1e-6,
             rope_parameters={"rope_type": "default", "rope_theta": 1000000.0}),
    ),
    "llama": (
        "LlamaForCausalLM", 1004,
        dict(COMMON, attention_bias=False, mlp_bias=False, tie_word_embeddings=True, rms_norm_eps=1e-5,
             rope_parameters={"rope_type": "default", "rope_theta": 10000.0}),
    ),
}

NORM_WEIGHT_RANGE = (0.5, 1.5)  # RMSNorm weights ~ U(0.5, 1.5), not all ones
BIAS_STD = 0.1                  # biases ~ N(0, 0.1), not zeros

# Legacy (checkpoint) per-expert key <-> fused transformers-v5 parameter.
EXPERT_KEY_RE = re.compile(r"^(?P<prefix>.*\.mlp\.experts)\.(?P<e>\d+)\.(?P<proj>gate_proj|up_proj|down_proj)\.weight$")


def die(msg: str, code: int = 1) -> "NoReturn":  # noqa: F821
    print(f"error: {msg}", file=sys.stderr)
    sys.exit(code)


def import_stack():
    try:
        import torch
        import transformers
        import safetensors
        from safetensors.torch import load_file, save_file
    except ImportError as e:
        die(f"{e}; install the pinned packages: pip install -r {os.path.join(HERE, 'requirements.txt')}", 2)
    transformers.utils.logging.disable_progress_bar()
    transformers.logging.set_verbosity_error()
    # Same bytes on every run of the same machine: one thread, deterministic kernels.
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    return torch, transformers, safetensors, load_file, save_file


# ---------------------------------------------------------------------------------------
# Batch
# ---------------------------------------------------------------------------------------
def build_batch(torch):
    g = torch.Generator().manual_seed(DATA_SEED)
    input_ids = torch.randint(0, VOCAB, (BATCH, SEQ), generator=g, dtype=torch.int64)
    position_ids = torch.empty(BATCH, SEQ, dtype=torch.int64)
    labels = input_ids.clone()       # unshifted: the model shifts (logits[t] predicts labels[t+1])
    segments = []                    # (row, start, length)
    cu = [0]
    for row, lengths in enumerate(ROW_LENGTHS):
        assert sum(lengths) == SEQ, "every row must be filled exactly (no padding)"
        start = 0
        for i, n in enumerate(lengths):
            position_ids[row, start:start + n] = torch.arange(n)
            if i > 0:
                # logits[start-1] (last token of the previous sample) would predict this
                # token across the boundary: ignore it.
                labels[row, start] = IGNORE_INDEX
            segments.append((row, start, n))
            cu.append(cu[-1] + n)
            start += n
    for row, pos in EXTRA_IGNORED:
        labels[row, pos] = IGNORE_INDEX
    cu_seqlens = torch.tensor(cu, dtype=torch.int32)
    return dict(input_ids=input_ids, position_ids=position_ids, labels=labels, cu_seqlens=cu_seqlens), segments


def block_causal_allowed(torch, segments):
    """[B, S, S] bool: query q may attend key k iff same sample and k <= q."""
    allowed = torch.zeros(BATCH, SEQ, SEQ, dtype=torch.bool)
    for row, start, n in segments:
        allowed[row, start:start + n, start:start + n] = torch.tril(torch.ones(n, n, dtype=torch.bool))
    return allowed


def mask4d_of(torch, segments):
    """[B, 1, S, S] additive float mask: 0 where allowed, finfo(float32).min elsewhere."""
    allowed = block_causal_allowed(torch, segments)[:, None]
    return torch.zeros(allowed.shape, dtype=torch.float32).masked_fill(~allowed, torch.finfo(torch.float32).min)


# ---------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------
def is_moe(cls_name: str) -> bool:
    return "Moe" in cls_name


def set_impls(model, moe: bool):
    model.set_attn_implementation(ATTN_IMPLEMENTATION)
    if moe:
        model.set_experts_implementation(EXPERTS_IMPLEMENTATION)


def build_model(torch, transformers, name):
    cls_name, seed, cfg_kwargs = MODELS[name]
    cls = getattr(transformers, cls_name)
    config = cls.config_class(**cfg_kwargs)
    torch.manual_seed(seed)
    model = cls(config).to(torch.float32)
    set_impls(model, is_moe(cls_name))
    # Overwrite EVERY parameter from our own generator, so the weights do not depend on
    # transformers' init order, and norms/biases are not the trivial ones/zeros.
    g = torch.Generator().manual_seed(seed)
    std = config.initializer_range
    with torch.no_grad():
        for pname, p in model.named_parameters():  # tied weights appear once
            if pname.endswith("norm.weight"):
                lo, hi = NORM_WEIGHT_RANGE
                p.copy_(torch.rand(p.shape, generator=g, dtype=torch.float32) * (hi - lo) + lo)
            elif pname.endswith(".bias"):
                p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float32) * BIAS_STD)
            else:
                p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float32) * std)
    model.train()  # dropout is 0 everywhere; train mode = the mode tessera reproduces
    return model


def forward(model, batch, moe: bool, with_labels: bool = True):
    """The one way every golden number is produced.

    use_cache=False matters: with a cache (the config default is use_cache=True, even in
    train mode) transformers skips packed-sequence detection and silently lets tokens
    attend across sample boundaries.  attention_mask stays None: transformers then
    derives the block-diagonal causal mask from position_ids restarting at 0, and the
    MoE aux loss counts every token once (a 4D mask makes load_balancing_loss_func crash).
    """
    kwargs = dict(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False)
    if with_labels:
        kwargs["labels"] = batch["labels"]
    if moe:
        kwargs["output_router_logits"] = True
    return model(**kwargs)


# ---------------------------------------------------------------------------------------
# Proofs
# ---------------------------------------------------------------------------------------
def prove_packing(torch, model, batch, segments, logits, moe):
    """Return max abs diff between packed logits and each sample run alone (positions from 0)."""
    from transformers.masking_utils import create_causal_mask

    # 1. The mask transformers builds is exactly block-diagonal causal.
    embeds = model.get_input_embeddings()(batch["input_ids"])
    mask = create_causal_mask(config=model.config, inputs_embeds=embeds, attention_mask=None,
                              cache=None, position_ids=batch["position_ids"])
    if mask is None:
        die("transformers built no mask (pure causal): packed-sequence detection did not trigger")
    hf_allowed = (mask == 0)[:, 0] if mask.dtype != torch.bool else mask[:, 0]
    if not torch.equal(hf_allowed, block_causal_allowed(torch, segments)):
        die("transformers' attention mask is not the block-diagonal causal mask")

    # 2. Each sample alone gives the same logits.
    worst = 0.0
    with torch.no_grad():
        for row, start, n in segments:
            solo = dict(input_ids=batch["input_ids"][row:row + 1, start:start + n],
                        position_ids=torch.arange(n, dtype=torch.int64)[None])
            out = forward(model, solo, moe, with_labels=False)
            d = (out.logits[0] - logits[row, start:start + n]).abs().max().item()
            worst = max(worst, d)
    if not worst < PACK_PROOF_TOL:
        die(f"packed row differs from its samples run alone: max abs diff {worst:.3e}")

    # 3. An explicit 4D additive block-diagonal mask (the other route) gives the same logits.
    #    (Not usable for the MoE loss: load_balancing_loss_func expects a 2D mask and crashes.)
    mask4d = mask4d_of(torch, segments)
    with torch.no_grad():
        kw = dict(input_ids=batch["input_ids"], position_ids=batch["position_ids"], attention_mask=mask4d,
                  use_cache=False)
        if moe:
            kw["output_router_logits"] = False
        d4 = (model(**kw).logits - logits).abs().max().item()
    if not d4 < PACK_PROOF_TOL:
        die(f"explicit 4D mask route differs from position_ids route: {d4:.3e}")
    return worst, d4


def router_checks(torch, router_logits, top_k, num_experts):
    """Top-k must be robust (no near-ties) and every expert must get tokens in every layer."""
    margin = float("inf")
    for layer, rl in enumerate(router_logits):
        probs = torch.softmax(rl.double(), dim=-1)
        top = torch.topk(probs, top_k + 1, dim=-1).values
        margin = min(margin, (top[:, top_k - 1] - top[:, top_k]).min().item())
        chosen = torch.topk(probs, top_k, dim=-1).indices
        hits = torch.bincount(chosen.reshape(-1), minlength=num_experts)
        if (hits == 0).any():
            die(f"layer {layer}: experts {torch.nonzero(hits == 0).flatten().tolist()} get no token; "
                "their gradients would be zero - pick another seed")
    if margin < MIN_ROUTER_MARGIN:
        die(f"router top-{top_k} margin {margin:.2e} < {MIN_ROUTER_MARGIN}: a near-tie would make the golden "
            "routing fragile - pick another seed")
    return margin


def aux_loss_reference(torch, router_logits, top_k, num_experts):
    """The README's aux-loss formula, written out independently of transformers (float64).

    Pool every (layer, token) row: L layers x T = B*S tokens, no mask, each token once.
      p[l,t,:] = softmax(router_logits[l][t])
      f[e]     = #{(l, t, j < top_k) : topk(p[l,t])[j] == e} / (L*T)    (sums to top_k, not 1)
      P[e]     = sum_{l,t} p[l,t,e] / (L*T)
      aux      = num_experts * sum_e f[e] * P[e]
    """
    rows = torch.cat([rl.detach().double() for rl in router_logits], dim=0)
    p = torch.softmax(rows, dim=-1)
    sel = torch.topk(p, top_k, dim=-1).indices
    f = torch.bincount(sel.reshape(-1), minlength=num_experts).double() / rows.shape[0]
    P = p.sum(dim=0) / rows.shape[0]
    return float(num_experts * (f * P).sum())


# ---------------------------------------------------------------------------------------
# Gradients keyed by checkpoint tensor names
# ---------------------------------------------------------------------------------------
def checkpoint_grads(torch, model, saved):
    """One gradient per tensor of model.safetensors, same name and shape.

    transformers v5 keeps MoE experts fused (mlp.experts.gate_up_proj [E, 2I, H] =
    cat(gate_proj, up_proj) per expert; mlp.experts.down_proj [E, H, I]) but saves the
    legacy per-expert keys.  The fused gradients are split the same way; the split is
    proven by slicing the parameters and comparing them bit-for-bit with the saved file.
    """
    params = dict(model.named_parameters())
    covered = {n: 0 for n in params}
    grads = {}
    for key in sorted(saved):
        m = EXPERT_KEY_RE.match(key)
        if key in params:
            p, sl = params[key], (lambda t: t)
            pname = key
        elif m:
            e, proj = int(m["e"]), m["proj"]
            pname = m["prefix"] + (".down_proj" if proj == "down_proj" else ".gate_up_proj")
            p = params[pname]
            if proj == "down_proj":
                sl = (lambda t, e=e: t[e])
            else:
                half = p.shape[1] // 2
                lo = 0 if proj == "gate_proj" else half
                sl = (lambda t, e=e, lo=lo, half=half: t[e, lo:lo + half])
        else:
            die(f"checkpoint tensor {key} matches no parameter")
        if not torch.equal(sl(p.detach()), saved[key]):
            die(f"checkpoint tensor {key} is not the slice of {pname} assumed for its gradient")
        if p.grad is None:
            die(f"parameter {pname} got no gradient")
        g = sl(p.grad).contiguous().clone()
        if not torch.isfinite(g).all() or g.abs().max().item() == 0.0:
            die(f"gradient of {key} is zero or not finite")
        grads["grad." + key] = g
        covered[pname] += g.numel()
    for pname, p in params.items():
        if covered[pname] != p.numel():
            die(f"parameter {pname}: {covered[pname]} of {p.numel()} elements covered by checkpoint tensors")
    return grads


# ---------------------------------------------------------------------------------------
# Generation
# ---------------------------------------------------------------------------------------
def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def generate_one(torch, transformers, load_file, save_file, name, batch, segments):
    cls_name, seed, _ = MODELS[name]
    moe = is_moe(cls_name)
    model = build_model(torch, transformers, name)
    cfg = model.config

    out = forward(model, batch, moe)
    logits = out.logits.detach()
    # CE exactly as transformers computed it (same function, same inputs) before adding aux.
    ce = model.loss_function(logits=out.logits, labels=batch["labels"], vocab_size=cfg.vocab_size).detach()
    tensors = dict(batch)
    tensors["logits"] = logits.contiguous()
    tensors["loss"] = out.loss.detach().reshape(()).clone()
    tensors["ce_loss"] = ce.reshape(()).clone()
    info = {}
    if moe:
        aux = out.aux_loss.detach().reshape(())
        if not torch.equal(out.loss.detach(), ce + cfg.router_aux_loss_coef * aux):
            die(f"{name}: loss != ce_loss + router_aux_loss_coef * aux_loss")
        tensors["aux_loss"] = aux.clone()
        if len(out.router_logits) != cfg.num_hidden_layers:
            die(f"{name}: expected one router_logits tensor per layer")
        for layer, rl in enumerate(out.router_logits):
            tensors[f"router_logits.{layer}"] = rl.detach().to(torch.float32).contiguous()
        info["router_min_topk_margin"] = router_checks(torch, out.router_logits, cfg.num_experts_per_tok,
                                                       cfg.num_experts)
        ref = aux_loss_reference(torch, out.router_logits, cfg.num_experts_per_tok, cfg.num_experts)
        if not abs(ref - aux.item()) <= 1e-6 * abs(ref):
            die(f"{name}: aux_loss {aux.item()!r} != documented formula {ref!r}")
        info["aux_loss_formula_float64"] = ref
    elif not torch.equal(out.loss.detach(), ce):
        die(f"{name}: loss != ce_loss")

    model.zero_grad(set_to_none=True)
    out.loss.backward()

    pack_diff, mask4d_diff = prove_packing(torch, model, batch, segments, logits, moe)
    info["pack_proof_max_abs_diff"] = pack_diff
    info["mask4d_route_max_abs_diff"] = mask4d_diff

    # Save the model, then key gradients by the tensors actually in model.safetensors.
    out_dir = os.path.join(DATA_DIR, name)
    if os.path.isdir(out_dir):
        shutil.rmtree(out_dir)
    model.save_pretrained(out_dir)  # transformers v5: always safetensors, legacy per-expert keys
    gen_cfg = os.path.join(out_dir, "generation_config.json")
    if os.path.exists(gen_cfg):
        with open(gen_cfg) as f:
            gc = json.load(f)
        boring = {"_from_model_config", "transformers_version", "output_attentions", "output_hidden_states",
                  "use_cache", "bos_token_id", "eos_token_id", "pad_token_id"}
        if set(gc) <= boring and all(gc.get(k) is None for k in ("bos_token_id", "eos_token_id", "pad_token_id")):
            os.remove(gen_cfg)
    saved = load_file(os.path.join(out_dir, "model.safetensors"))
    for key, t in saved.items():
        if t.dtype != torch.float32:
            die(f"{name}: {key} saved as {t.dtype}, expected float32")
    tensors.update(checkpoint_grads(torch, model, saved))

    # The saved directory, reloaded the way check mode loads an export, reproduces everything.
    reloaded = load_export(torch, transformers, out_dir)
    with torch.no_grad():
        out2 = forward(reloaded, batch, moe)
    if not torch.equal(out2.logits, logits) or not torch.equal(out2.loss, out.loss.detach()):
        die(f"{name}: reloading {out_dir} does not reproduce the logits/loss bit-for-bit")

    # Informational: the two ways transformers silently lets tokens attend across samples.
    with torch.no_grad():
        kw = dict(input_ids=batch["input_ids"], position_ids=batch["position_ids"])
        if moe:
            kw["output_router_logits"] = False
        info["leak_with_cache_max_abs_diff"] = (model(**kw, use_cache=True).logits - logits).abs().max().item()
        ones = torch.ones(BATCH, SEQ, dtype=torch.int64)
        info["leak_with_2d_mask_max_abs_diff"] = (
            model(**kw, use_cache=False, attention_mask=ones).logits - logits).abs().max().item()

    if moe:  # Informational: the 4D-mask route breaks transformers' aux loss.
        try:
            with torch.no_grad():
                model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], attention_mask=mask4d_of(
                    torch, segments), use_cache=False, output_router_logits=True)
            info["aux_loss_with_4d_mask"] = "no error"
        except RuntimeError as e:
            info["aux_loss_with_4d_mask"] = f"RuntimeError: {e}"

    # Informational: transformers' default kernels (sdpa attention, grouped_mm experts).
    model.set_attn_implementation("sdpa")
    if moe:
        model.set_experts_implementation("grouped_mm")
    with torch.no_grad():
        info["default_kernels_max_abs_diff"] = (forward(model, batch, moe).logits - logits).abs().max().item()

    expected_path = os.path.join(out_dir, "expected.safetensors")
    save_file({k: v.contiguous() for k, v in tensors.items()}, expected_path,
              # One key only: safetensors writes metadata from a hash map, so several keys
              # come out in a different order on every run.
              metadata={"golden": f"{name} (transformers {transformers.__version__})"})

    n_params = sum(p.numel() for p in model.parameters())
    files = {}
    for fn in sorted(os.listdir(out_dir)):
        fp = os.path.join(out_dir, fn)
        files[fn] = {"bytes": os.path.getsize(fp), "sha256": sha256(fp)}
    entry = {
        "class": cls_name,
        "model_type": cfg.model_type,
        "param_seed": seed,
        "num_parameters": n_params,
        "tie_word_embeddings": bool(cfg.tie_word_embeddings),
        "loss": tensors["loss"].item(),
        "ce_loss": tensors["ce_loss"].item(),
        "files": files,
        "expected_keys": sorted(tensors),
    }
    if moe:
        entry["aux_loss"] = tensors["aux_loss"].item()
        entry["router_aux_loss_coef"] = cfg.router_aux_loss_coef
    entry.update(info)
    print(f"{name:10s} loss {entry['loss']:.6f} ce {entry['ce_loss']:.6f}"
          + (f" aux {entry['aux_loss']:.6f} router-margin {info['router_min_topk_margin']:.3g}" if moe else "")
          + f"  pack-proof {pack_diff:.2e}  4D-mask {mask4d_diff:.2e}"
          + f"  sdpa/grouped_mm {info['default_kernels_max_abs_diff']:.2e}"
          + f"  leak(cache) {info['leak_with_cache_max_abs_diff']:.2f} leak(2D mask) {info['leak_with_2d_mask_max_abs_diff']:.2f}")
    return entry


def generate():
    t0 = time.time()
    torch, transformers, safetensors, load_file, save_file = import_stack()
    batch, segments = build_batch(torch)
    os.makedirs(DATA_DIR, exist_ok=True)
    models = {}
    for name in MODELS:
        models[name] = generate_one(torch, transformers, load_file, save_file, name, batch, segments)

    import numpy
    manifest = {
        "description": "tessera golden files from Hugging Face transformers; see tests/golden/README.md",
        "generator": "tests/golden/generate.py",
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "safetensors": safetensors.__version__,
            "numpy": numpy.__version__,
        },
        "settings": {
            "attn_implementation": ATTN_IMPLEMENTATION,
            "experts_implementation": EXPERTS_IMPLEMENTATION,
            "torch_num_threads": 1,
            "dtype": "float32",
            "use_cache": False,
            "attention_mask": None,
            "packing": "position_ids restart at 0 -> transformers builds a block-diagonal causal mask",
        },
        "seeds": {"data": DATA_SEED, **{n: MODELS[n][1] for n in MODELS}},
        "init": {"weights_std": COMMON["initializer_range"], "norm_weight_uniform": list(NORM_WEIGHT_RANGE),
                 "bias_std": BIAS_STD},
        "batch": {
            "batch": BATCH, "seq": SEQ, "vocab": VOCAB,
            "row_sample_lengths": [list(r) for r in ROW_LENGTHS],
            "cu_seqlens": batch["cu_seqlens"].tolist(),
            "ignore_index": IGNORE_INDEX,
            "extra_ignored_labels": [list(x) for x in EXTRA_IGNORED],
            "num_loss_tokens": int((batch["labels"][:, 1:] != IGNORE_INDEX).sum()),
        },
        "sizes": {k: COMMON[k] for k in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                                         "num_attention_heads", "num_key_value_heads", "head_dim",
                                         "max_position_embeddings")},
        "models": models,
    }
    manifest["sizes"].update(num_experts=8, num_experts_per_tok=2, moe_intermediate_size=32)
    with open(os.path.join(DATA_DIR, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)
        f.write("\n")
    total = sum(os.path.getsize(os.path.join(dp, fn)) for dp, _, fns in os.walk(DATA_DIR) for fn in fns)
    print(f"wrote {DATA_DIR} ({total / 1e6:.2f} MB) in {time.time() - t0:.1f} s")
    if total >= 5_000_000:
        die(f"golden data is {total} bytes; keep it under 5 MB")
    return 0


# ---------------------------------------------------------------------------------------
# Check mode
# ---------------------------------------------------------------------------------------
def load_export(torch, transformers, directory):
    with open(os.path.join(directory, "config.json")) as f:
        model_type = json.load(f).get("model_type", "")
    kwargs = dict(dtype=torch.float32, attn_implementation=ATTN_IMPLEMENTATION)
    if "moe" in model_type:
        kwargs["experts_implementation"] = EXPERTS_IMPLEMENTATION
    model = transformers.AutoModelForCausalLM.from_pretrained(directory, **kwargs)
    model.train()
    return model


def check_export(directory, golden, quiet=False):
    torch, transformers, _, load_file, _ = import_stack()
    expected_path = os.path.join(DATA_DIR, golden, "expected.safetensors")
    if not os.path.isfile(expected_path):
        die(f"no golden named {golden!r} ({expected_path} missing); known: {', '.join(MODELS)}", 2)
    if not os.path.isfile(os.path.join(directory, "config.json")):
        die(f"{directory} is not a Hugging Face model directory (no config.json)", 2)
    exp = load_file(expected_path)
    batch = {k: exp[k] for k in ("input_ids", "position_ids", "labels")}
    try:
        model = load_export(torch, transformers, directory)
    except Exception as e:  # noqa: BLE001 - report any loader failure as a load error
        die(f"cannot load {directory}: {type(e).__name__}: {e}", 2)
    moe = "aux_loss" in exp
    with torch.no_grad():
        out = forward(model, batch, moe)
    if out.logits.shape != exp["logits"].shape:
        die(f"logits shape {tuple(out.logits.shape)} != golden {tuple(exp['logits'].shape)}", 1)
    ok = True
    rows = [("logits", out.logits, exp["logits"]), ("loss", out.loss.reshape(()), exp["loss"])]
    for what, got, want in rows:
        abs_err = (got - want).abs().max().item()
        scale = want.abs().max().item()
        rel_err = abs_err / scale if scale > 0 else abs_err
        bad = not (rel_err <= CHECK_REL_TOL)  # also catches NaN
        ok &= not bad
        if not quiet or bad:
            print(f"{golden}: {what:6s} max abs err {abs_err:.3e}  max rel err {rel_err:.3e} "
                  f"(max|err| / max|golden|, limit {CHECK_REL_TOL:g})  {'FAIL' if bad else 'ok'}")
    return 0 if ok else 1


def self_test():
    torch, _, _, load_file, save_file = import_stack()
    failures = []
    for name in MODELS:
        src = os.path.join(DATA_DIR, name)
        if check_export(src, name) != 0:
            failures.append(f"{name}: golden dir itself fails")
        with tempfile.TemporaryDirectory() as tmp:
            dst = os.path.join(tmp, name)
            shutil.copytree(src, dst)
            st = os.path.join(dst, "model.safetensors")
            tensors = load_file(st)
            key = sorted(k for k in tensors if "layers.1" in k and k.endswith("o_proj.weight"))[0]
            tensors[key] = tensors[key] * (1 + 1e-3)
            save_file(tensors, st, metadata={"format": "pt"})
            print(f"{name}: perturbed {key} by 1e-3 (relative):")
            if check_export(dst, name) == 0:
                failures.append(f"{name}: perturbed copy passes")
    for f in failures:
        print(f"SELF-TEST FAIL: {f}")
    print("self-test", "FAILED" if failures else "passed")
    return 1 if failures else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--check-export", metavar="DIR",
                    help="HF model directory (config.json + safetensors) to compare with a golden")
    ap.add_argument("--golden", metavar="NAME", choices=list(MODELS), help="which golden batch/results to compare with")
    ap.add_argument("--self-test", action="store_true",
                    help="check mode on every golden dir (must pass) and on perturbed copies (must fail)")
    args = ap.parse_args()
    if args.check_export or args.golden:
        if not (args.check_export and args.golden):
            ap.error("--check-export and --golden go together")
        return check_export(args.check_export, args.golden)
    if args.self_test:
        return self_test()
    return generate()


if __name__ == "__main__":
    sys.exit(main())
