#!/usr/bin/env python3
"""Writes the seed corpora of the library fuzzers (tests/fuzz/corpus/) that are not plain copies:
a small llama2.c checkpoint, a KVZCACHE file, a head-score file, the config.json + tokenizer.json
pairs and a few texts. tests/fuzz/corpus/gguf_model/tiny.gguf is tests/model/tiny_gguf.h's file.
Run from the repository root: python3 tools/make_fuzz_corpus.py"""
import json
import math
import os
import struct

C = "tests/fuzz/corpus"


def fnv1a64(b):
    h = 1469598103934665603
    for x in b:
        h = ((h ^ x) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return h


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def llama2c():
    d, ff, L, H, kv, V, ctx = 8, 16, 1, 2, 2, 512, 32
    n = V * d + L * d * 2 + L * d * d * 2 + L * (kv * d // H) * d * 2 + L * ff * d * 3 + d
    floats = [0.01 * math.sin(i) for i in range(n)]
    body = struct.pack("<7i", d, ff, L, H, kv, V, ctx) + struct.pack(f"<{n}f", *floats)
    write(f"{C}/llama2c/tiny_checkpoint", b"\x01" + body)
    with open("tests/data/stories260K/tok512.bin", "rb") as f:
        write(f"{C}/llama2c/tok512", b"\x00" + f.read())


def cache_file():
    L, H, D, n = 1, 2, 4, 3
    header = {"model": "m", "n_layers": L, "n_kv_heads": H, "head_dim": D, "n_prefix": 1,
              "n_context": 2, "next_pos": 3, "kept_fraction": 1.0, "tokens": [1, 2, 3],
              "prunable": [True]}
    hs = json.dumps(header, separators=(",", ":")).encode()
    b = b"KVZCACHE" + struct.pack("<IQ", 2, len(hs)) + hs
    for _ in range(L * H):
        b += struct.pack("<I", n) + struct.pack(f"<{n}i", 0, 1, 2)
        b += struct.pack(f"<{2 * n * D}H", *([0x3C00] * (2 * n * D)))
    b += b"\x01" + struct.pack(f"<{L * H * 2}f", *([0.5] * (L * H * 2)))
    b += struct.pack("<Q", fnv1a64(b))
    write(f"{C}/kvzip_files/cache", b"\x04" + b)
    with open("tests/data/stories260K/stories260K.linear.kvzap", "rb") as f:
        write(f"{C}/kvzip_files/kvzap_linear", b"\x05" + f.read())
    hsj = {"format": "kvzip-head-scores", "version": 2, "model": "m", "n_layers": 2,
           "n_kv_heads": 2, "scores": [0.1, 0.2, 0.3, 0.4]}
    write(f"{C}/kvzip_files/head_scores", b"\x02" + json.dumps(hsj).encode())


def hf_pairs():
    for arch in ("llama3", "gemma3"):
        with open(f"tests/data/hf/{arch}/config.json", "rb") as f:
            config = f.read()
        with open(f"tests/data/hf/{arch}/tokenizer.json", "rb") as f:
            tok = f.read()
        write(f"{C}/hf_config/{arch}", config + b"\x00" + tok)


def texts():
    for i, t in enumerate(["Once upon a time, there was a cat.",
                           "<|begin_of_text|><|start_header_id|>user<|end_header_id|>hi",
                           "caf\u00e9 \u4f60\u597d \U0001F600 \t\n  12345 don't",
                           "\xff\xfe invalid \x80 utf-8"]):
        write(f"{C}/tokenizer/text{i}", t.encode("utf-8", "surrogateescape"))


if __name__ == "__main__":
    llama2c()
    cache_file()
    hf_pairs()
    texts()
