#!/usr/bin/env python3
"""Tiny Hugging Face safetensors model folders and their goldens (tools/, off the runtime path):
see tests/data/hf/README.md.

For llama (LLaMA 3 rope scaling, tied), qwen2 (biases, sharded), qwen3 (q/k norms) and gemma3
(sliding window, (1+w) norms): random weights (tools/parity_common.py), a tiny byte-level BPE
tokenizer.json, save_pretrained(safe_serialization=True) in f16 or bf16 into tests/data/hf/<name>/,
and tests/data/hf/<name>.json with prompt ids, last-position logits (transformers, float32, on the
stored f16/bf16 values), 16 greedy tokens and tokenizer ids of a few texts.

Usage:  /work/venv-goldens/bin/python tools/make_safetensors_models.py
"""
from __future__ import annotations

import importlib.metadata as md
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import parity_common as pc  # noqa: E402

OUT = pc.REPO / "tests" / "data" / "hf"
N_GREEDY = 16
PROMPTS = ["The report says the committee met on 12 March 2024.",
           "<|im_start|>user\nWhat did the committee decide?<|im_end|>\n<|im_start|>assistant\n"]
TOKENIZER_TEXTS = ["<start_of_turn>user\nhi there<end_of_turn>\n", "Hello world", "  leading spaces and 12345 digits\n\nnew lines", "café naïve — ünïcödé ✓",
                   "<|im_start|>system\nbe brief<|im_end|>", "it's 3.14159, isn't it?"]

# Split regexes as the real tokenizer.json files carry them.
LLAMA3_RE = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
             r"|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_RE = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
            r"|\s*[\r\n]+|\s+(?!\S)|\s+")

LLAMA3 = {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 64}
# (spec, save dtype, pre-tokenizer, max shard size or None)
SPECS = [
    (pc.TinySpec("llama3", "llama", n_layers=2, tied=True, rope_base=500000.0, llama3_scaling=LLAMA3,
                 seed=11, embed_std=0.1, final_norm=3.0), torch.float16, "llama3", None),
    (pc.TinySpec("qwen2", "qwen2", n_layers=2, tied=False, rope_base=1000000.0, norm_eps=1e-6, seed=12),
     torch.float16, "qwen2", "60KB"),
    (pc.TinySpec("qwen3", "qwen3", n_layers=2, head_dim=32, tied=True, rope_base=1000000.0, norm_eps=1e-6,
                 seed=13, embed_std=0.1, final_norm=3.0), torch.bfloat16, "qwen2", None),
    (pc.TinySpec("gemma3", "gemma3", n_layers=6, n_heads=2, n_kv_heads=1, head_dim=32, d_ff=64, tied=True,
                 rope_base=1000000.0, linear_scaling=8.0, sliding_window=8, norm_eps=1e-6, seed=15,
                 embed_std=0.3 / 8, final_norm=2.0), torch.bfloat16, "spm", None),
    # The SmolLM2 pre-tokenizer (Digits + ByteLevel) on a second qwen3-shaped model, f16, untied.
    (pc.TinySpec("smollm", "llama", n_layers=2, tied=False, rope_base=10000.0, seed=16), torch.float16, "smollm",
     None),
]


def versions() -> dict:
    out = {"python": sys.version.split()[0]}
    for p in ("torch", "transformers", "tokenizers", "safetensors", "numpy"):
        out[p] = md.version(p)
    return out


SPM_SPECIALS = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"]


