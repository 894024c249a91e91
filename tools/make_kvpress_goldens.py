#!/usr/bin/env python3
"""KVzip score / kept-set goldens from NVIDIA kvpress (tools/, off the runtime path).

Runs kvpress' own pipeline (`KVPressTextGenerationPipeline`, chat-template preprocessing, prefill under
`KVzipPress(compression_ratio=0.7)`, greedy answer with the masked cache) on
  - SmolLM2-135M-Instruct (the Q4_1 GGUF of tools/fetch_model.sh, dequantised to float32 by
    transformers), and
  - a tiny random Qwen3-style model whose GGUF is written to tests/data/kvpress/,
each with kvpress' reconstruction chunk size 2048 and with 128 (multi-chunk). kvpress methods are
wrapped (not changed) to capture the reconstruction inputs it builds, the raw scores and the pruned
indices. Format: tests/data/kvpress/README.md.

Usage:  /work/venv-goldens/bin/python tools/make_kvpress_goldens.py [--only smollm2|qwen3_tiny|qwen25]
"""
from __future__ import annotations

import argparse
import importlib.metadata as md
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import parity_common as pc  # noqa: E402

OUT = pc.REPO / "tests" / "data" / "kvpress"
RATIO = 0.7
CHUNKS = [2048, 128]
MAX_NEW = 24
QWEN25_CONTEXT_CHARS = 17000  # about 4.2K Qwen tokens: two full 2048-token chunks and a short third

QWEN3_TINY = pc.TinySpec("qwen3_tiny", "qwen3", n_layers=3, d_model=64, n_heads=4, n_kv_heads=2, head_dim=32,
                         d_ff=128, tied=True, rope_base=1000000.0, norm_eps=1e-6, wtype="f16", context_length=8192,
                         seed=11, embed_std=0.1, final_norm=3.0)


class Capture:
    """Wraps KVzipPress.prepare / compress_post to record what kvpress computed."""

    def __init__(self):
        from kvpress import KVzipPress

        self.cls = KVzipPress
        self.orig_prepare = KVzipPress.prepare
        self.orig_post = KVzipPress.compress_post
        self.reset()
        cap = self

        def prepare(press, model, tokenizer, *a, **k):
            pairs = cap.orig_prepare(press, model, tokenizer, *a, **k)
            cap.prefix_length = int(press.prefix_length)
            cap.context_length = int(press.context_length)
            cap.suffix_ids = press._suffix_ids[0].tolist()
            cap.input_ids = press._context_ids[0].tolist()
            start = press.prefix_length
            for chunk_ids, repeat_ids in pairs:
                n = chunk_ids.shape[1]
                cap.chunks.append({"start": start, "end": start + n, "sink": min(press.n_sink, start),
                                   "repeat_ids": repeat_ids[0].tolist()})
                start += n
            return pairs

        def compress_post(press, model):
            cap.raw_scores = press.score_val.detach().float().cpu().clone()  # before the sink override
            cap.orig_post(press, model)
            cap.final_scores = press.score_val.detach().float().cpu().clone()
            L, _, H, N = press.score_val.shape
            kept = np.ones((L, H, N), dtype=np.uint8)
            for layer in model.model.layers:
                b, h, s = layer.self_attn.masked_key_indices
                assert b.numel() == 0 or int(b.max()) == 0
                kept[int(layer.self_attn.layer_idx), h.numpy(), s.numpy()] = 0
            cap.kept = kept

        KVzipPress.prepare = prepare
        KVzipPress.compress_post = compress_post

    def reset(self):
        self.chunks, self.raw_scores, self.final_scores, self.kept = [], None, None, None
        self.prefix_length = self.context_length = None


def clear_masks(model):
    for layer in model.model.layers:
        layer.self_attn.masked_key_indices = None


