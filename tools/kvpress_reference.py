#!/usr/bin/env python3
"""Reference run of NVIDIA kvpress on the samples `kvzip eval --dump-samples` wrote (tools/, off the
runtime path; docs/FIDELITY.md).

The GGUF this engine runs is loaded by transformers (`gguf_file=`, dequantised to float32, sdpa
attention), so both sides run the same weights on the same token ids:

- scores: kvpress' KVzipPress scoring on exactly our inputs. Its `prepare` is replaced by one that
  returns the reconstruction inputs of the dump (our prompts, our chunks) and its `n_sink` is the
  system prefix length (our sink rule); everything else (the prefill, the per-layer hook, the
  query recomputation, RoPE, softmax, max over the group and the queries) is kvpress' own code.
  Writes DIR/<index>.f32: float32 [layers, KV heads, context] (context positions only).
- answers: every query of every sample answered greedily after a prefill under a kvpress press
  (kvzip: the same scoring, kvpress' own `compress_post` bottom-k with the prefix forced kept, at a
  compression ratio that removes exactly (1 - ratio) of the context pairs; snapkv: kvpress'
  SnapKVPress with its defaults, window = the last 64 prefilled tokens) and from the full cache.
  Writes JSON lines in the row format of `kvzip eval` (sample, method, ratio, ok, predictions), so
  that `kvzip eval --report` and tools/kvpress_compare.py read them.

Usage (on a machine with torch; the wheels kvpress, gguf and transformers<5.3):
  python3 tools/kvpress_reference.py --model M.gguf --samples S.jsonl [--scores-out DIR]
      [--answers-out FILE --methods kvzip,snapkv --ratios 0.1,0.3,0.5] [--only 0,1] [--cache DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import string
import sys
import time
import types
from pathlib import Path

import torch


def stub_missing(names):
    """kvpress imports a few packages at import time that its KVzip/SnapKV code never uses."""
    for name in names:
        try:
            __import__(name)
        except ImportError:
            mod = types.ModuleType(name)
            mod.load_dataset = None
            mod.Fire = None
            sys.modules[name] = mod


def load_model(gguf: str, cache_dir: str | None, device: str):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(gguf)
    if cache_dir and (Path(cache_dir) / "config.json").exists():
        model = AutoModelForCausalLM.from_pretrained(cache_dir, dtype=torch.float32, attn_implementation="sdpa")
        tok = AutoTokenizer.from_pretrained(cache_dir)
    else:
        kw = dict(gguf_file=path.name)
        model = AutoModelForCausalLM.from_pretrained(str(path.parent), dtype=torch.float32,
                                                     attn_implementation="sdpa", **kw)
        tok = AutoTokenizer.from_pretrained(str(path.parent), **kw)
        if cache_dir:
            model.save_pretrained(cache_dir)
            tok.save_pretrained(cache_dir)
    return model.to(device).eval(), tok


class _NoTemplateTokenizer:
    """What KVzipPress.__call__ asks of a tokenizer when `prepare` is ours: no chat template, so its
    prefix is empty and its suffix unused (our reconstruction inputs carry theirs)."""

    chat_template = None

    @staticmethod
    def encode(text, return_tensors=None, add_special_tokens=False):
        return torch.zeros((1, 0), dtype=torch.long)

    @classmethod
    def from_pretrained(cls, *_a, **_k):
        return cls()


def make_press_class():
    import kvpress.presses.kvzip_press as kz
    from kvpress import KVzipPress

    kz.AutoTokenizer = _NoTemplateTokenizer

    class DumpKVzipPress(KVzipPress):
        """KVzipPress fed the dump's reconstruction inputs; records the scores before pruning."""

        def setup(self, sample: dict, prune: bool):
            self.sample, self.prune, self.recorded = sample, prune, None
            return self

        def prepare(self, model, tokenizer, prev_postfix_size=8):
            s = self.sample
            P = len(s["prefix_ids"])
            self.prefix_length = P  # kvpress scores [prefix_length, context_length)
            self.score_val = torch.zeros((model.config.num_hidden_layers, 1, model.config.num_key_value_heads,
                                          self.context_length), dtype=model.dtype, device=model.device)
            ctx = s["context_ids"]
            pairs = []
            for c in s["scoring"]["chunks"]:
                assert c["sink"] == self.n_sink, "the dump's sink rule must be the press' n_sink"
                a_ids = torch.tensor([ctx[c["start"] - P:c["end"] - P]], dtype=torch.long)
                pairs.append((a_ids, torch.tensor([c["repeat_ids"]], dtype=torch.long)))
            return pairs

        def compress_post(self, model):
            self.recorded = self.score_val[:, 0].float().cpu().clone()  # [L, H, N]
            if self.prune:
                super().compress_post(model)

    return DumpKVzipPress