def make_spm_tokenizer():
    """Gemma-style tokenizer.json: BPE with byte_fallback over "▁" pieces (normalizer replaces
    spaces, no pre-tokenizer), specials <pad> <eos> <bos> <unk> <start_of_turn> <end_of_turn>, then
    the 256 <0xNN> byte pieces as ordinary vocabulary entries, BOS prepended by the post-processor."""
    from tokenizers import Tokenizer, decoders, models, normalizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    tok.normalizer = normalizers.Replace(" ", "\u2581")
    tok.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse()])
    byte_pieces = [f"<0x{b:02X}>" for b in range(256)]
    tok.train([str(pc.CONTEXT_TXT)], trainers.BpeTrainer(vocab_size=512, special_tokens=SPM_SPECIALS + byte_pieces,
                                                         show_progress=False))
    j = json.loads(tok.to_str())
    j["added_tokens"] = [a for a in j["added_tokens"] if a["content"] in SPM_SPECIALS]
    tok = Tokenizer.from_str(json.dumps(j))
    tok.post_processor = processors.TemplateProcessing(single="<bos> $A", pair="<bos> $A <bos> $B",
                                                       special_tokens=[("<bos>", 2)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>",
                                   unk_token="<unk>")


def make_tokenizer(pre: str, with_bos: bool):
    """The tiny BPE with the pre-tokenizer of a real family; LLaMA 3 style adds a BOS special
    (id 512) and a post-processor that prepends it."""
    from tokenizers import Regex, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    tok, _, _ = pc.train_tiny_bpe(512)
    bl = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    if pre in ("llama3", "qwen2"):
        split = pre_tokenizers.Split(Regex(LLAMA3_RE if pre == "llama3" else QWEN2_RE), behavior="isolated")
        tok.pre_tokenizer = pre_tokenizers.Sequence([split, bl])
    elif pre == "smollm":
        tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                     pre_tokenizers.ByteLevel(add_prefix_space=False)])
    bos = None
    if with_bos:
        tok.add_special_tokens(["<|begin_of_text|>"])
        bos = "<|begin_of_text|>"
        bos_id = tok.token_to_id(bos)
        tok.post_processor = processors.TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A {bos} $B",
                                                           special_tokens=[(bos, bos_id)])
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=bos, eos_token="<|im_end|>",
                                 pad_token="<|endoftext|>", unk_token=None)
    hf.chat_template = pc.TINY_CHAT_TEMPLATE
    return hf


@torch.no_grad()
def logits(model, ids):
    return model(input_ids=torch.tensor([ids]), use_cache=False).logits[0, -1].float().numpy()


@torch.no_grad()
def greedy(model, ids, n):
    seq, out, margins = list(ids), [], []
    for _ in range(n):
        last = logits(model, seq)
        top2 = np.sort(last)[-2:]
        out.append(int(np.argmax(last)))
        margins.append(float(top2[1] - top2[0]))
        seq.append(out[-1])
    return out, margins


def build(spec: pc.TinySpec, dtype, pre: str, shard) -> dict:
    hf_tok = make_spm_tokenizer() if pre == "spm" else make_tokenizer(pre, with_bos=spec.arch == "llama")
    spec.vocab = len(hf_tok)
    W = pc.random_weights(spec)
    model = pc.hf_model(spec, W)
    model.config.bos_token_id = hf_tok.bos_token_id  # None unless the tokenizer has one
    model.config.eos_token_id = hf_tok.eos_token_id
    folder = OUT / spec.name
    shutil.rmtree(folder, ignore_errors=True)
    model.to(dtype)  # the stored values; the reference below runs in f32 on exactly these
    kw = {"max_shard_size": shard} if shard else {}
    model.save_pretrained(folder, safe_serialization=True, **kw)
    hf_tok.save_pretrained(folder)
    model.to(torch.float32)
    prompts = []
    for text in PROMPTS:
        ids = hf_tok(text)["input_ids"]
        gen, margins = greedy(model, ids, N_GREEDY)
        prompts.append({"text": text, "ids": ids, "last_logits": pc.f32_list(logits(model, ids)),
                        "greedy": gen, "greedy_top1_margin": margins})
    toks = [{"text": t, "ids": hf_tok(t)["input_ids"]} for t in TOKENIZER_TEXTS]
    size = sum(f.stat().st_size for f in folder.iterdir())
    assert size < 500_000, (spec.name, size)
    return {"model": spec.name, "dtype": str(dtype).removeprefix("torch."), "bytes": size,
            "config": {"n_layers": spec.n_layers, "vocab": spec.vocab, "arch": spec.arch},
            "bos_id": hf_tok.bos_token_id, "eos_id": hf_tok.eos_token_id,
            "prompts": prompts, "tokenizer": toks, "versions": versions()}


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    for spec, dtype, pre, shard in SPECS:
        g = build(spec, dtype, pre, shard)
        (OUT / f"{spec.name}.json").write_text(json.dumps(g, indent=1) + "\n")
        print(f"{spec.name}: {g['bytes']} bytes, greedy {g['prompts'][0]['greedy'][:8]}")


if __name__ == "__main__":
    main()
