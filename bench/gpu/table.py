"""The short table at the end of bench/gpu/check.sh: the CUDA tests (passed / failed / skipped, failing names)
and, per model, tessera vs PyTorch tokens/s, their ratio, MFU of both and peak memory (tessera, its plan,
PyTorch). Tolerates missing files, error lines and missing fields: whatever is absent prints as "-".

usage: python3 bench/gpu/table.py RESULTS.jsonl [TESTS.xml ...]
  Beside each TESTS.xml it also reads TESTS-rerun.xml and TESTS.log (the log is the fallback when the
  binary died before writing its XML, and names a test it crashed in: "[  CRASHED ] name").

MFU = tokens_per_s · flops_per_token / (gemm peak TFLOP/s · 1e12), with flops_per_token from tessera's
line (tessera plan's 6N + 12·L·H·Q·T) for both, falling back to torch_step.py's same formula; the
denominator is the measured bf16 GEMM peak of this GPU (tessera_gpu_bench --gemm-peak), not the datasheet.
"""
import json
import math
import os
import re
import sys
import xml.etree.ElementTree as ET


def num(x):
    return x if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) else None


def fmt(x, spec, suffix=""):
    x = num(x)
    return "-" if x is None else format(x, spec) + suffix


def read_results(path):
    lines, bad = [], 0
    try:
        with open(path, errors="replace") as f:
            for raw in f:
                raw = raw.strip()
                if not raw:
                    continue
                try:
                    obj = json.loads(raw)
                except ValueError:
                    bad += 1
                    continue
                if isinstance(obj, dict):
                    lines.append(obj)
    except OSError as e:
        print(f"results: cannot read {path}: {e.strerror}")
    if bad:
        print(f"results: {bad} line(s) of {path} are not JSON")
    return lines


def tests_from_xml(path):
    """{name: status} from a gtest XML file, or None when it is missing or unreadable."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return None
    out = {}
    for tc in root.iter("testcase"):
        name = f"{tc.get('classname', '?')}.{tc.get('name', '?')}"
        if tc.find("failure") is not None or tc.find("error") is not None:
            out[name] = "failed"
        elif tc.find("skipped") is not None or tc.get("status") == "notrun" or tc.get("result") == "skipped":
            out[name] = "skipped"
        else:
            out[name] = "passed"
    return out


LOG_LINE = re.compile(r"^\[\s*(OK|FAILED|SKIPPED|CRASHED)\s*\] (\S+?),? (\(|where )")
CRASH_LINE = re.compile(r"^\[\s*CRASHED\s*\] (\S+)")


def tests_from_log(path):
    """{name: status} from gtest's console output (per-test result lines only, not the summary)."""
    out = {}
    try:
        text = open(path, errors="replace").read()
    except OSError:
        return None
    for line in text.splitlines():
        m = LOG_LINE.match(line)
        if m:
            out[m.group(2)] = {"OK": "passed", "FAILED": "failed", "SKIPPED": "skipped"}.get(m.group(1), "crashed")
            continue
        m = CRASH_LINE.match(line)
        if m and m.group(1) != "?":
            out[m.group(1)] = "crashed"
    return out


def tests_summary(xml_paths):
    status, notes = {}, []
    for xml in xml_paths:
        stem = xml[:-4] if xml.endswith(".xml") else xml
        log = stem + ".log"
        rerun = stem + "-rerun.xml"
        got = tests_from_xml(xml)
        from_log = tests_from_log(log) if os.path.exists(log) else None
        if got is None and from_log is None:
            notes.append(f"no test results ({os.path.basename(xml)} and {os.path.basename(log)} missing)")
            continue
        if got is None:
            notes.append(f"{os.path.basename(xml)} missing: counted from {os.path.basename(log)}")
            got = from_log
        else:
            # the log may name a crash the XML cannot hold
            for k, v in (from_log or {}).items():
                if v == "crashed":
                    got[k] = v
        status.update(got)
        if os.path.exists(rerun):
            again = tests_from_xml(rerun)
            if again is None:
                notes.append(f"{os.path.basename(rerun)} unreadable")
            else:
                status.update({k: v for k, v in again.items() if k not in status or status[k] != "crashed"})
                notes.append(f"includes the rerun after the crash ({len(again)} tests)")
    return status, notes


def key_of(obj):
    return obj.get("config") or obj.get("model") or "?"


def pick(lines, kind, key=None):
    """The last line of this kind (for this config, or model name when a line has no config)."""
    found = None
    for obj in lines:
        if obj.get("kind") == kind and (key is None or key_of(obj) == key):
            found = obj
    return found


