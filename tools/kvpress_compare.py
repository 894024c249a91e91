#!/usr/bin/env python3
"""Compares this engine's KVzip scores with kvpress' on the same samples (tools/, off the runtime
path; docs/FIDELITY.md).

Inputs: the samples file of `kvzip eval --dump-samples`, our scores (`--dump-scores DIR`) and the
reference's (tools/kvpress_reference.py --scores-out DIR), both float32 [layers, KV heads, context]
per sample. For each sample: Spearman's rho of the pair scores over all pairs and per layer, the
kept-set overlap at kept ratios 0.3 and 0.1 (both sides pruned by the same rule, KVzip's global
threshold over the context pairs: the top ratio x pairs; overlap = |ours & theirs| / |theirs|),
and the first (chunk, layer, head) in that order whose Spearman over the chunk's positions is
below --rho (with the worst one).

With --acc-ours FILE --acc-ref FILE instead: the accuracy of every (method, ratio) of our
`kvzip eval --out` rows next to the reference's (kvpress_reference.py --answers-out), absolute, with
the number of queries and the 95 % Wilson interval.

Usage: python3 tools/kvpress_compare.py --samples S.jsonl --ours DIR --ref DIR [--json OUT]
       python3 tools/kvpress_compare.py --acc-ours OURS.jsonl --acc-ref REF.jsonl
"""
from __future__ import annotations

import argparse
import json
import os

import numpy as np


def ranks(x: np.ndarray) -> np.ndarray:
    """Ranks along the last axis, ties averaged."""
    order = np.argsort(x, kind="mergesort")
    xs = np.take_along_axis(x, order, -1)
    r = np.empty_like(x, dtype=np.float64)
    flat_x, flat_o, flat_r = xs.reshape(-1, x.shape[-1]), order.reshape(-1, x.shape[-1]), r.reshape(-1, x.shape[-1])
    for row in range(flat_x.shape[0]):
        v = flat_x[row]
        start = np.r_[0, np.flatnonzero(v[1:] != v[:-1]) + 1]
        end = np.r_[start[1:], len(v)]
        avg = np.repeat((start + end - 1) / 2.0, end - start)
        flat_r[row, flat_o[row]] = avg
    return r


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = ranks(a.ravel()[None])[0], ranks(b.ravel()[None])[0]
    ra -= ra.mean()
    rb -= rb.mean()
    d = np.sqrt((ra * ra).sum() * (rb * rb).sum())
    return float((ra * rb).sum() / d) if d > 0 else 1.0


def kept_mask(s: np.ndarray, ratio: float) -> np.ndarray:
    k = int(round(ratio * s.size))
    flat = s.ravel()
    idx = np.argpartition(-flat, k - 1)[:k] if k > 0 else np.array([], dtype=np.int64)
    m = np.zeros(flat.size, dtype=bool)
    m[idx] = True
    return m


def compare(sample: dict, ours: np.ndarray, ref: np.ndarray, rho_min: float) -> dict:
    L, H, n = ours.shape
    P = len(sample["prefix_ids"])
    out = {"index": sample["index"], "task": sample["task"], "n_context": n, "shape": [L, H, n],
           "chunks": len(sample["scoring"]["chunks"]), "spearman": spearman(ours, ref),
           "spearman_per_layer": [spearman(ours[l], ref[l]) for l in range(L)],
           "max_abs_diff": float(np.abs(ours - ref).max()),
           "max_rel_diff": float((np.abs(ours - ref) / np.maximum(np.abs(ref), 1e-6)).max())}
    for r in (0.3, 0.1):
        mo, mr = kept_mask(ours, r), kept_mask(ref, r)
        out[f"overlap_{r}"] = float((mo & mr).sum() / max(mr.sum(), 1))
    first = worst = None
    for t, c in enumerate(sample["scoring"]["chunks"]):
        a, b = c["start"] - P, c["end"] - P
        for l in range(L):
            for h in range(H):
                rho = spearman(ours[l, h, a:b], ref[l, h, a:b])
                cell = {"chunk": t, "layer": l, "head": h, "spearman": rho}
                if rho < rho_min and first is None:
                    first = cell
                if worst is None or rho < worst["spearman"]:
                    worst = cell
    out["first_below"] = first
    out["worst_chunk_layer_head"] = worst
    return out


