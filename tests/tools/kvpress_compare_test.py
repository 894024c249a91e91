#!/usr/bin/env python3
"""tools/kvpress_compare.py's rules on data whose answers are known by hand (tests/tools): ranks with
ties, Spearman against its closed form, the kept-set overlap, the first (chunk, layer, head) below
the threshold, the Wilson interval, and the accuracy table over the samples both sides answered.
Exit 77 (skipped) when numpy is missing."""
import json
import os
import subprocess
import sys
import tempfile

try:
    import numpy as np
except ImportError:
    sys.exit(77)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import kvpress_compare as kc  # noqa: E402


def check(cond, what):
    if not cond:
        raise SystemExit(f"FAILED: {what}")


# Ranks: ties share the mean of their positions.
check(kc.ranks(np.array([[3.0, 1.0, 3.0, 2.0]]))[0].tolist() == [2.5, 0.0, 2.5, 1.0], "ranks with ties")
# Spearman without ties: 1 - 6 sum d^2 / (n (n^2 - 1)); here d = (0, 1, -1, 0, 0) -> 1 - 12 / 120.
a, b = np.array([1.0, 2, 3, 4, 5]), np.array([10.0, 30, 20, 40, 50])
check(abs(kc.spearman(a, b) - 0.9) < 1e-12, "Spearman's closed form")
check(abs(kc.spearman(a, -a) + 1) < 1e-12, "Spearman of a reversed order")
# Kept sets: the top round(ratio x size) scores.
s = np.array([0.9, 0.1, 0.5, 0.7, 0.3, 0.2, 0.8, 0.4, 0.6, 0.0])
check(np.flatnonzero(kc.kept_mask(s, 0.3)).tolist() == [0, 3, 6], "kept set at 0.3")
# Wilson: 81 / 263 -> [0.2553, 0.3662] (Newcombe 1998, table I).
lo, hi = kc.wilson(81, 263)
check(abs(lo - 0.2553) < 5e-4 and abs(hi - 0.3662) < 5e-4, f"Wilson interval {lo} {hi}")

with tempfile.TemporaryDirectory() as tmp:
    L, H, P, n = 2, 2, 3, 40
    rng = np.random.default_rng(1)
    ours = rng.random((L, H, n)).astype("<f4")
    ref = ours.copy()
    ref[1, 0, 25:35] = ours[1, 0, 25:35][::-1]  # reversed inside chunk 1 (positions 20..39) only
    sample = {"index": 0, "task": "t", "prefix_ids": [0] * P, "context_ids": [1] * n,
              "scoring": {"chunks": [{"start": P, "end": P + 20, "sink": P, "repeat_ids": []},
                                     {"start": P + 20, "end": P + n, "sink": P, "repeat_ids": []}]}}
    os.makedirs(f"{tmp}/o")
    os.makedirs(f"{tmp}/r")
    ours.tofile(f"{tmp}/o/0.f32")
    ref.tofile(f"{tmp}/r/0.f32")
    json.dump({"layers": L, "kv_heads": H}, open(f"{tmp}/r/shape.json", "w"))
    open(f"{tmp}/s.jsonl", "w").write(json.dumps(sample) + "\n")
    tool = os.path.join(ROOT, "tools", "kvpress_compare.py")
    subprocess.run([sys.executable, tool, "--samples", f"{tmp}/s.jsonl", "--ours", f"{tmp}/o", "--ref",
                    f"{tmp}/r", "--json", f"{tmp}/out.json"], check=True, stdout=subprocess.DEVNULL)
    r = json.load(open(f"{tmp}/out.json"))[0]
    check(r["first_below"]["chunk"] == 1 and r["first_below"]["layer"] == 1 and r["first_below"]["head"] == 0,
          f"first (chunk, layer, head) below: {r['first_below']}")
    check(r["spearman_per_layer"][0] == 1.0 and r["spearman_per_layer"][1] < 1.0, "per-layer Spearman")
    want = kc.spearman(ours[1, 0, 20:], ref[1, 0, 20:])
    check(abs(r["first_below"]["spearman"] - want) < 1e-12, "the chunk's Spearman")

    # Accuracy: only the samples both sides answered count (sample 1 has no reference row).
    rows_o = [{"method": "full", "ratio": 1.0, "sample": 0, "ok": [1, 1]},
              {"method": "full", "ratio": 1.0, "sample": 1, "ok": [0, 0]},
              {"method": "kvzip", "ratio": 0.3, "sample": 0, "ok": [1, 0]}]
    rows_r = [{"method": "full", "ratio": 1.0, "sample": 0, "ok": [1, 1]},
              {"method": "kvzip", "ratio": 0.3, "sample": 0, "ok": [1, 1]}]
    for name, rows in (("o", rows_o), ("r", rows_r)):
        open(f"{tmp}/{name}.jsonl", "w").write("".join(json.dumps(x) + "\n" for x in rows))
    out = subprocess.run([sys.executable, tool, "--acc-ours", f"{tmp}/o.jsonl", "--acc-ref", f"{tmp}/r.jsonl"],
                         check=True, capture_output=True, text=True).stdout
    check("| full | 1.0 | 100.0 (2) [34.2, 100.0] | 100.0 (2) [34.2, 100.0] | +0.0 |" in out, f"full row:\n{out}")
    check("| kvzip | 0.3 | 50.0 (2) [9.5, 90.5] | 100.0 (2) [34.2, 100.0] | -50.0 |" in out, f"kvzip row:\n{out}")
print("kvpress_compare: all checks passed")