def run_case(name, model, tok, context, question, cap: Capture, desc: dict, chunks=CHUNKS):
    import kvpress.presses.kvzip_press as kz
    from kvpress import KVPressTextGenerationPipeline, KVzipPress
    from transformers import DynamicCache

    # KVzipPress reloads the tokenizer with AutoTokenizer.from_pretrained(model.config.name_or_path); a
    # GGUF-derived tokenizer does not survive save_pretrained/from_pretrained in transformers 5.2 (it
    # comes back as a CodeLlamaTokenizer that maps "\n" to <unk>), so hand kvpress the pipeline's own.
    class _SameTokenizer:
        @staticmethod
        def from_pretrained(*_a, **_k):
            return tok

    kz.AutoTokenizer = _SameTokenizer

    pipe = KVPressTextGenerationPipeline(model=model, tokenizer=tok)
    pre = pipe.preprocess(context, questions=[question], answer_prefix="", max_context_length=int(1e10))
    for chunk in chunks:
        cap.reset()
        clear_masks(model)
        press = KVzipPress(compression_ratio=RATIO, chunk_size=chunk)
        # The prefill of KVPressTextGenerationPipeline._forward, then its greedy answer on the masked cache.
        context_ids = pre["context_ids"]
        cache = DynamicCache()
        with press(model):
            model.model(input_ids=context_ids, past_key_values=cache)
        try:
            answer = pipe.generate_answer(question_ids=pre["questions_ids"][0], cache=cache,
                                          context_length=context_ids.shape[1], max_new_tokens=MAX_NEW)
        except ValueError as e:  # kvpress' fake-key masking can fail on random models
            answer = None
            print(f"  (no answer: kvpress generate_answer raised: {e})")
        clear_masks(model)
        gold = f"{name}_c{chunk}"
        L, _, H, N = cap.raw_scores.shape
        assert cap.input_ids == pre["context_ids"][0].tolist() and N == len(cap.input_ids) == cap.context_length
        raw = cap.raw_scores[:, 0].numpy().astype("<f4")
        raw.tofile(OUT / f"{gold}.scores.f32")
        cap.kept.tofile(OUT / f"{gold}.kept.u8")
        n_pruned = int(raw.size * RATIO)
        assert int((cap.kept == 0).sum()) == n_pruned
        ids = cap.input_ids
        doc = {
            "format": "kvz-kvpress-kvzip/1",
            **desc,
            "press": {"class": "KVzipPress", "compression_ratio": RATIO, "chunk_size": chunk, "n_sink": 4,
                      "layerwise": False, "kvzip_plus_normalization": False},
            "shape": [L, H, N],
            "scores_file": f"{gold}.scores.f32",
            "kept_file": f"{gold}.kept.u8",
            "input_ids": ids,
            "prefix_length": cap.prefix_length,
            "n_context_tokens": N - cap.prefix_length,
            "suffix_ids": cap.suffix_ids,
            "chunks": cap.chunks,
            "n_pruned_total": n_pruned,
            "n_pruned_per_layer": [int((cap.kept[l] == 0).sum()) for l in range(L)],
            "kept_per_layer_head": [[int(cap.kept[l, h].sum()) for h in range(H)] for l in range(L)],
            "sink_value": float(cap.final_scores[..., :4].max()),
            "threshold_note": "pruned = the n_pruned_total lowest scores after the sink override "
                              "(positions < 4 set to max+1); positions [4, prefix_length) score 0",
            "question": question,
            "question_ids": pre["questions_ids"][0][0].tolist(),
            "answer_max_new_tokens": MAX_NEW,
            "answer": answer,
        }
        with open(OUT / f"{gold}.json", "w") as f:
            json.dump(doc, f, indent=None, separators=(",", ":"), ensure_ascii=False)
        kept_frac = cap.kept.mean()
        print(f"{gold}: L={L} H={H} N={N} prefix={cap.prefix_length} chunks={len(cap.chunks)} "
              f"kept={kept_frac:.4f} answer={answer!r}", flush=True)


def desc_common() -> dict:
    return {"versions": {p: md.version(p) for p in ("kvpress", "transformers", "torch", "gguf", "tokenizers")}}