def clear_masks(model):
    for layer in model.model.layers:
        layer.self_attn.masked_key_indices = None


def prefill(model, ids, press, device):
    from transformers import DynamicCache

    cache = DynamicCache()
    x = torch.tensor([ids], dtype=torch.long, device=device)
    with torch.no_grad():
        if press is None:
            model.model(input_ids=x, past_key_values=cache)
        else:
            with press(model):
                model.model(input_ids=x, past_key_values=cache)
    return cache


def kvzip_press(cls, sample, ratio=None):
    """ratio None: score only. Else the compression ratio that removes (1 - ratio) of the context
    pairs: kvpress counts the prefix (forced kept) in its total."""
    P, n = len(sample["prefix_ids"]), len(sample["context_ids"])
    cr = 0.5 if ratio is None else (1.0 - ratio) * n / (P + n)
    return cls(compression_ratio=cr, chunk_size=1 << 30, n_sink=P).setup(sample, prune=ratio is not None)


def answer(model, cache, prompt_ids, n_prefilled, max_new, stops, device):
    """kvpress' KVPressTextGenerationPipeline.generate_answer (greedy, positions after the context),
    then its _remove_answer_from_cache; returns the generated ids (stop token excluded)."""
    lengths = [cache.get_seq_length(i) for i in range(len(cache))]
    pos = torch.arange(n_prefilled, n_prefilled + len(prompt_ids), device=device).unsqueeze(0)
    with torch.no_grad():
        out = model(input_ids=torch.tensor([prompt_ids], device=device), past_key_values=cache,
                    position_ids=pos, logits_to_keep=1)
        ids = [int(out.logits[0, -1].argmax())]
        p = pos[:, -1:] + 1
        for i in range(max_new - 1):
            if ids[-1] in stops:
                break
            out = model(input_ids=torch.tensor([[ids[-1]]], device=device), past_key_values=cache, position_ids=p + i)
            ids.append(int(out.logits[0, -1].argmax()))
    for i, n in enumerate(lengths):
        cache.layers[i].keys = cache.layers[i].keys[:, :, :n]
        cache.layers[i].values = cache.layers[i].values[:, :, :n]
    return [t for t in ids if t not in stops]


# The metrics of tools/eval_tasks.cpp (score_prediction), for the reference's predictions.
_DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def normalize_answer(s: str) -> str:
    s = "".join(ch for ch in s if ch not in string.punctuation)
    words = []
    for w in s.split():
        w = "".join(c.lower() if ord(c) < 128 else c for c in w)
        if w in ("a", "an", "the"):
            continue
        words.append(str(_DIGITS.index(w)) if w in _DIGITS else w)
    return " ".join(words)


def score_prediction(q: dict, pred: str) -> float:
    m, ans = q["metric"], q["answers"]
    if m == "any_normalized":
        p = normalize_answer(pred)
        return float(any(normalize_answer(a) and normalize_answer(a) in p for a in ans))
    if m == "all_contained":
        return sum(a.lower() in pred.lower() for a in ans) / len(ans) if ans else 0.0
    if m == "any_contained":
        return float(any(a.lower() in pred.lower() for a in ans))
    if m == "gsm_number":
        p = pred.lower().rstrip()
        at = p.rfind("the answer is ")
        tail = p if at < 0 else p[at + 14:]
        return float(bool(ans) and bool(ans[0]) and ans[0] in tail)
    raise ValueError(f"unknown metric {m}")


