#!/usr/bin/env python3
"""Writes safetensors fixtures with the reference `safetensors` Python package into
tests/data/safetensors/: single.safetensors, a two-shard folder sharded/ with
model.safetensors.index.json, int64.safetensors (an unsupported dtype), and fixture.json
describing every tensor (dtype, shape as stored, FNV-1a 64 of the bytes). Off the runtime path.

Usage: /opt/kvz-py/bin/python tools/make_safetensors_fixture.py [out_dir]
"""
import json
import sys
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

out = Path(sys.argv[1] if len(sys.argv) > 1 else "tests/data/safetensors")
(out / "sharded").mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(99)


def fnv1a64(data):
    h = 0xCBF29CE484222325
    for byte in data:
        h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def describe(tensors):
    return {k: {"dtype": {"float32": "f32", "float16": "f16"}[str(v.dtype)], "shape": list(v.shape),
                "fnv1a64": fnv1a64(np.ascontiguousarray(v).tobytes())} for k, v in tensors.items()}


single = {
    "model.embed_tokens.weight": rng.standard_normal((6, 4)).astype(np.float32),
    "model.norm.weight": rng.standard_normal((4,)).astype(np.float16),
    "scalar": np.array(2.5, dtype=np.float32),
    "empty": np.zeros((0, 3), dtype=np.float16),
}
save_file(single, str(out / "single.safetensors"), metadata={"format": "pt"})
shard1 = {"a.weight": rng.standard_normal((2, 3)).astype(np.float32)}
shard2 = {"b.weight": rng.standard_normal((3, 2, 2)).astype(np.float16),
          "c.bias": rng.standard_normal((5,)).astype(np.float32)}
names = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
save_file(shard1, str(out / "sharded" / names[0]))
save_file(shard2, str(out / "sharded" / names[1]))
weight_map = {k: names[0] for k in shard1} | {k: names[1] for k in shard2}
with open(out / "sharded" / "model.safetensors.index.json", "w") as f:
    json.dump({"metadata": {"total_size": 0}, "weight_map": weight_map}, f, indent=1)
save_file({"ids": np.arange(3, dtype=np.int64)}, str(out / "int64.safetensors"))
with open(out / "fixture.json", "w") as f:
    json.dump({"single": describe(single), "sharded": describe(shard1 | shard2),
               "single_metadata": {"format": "pt"}}, f, indent=1)
print("wrote", out)
