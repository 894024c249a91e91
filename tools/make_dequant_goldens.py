#!/usr/bin/env python3
"""Writes dequantisation goldens for tests/runtime/dequant_test.cpp (tools/).

For every weight type: tests/data/dequant/<type>.bin holds raw ggml blocks and <type>.f32 the
values the Python `gguf` package (an independent implementation of ggml's layouts) dequantises
them to, little-endian float32. Blocks are random bytes with finite fp16 scale fields (so the
comparison can be bit-exact), plus, where gguf can quantise the type, blocks quantised from
random floats. Run with the project venv:  /opt/kvz-py/bin/python tools/make_dequant_goldens.py
"""
import pathlib

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import quants

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "data" / "dequant"
# name -> (type, byte offsets of fp16 scale fields inside a block)
TYPES = {
    "q8_0": (T.Q8_0, [0]),
    "q4_0": (T.Q4_0, [0]),
    "q4_1": (T.Q4_1, [0, 2]),
    "q5_0": (T.Q5_0, [0]),
    "q5_1": (T.Q5_1, [0, 2]),
    "q4_k": (T.Q4_K, [0, 2]),
    "q5_k": (T.Q5_K, [0, 2]),
    "q6_k": (T.Q6_K, [208]),
}


def random_blocks(rng, qtype, scale_offsets, n_blocks):
    block_elems, block_bytes = quants.GGML_QUANT_SIZES[qtype]
    raw = rng.integers(0, 256, size=(n_blocks, block_bytes), dtype=np.uint8)
    for off in scale_offsets:
        d = rng.uniform(-0.05, 0.05, size=n_blocks).astype(np.float16)
        d[0] = np.float16(6e-8)  # fp16 subnormal: exercises the exact half -> float path
        raw[:, off:off + 2] = d.view(np.uint8).reshape(n_blocks, 2)
    return raw


def write(name, raw, qtype):
    values = quants.dequantize(raw, qtype).astype("<f4").reshape(-1)
    (OUT / f"{name}.bin").write_bytes(raw.tobytes())
    (OUT / f"{name}.f32").write_bytes(values.tobytes())
    print(f"{name}: {raw.nbytes} bytes -> {values.size} values")


def main():
    rng = np.random.default_rng(20240607)
    OUT.mkdir(parents=True, exist_ok=True)
    for name, (qtype, offsets) in TYPES.items():
        block_elems, _ = quants.GGML_QUANT_SIZES[qtype]
        n_blocks = 8 if block_elems == 32 else 4
        raw = random_blocks(rng, qtype, offsets, n_blocks)
        try:
            floats = rng.normal(0, 1, size=(4, block_elems)).astype(np.float32)
            raw = np.concatenate([raw, quants.quantize(floats, qtype).reshape(4, -1)])
        except NotImplementedError:
            pass  # gguf has no quantiser for the k-quants: random blocks only
        write(name, raw, qtype)
    f16 = rng.integers(0, 1 << 16, size=256, dtype=np.uint16)
    f16 = f16[(f16 & 0x7C00) != 0x7C00][:128]  # drop inf/NaN, keep subnormals
    write("f16", f16.view(np.uint8).reshape(-1, 2), T.F16)
    bf16 = rng.integers(0, 1 << 16, size=256, dtype=np.uint16)
    bf16 = bf16[(bf16 & 0x7F80) != 0x7F80][:128]
    write("bf16", bf16.view(np.uint8).reshape(-1, 2), T.BF16)


if __name__ == "__main__":
    main()