def answer_all(model, tok, cache, sample, method, ratio, n_prefilled, stops, device, kept):
    row = {"task": sample["task"], "model": "kvpress:" + sample.get("model_identity", ""), "sample": sample["index"],
           "sample_id": sample["id"], "method": method, "ratio": ratio, "kept_fraction": kept, "ok": [],
           "predictions": [], "correct": 0.0}
    for q in sample["queries"]:
        ids = answer(model, cache, q["prompt_ids"], n_prefilled, q["max_new_tokens"], stops, device)
        text = tok.decode(ids, skip_special_tokens=True)
        ok = score_prediction(q, text)
        row["ok"].append(ok)
        row["predictions"].append(text)
        row["correct"] += ok
    row["n_queries"] = len(sample["queries"])
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="the GGUF file our engine ran")
    ap.add_argument("--samples", required=True, help="kvzip eval --dump-samples output")
    ap.add_argument("--scores-out", help="folder for the KVzip scores, <index>.f32")
    ap.add_argument("--answers-out", help="JSON lines of answered rows")
    ap.add_argument("--methods", default="kvzip,snapkv")
    ap.add_argument("--ratios", default="0.1,0.3,0.5")
    ap.add_argument("--only", help="sample indices, comma separated (default all)")
    ap.add_argument("--cache", help="folder for the dequantised model (loaded from there when present)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()

    stub_missing(["datasets", "fire", "cachetools"])
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    t0 = time.time()
    model, tok = load_model(args.model, args.cache, args.device)
    from kvpress import SnapKVPress

    import importlib.metadata as md

    print(f"loaded {args.model} in {time.time() - t0:.1f} s: kvpress {md.version('kvpress')} torch {torch.__version__} "
          f"transformers {md.version('transformers')} device {args.device}", flush=True)
    cls = make_press_class()
    only = None if not args.only else {int(x) for x in args.only.split(",")}
    samples = [json.loads(line) for line in open(args.samples) if line.strip()]
    methods = [m for m in args.methods.split(",") if m]
    ratios = [float(r) for r in args.ratios.split(",") if r]
    if args.scores_out:
        os.makedirs(args.scores_out, exist_ok=True)
        with open(os.path.join(args.scores_out, "shape.json"), "w") as f:
            json.dump({"layers": model.config.num_hidden_layers, "kv_heads": model.config.num_key_value_heads}, f)
    ans_f = open(args.answers_out, "a") if args.answers_out else None
    eos = model.generation_config.eos_token_id
    for s in samples:
        if only is not None and s["index"] not in only:
            continue
        ids = s["prefix_ids"] + s["context_ids"]
        N, P = len(ids), len(s["prefix_ids"])
        stops = set(s.get("stop_ids", [])) | set(eos if isinstance(eos, list) else [eos])
        if args.scores_out:
            t0 = time.time()
            press = kvzip_press(cls, s)
            clear_masks(model)
            prefill(model, ids, press, args.device)
            sc = press.recorded[:, :, P:].numpy().astype("<f4")
            sc.tofile(os.path.join(args.scores_out, f"{s['index']}.f32"))
            print(f"scores: sample {s['index']} ({N - P} context tokens, {len(s['scoring']['chunks'])} chunks) "
                  f"{time.time() - t0:.1f} s", flush=True)
        if not ans_f:
            continue
        t0 = time.time()
        clear_masks(model)
        cache = prefill(model, ids, None, args.device)
        ans_f.write(json.dumps(answer_all(model, tok, cache, s, "full", 1.0, N, stops, args.device, 1.0)) + "\n")
        del cache
        for m in methods:
            for r in ratios:
                clear_masks(model)
                if m == "kvzip":
                    press = kvzip_press(cls, s, r)
                elif m == "snapkv":
                    press = SnapKVPress(compression_ratio=1.0 - r)
                else:
                    raise SystemExit(f"unknown method {m}")
                cache = prefill(model, ids, press, args.device)
                row = answer_all(model, tok, cache, s, m, r, N, stops, args.device, r)
                ans_f.write(json.dumps(row) + "\n")
                del cache
        clear_masks(model)
        ans_f.flush()
        print(f"answers: sample {s['index']} {time.time() - t0:.1f} s", flush=True)


if __name__ == "__main__":
    main()