def make_smollm2(cap, context, question):
    import make_parity_goldens as mp

    p, tok, model = mp.load_smollm2("sdpa")
    with tempfile.TemporaryDirectory() as tmp:
        # KVzipPress reloads the tokenizer with AutoTokenizer.from_pretrained(model.config.name_or_path).
        tok.save_pretrained(tmp)
        model.config._name_or_path = tmp
        desc = desc_common()
        desc.update({"model": {"file": mp.SMOL_FILE, "sha256": mp.SMOL_SHA256,
                               "reference": "transformers GGUF import, Q4_1 dequantised to float32, sdpa attention, CPU"},
                     "context_source": "tools/data/demo/context.txt (whole file)"})
        run_case("smollm2", model, tok, context, question, cap, desc)


def make_qwen25(cap, context, question):
    """Qwen2.5-Coder-0.5B (the fetched Q4_K_M GGUF): a real model over three 2048-token chunks; the context
    is the demo text followed by the start of the bundled essay haystack, cut at QWEN25_CONTEXT_CHARS."""
    import make_parity_goldens as mp

    p, tok, model = mp.load_smollm2("sdpa", mp.QWEN_FILE)
    with tempfile.TemporaryDirectory() as tmp:
        tok.save_pretrained(tmp)
        model.config._name_or_path = tmp
        desc = desc_common()
        desc.update({"model": {"file": mp.QWEN_FILE, "sha256": mp.QWEN_SHA256,
                               "reference": "transformers GGUF import, Q4_K_M dequantised to float32, sdpa "
                                            "attention, CPU"},
                     "context_source": f"tools/data/demo/context.txt + tools/data/eval/pg_essays_haystack.txt, "
                                       f"first {QWEN25_CONTEXT_CHARS} characters"})
        run_case("qwen25", model, tok, context, question, cap, desc, chunks=[2048])


def make_qwen3_tiny(cap, context, question):
    bpe, tokens, merges = pc.train_tiny_bpe(512)
    spec = QWEN3_TINY
    W = pc.random_weights(spec)
    path = OUT / f"{spec.name}.gguf"
    pc.write_gguf(spec, W, path, (tokens, merges))
    check = pc.check_gguf_roundtrip(spec, W, path)
    model = pc.hf_model(spec, W, attn="sdpa")
    tok = pc.hf_tiny_tokenizer(bpe)
    with tempfile.TemporaryDirectory() as tmp:
        tok.save_pretrained(tmp)
        model.config._name_or_path = tmp
        desc = desc_common()
        desc.update({"model": {"file": path.name, "gguf_check": check,
                               "config": {k: getattr(spec, k) for k in (
                                   "arch", "n_layers", "d_model", "n_heads", "n_kv_heads", "head_dim", "d_ff", "vocab",
                                   "tied", "rope_base", "norm_eps", "wtype", "context_length", "seed", "embed_std",
                                   "final_norm")},
                               "reference": "weights of tests/data/kvpress/qwen3_tiny.gguf as HF Qwen3ForCausalLM, "
                                            "float32, sdpa attention, CPU"},
                     "chat_template": pc.TINY_CHAT_TEMPLATE,
                     "context_source": "tools/data/demo/context.txt (whole file), tiny 512-id BPE of "
                                       "tools/parity_common.py (the vocabulary in qwen3_tiny.gguf)"})
        run_case("qwen3_tiny", model, tok, context, question, cap, desc)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", choices=["smollm2", "qwen3_tiny", "qwen25"])
    args = ap.parse_args()
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    torch.set_grad_enabled(False)
    OUT.mkdir(parents=True, exist_ok=True)
    context = pc.CONTEXT_TXT.read_text()
    question = json.loads((pc.REPO / "tools/data/demo/questions.json").read_text())["questions"][0]["question"]
    cap = Capture()
    if args.only in (None, "qwen3_tiny"):
        make_qwen3_tiny(cap, context, question)
    if args.only in (None, "smollm2"):
        make_smollm2(cap, context, question)
    if args.only in (None, "qwen25"):
        long = (context + "\n\n" + (pc.REPO / "tools/data/eval/pg_essays_haystack.txt").read_text())
        make_qwen25(cap, long[:QWEN25_CONTEXT_CHARS], question)


if __name__ == "__main__":
    main()