def wilson(k: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion k / n."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return max(0.0, c - h), min(1.0, c + h)


def read_rows(path: str) -> dict:
    """(method, ratio) -> {sample: ok list}; a later row of the same cell replaces an earlier one."""
    cells: dict = {}
    for line in open(path):
        if line.strip():
            r = json.loads(line)
            cells.setdefault((r["method"], round(float(r["ratio"]), 4)), {})[r["sample"]] = r["ok"]
    return cells


def accuracy(ours_path: str, ref_path: str):
    ours, ref = read_rows(ours_path), read_rows(ref_path)
    print("| method | ratio | ours: acc % (n) [95 % CI] | kvpress: acc % (n) [95 % CI] | ours - kvpress |")
    print("|---|---|---|---|---|")

    def cell(c, samples):
        ok = [x for smp in samples for x in c.get(smp, [])]
        k, n = float(sum(ok)), len(ok)
        lo, hi = wilson(k, n)
        return (100 * k / n if n else float("nan")), n, f"{100 * k / n if n else float('nan'):.1f} ({n}) [{100 * lo:.1f}, {100 * hi:.1f}]"

    for key in sorted(set(ours) | set(ref), key=lambda k: (k[0] != "full", k[0], k[1])):
        o, r = ours.get(key, {}), ref.get(key, {})
        both = sorted(set(o) & set(r))  # the samples both sides answered
        if not both:  # a cell one side has no rows for (e.g. our ratio 1.0 rows)
            continue
        ao, _, so = cell(o, both)
        ar, _, sr = cell(r, both)
        print(f"| {key[0]} | {key[1]} | {so} | {sr} | {ao - ar:+.1f} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--samples")
    ap.add_argument("--ours")
    ap.add_argument("--ref")
    ap.add_argument("--acc-ours", help="kvzip eval --out rows")
    ap.add_argument("--acc-ref", help="kvpress_reference.py --answers-out rows")
    ap.add_argument("--rho", type=float, default=0.99, help="the first (chunk, layer, head) below this is reported")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    if args.acc_ours:
        return accuracy(args.acc_ours, args.acc_ref)
    if not (args.samples and args.ours and args.ref):
        ap.error("--samples, --ours and --ref (or --acc-ours and --acc-ref)")
    rows = []
    shape = json.load(open(os.path.join(args.ref, "shape.json")))  # written by kvpress_reference.py
    print("| sample | task | context tokens | chunks | Spearman (all pairs) | worst layer's | overlap at 0.3 |"
          " overlap at 0.1 | first (chunk, layer, head) below |")
    print("|---|---|---|---|---|---|---|---|---|")
    for line in open(args.samples):
        if not line.strip():
            continue
        s = json.loads(line)
        fo, fr = (os.path.join(d, f"{s['index']}.f32") for d in (args.ours, args.ref))
        if not (os.path.exists(fo) and os.path.exists(fr)):
            continue
        n = len(s["context_ids"])
        ours, ref = np.fromfile(fo, "<f4"), np.fromfile(fr, "<f4")
        if ours.size != ref.size or ours.size % n:
            raise SystemExit(f"sample {s['index']}: {ours.size} vs {ref.size} scores for {n} context tokens")
        L, H = shape["layers"], shape["kv_heads"]
        r = compare(s, ours.reshape(L, H, n), ref.reshape(L, H, n), args.rho)
        rows.append(r)
        f = r["first_below"]
        print(f"| {r['index']} | {r['task']} | {n} | {r['chunks']} | {r['spearman']:.5f} | "
              f"{min(r['spearman_per_layer']):.5f} | {r['overlap_0.3']:.4f} | {r['overlap_0.1']:.4f} | "
              f"{'none' if f is None else '({chunk}, {layer}, {head}) {spearman:.4f}'.format(**f)} |")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)


if __name__ == "__main__":
    main()