def main(argv):
    if len(argv) < 2:
        print(__doc__)
        return 2
    lines = read_results(argv[1])
    xmls = argv[2:]

    # --- tests
    if xmls:
        status, notes = tests_summary(xmls)
        counts = {k: sum(1 for v in status.values() if v == k) for k in ("passed", "failed", "crashed", "skipped")}
        print(f"CUDA tests: {counts['passed']} passed, {counts['failed']} failed"
              + (f", {counts['crashed']} crashed" if counts["crashed"] else "")
              + f", {counts['skipped']} skipped" + (f"  ({'; '.join(notes)})" if notes else ""))
        bad = sorted(k for k, v in status.items() if v in ("failed", "crashed"))
        for name in bad[:40]:
            print(f"  {status[name].upper():8s} {name}")
        if len(bad) > 40:
            print(f"  ... and {len(bad) - 40} more")

    # --- GEMM peak
    gp = pick(lines, "gemm_peak")
    peak = num(gp.get("tflops")) if gp else None
    if gp is None:
        print("GEMM peak: no line")
    elif peak is None:
        print(f"GEMM peak: {gp.get('error', 'no tflops field')}")
    else:
        print(f"GEMM peak: {peak:.1f} TFLOP/s (bf16, measured; the MFU denominator)")

    # --- per model: configs in the order first seen
    configs = []
    for obj in lines:
        if obj.get("kind") in ("train_step", "torch_step"):
            key = key_of(obj)
            if key not in configs:
                configs.append(key)
    if not configs:
        print("no train_step / torch_step lines")
        return 0

    head = (f"{'model':<14} {'params':>7} {'tokens':>6} | {'tessera tok/s':>13} {'torch tok/s':>11} {'ratio':>6} | "
            f"{'MFU tess':>8} {'MFU torch':>9} | {'mem GiB: tessera':>16} {'plan':>6} {'torch':>6} | loss first→last")
    print()
    print(head)
    print("-" * len(head))
    errors = []
    for key in configs:
        te = pick(lines, "train_step", key) or {}
        to = pick(lines, "torch_step", key) or {}
        name = te.get("model") or to.get("model") or os.path.splitext(os.path.basename(key))[0]
        params = num(te.get("params")) or num(to.get("params"))
        tokens = num(te.get("tokens")) or num(to.get("tokens"))
        t_tps, p_tps = num(te.get("tokens_per_s")), num(to.get("tokens_per_s"))
        if "error" in te:
            t_tps = None
            errors.append(f"{name}: tessera: {te['error']}")
        elif not te:
            errors.append(f"{name}: tessera: no line")
        if "error" in to:
            p_tps = None
            errors.append(f"{name}: torch: {to['error']}")
        elif not to:
            errors.append(f"{name}: torch: no line")
        fpt = num(te.get("flops_per_token")) or num(to.get("flops_per_token_torch"))
        ratio = t_tps / p_tps if t_tps and p_tps else None

        def mfu(tps):
            return 100 * tps * fpt / (peak * 1e12) if tps and fpt and peak else None

        m_t, m_p = mfu(t_tps), mfu(p_tps)
        loss = (f"{fmt(te.get('loss_first'), '.3f')}→{fmt(te.get('loss_last'), '.3f')} "
                f"(torch {fmt(to.get('loss_first'), '.3f')}→{fmt(to.get('loss_last'), '.3f')})")
        print(f"{name[:14]:<14} {fmt(params / 1e9 if params else None, '.3f', 'B'):>7} {fmt(tokens, '.0f'):>6} | "
              f"{fmt(t_tps, ',.0f'):>13} {fmt(p_tps, ',.0f'):>11} {fmt(ratio, '.2f', 'x'):>6} | "
              f"{fmt(m_t, '.1f', '%'):>8} {fmt(m_p, '.1f', '%'):>9} | "
              f"{fmt(te.get('peak_mem_gib'), '.2f'):>16} {fmt(te.get('plan_gib'), '.2f'):>6} "
              f"{fmt(to.get('peak_mem_gib'), '.2f'):>6} | {loss}")
        extra = []
        if num(te.get("step_ms")) or num(to.get("step_ms")):
            extra.append(f"step ms tessera {fmt(te.get('step_ms'), '.1f')}, torch {fmt(to.get('step_ms'), '.1f')}")
        if fpt:
            src = "tessera" if num(te.get("flops_per_token")) else "torch_step"
            extra.append(f"{fpt / 1e9:.3f} GFLOP/token ({src})")
        if num(te.get("flops_per_token")) and num(to.get("flops_per_token_torch")):
            d = abs(te["flops_per_token"] - to["flops_per_token_torch"]) / te["flops_per_token"]
            if d > 0.01:
                extra.append(f"!! torch_step's FLOPs/token differs by {100 * d:.1f}%")
        if params and num(to.get("params")) and num(te.get("params")) and te["params"] != to["params"]:
            extra.append(f"!! params differ: tessera {te['params']}, torch {to['params']}")
        if num(te.get("tokens")) and num(to.get("tokens")) and abs(te["tokens"] - to["tokens"]) > 0.01 * to["tokens"]:
            extra.append(f"!! tokens per step differ: tessera {te['tokens']}, torch {to['tokens']}")
        if to.get("finite") is False or te.get("finite") is False:
            extra.append("!! non-finite loss")
        if extra:
            print(f"{'':<14} {'; '.join(extra)}")
        phases = te.get("phases_ms")
        if isinstance(phases, dict) and phases:
            total = sum(v for v in phases.values() if num(v)) or 1.0
            parts = [f"{k} {v:.1f} ({100 * v / total:.0f}%)" for k, v in phases.items() if num(v)]
            print(f"{'':<14} tessera ms/step by phase: {', '.join(parts)}")
    if errors:
        print()
        for e in errors:
            print(f"  error  {e[:300]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
