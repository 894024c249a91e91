#!/usr/bin/env python3
"""Writes tests/data/gguf/fixture.gguf with the reference `gguf` Python package, plus
fixture.json describing what was written (keys, values, tensors in GGUF ne order, a checksum
(FNV-1a 64) of each tensor's bytes). The C++ GgufReader test reads both. Off the runtime path.

Usage: /opt/kvz-py/bin/python tools/make_gguf_fixture.py [out_dir]
"""
import json
import sys
from pathlib import Path

import numpy as np
import gguf

out_dir = Path(sys.argv[1] if len(sys.argv) > 1 else "tests/data/gguf")
out_dir.mkdir(parents=True, exist_ok=True)
path = out_dir / "fixture.gguf"
rng = np.random.default_rng(1234)

w = gguf.GGUFWriter(str(path), arch="llama")
meta = {
    "general.name": ("string", "kvz fixture"),
    "llama.block_count": ("u32", 5),
    "kvz.u8": ("u8", 200),
    "kvz.i8": ("i8", -100),
    "kvz.u16": ("u16", 60000),
    "kvz.i16": ("i16", -30000),
    "kvz.i32": ("i32", -2000000000),
    "kvz.u64": ("u64", 2**40 + 3),
    "kvz.i64": ("i64", -(2**40) - 5),
    "kvz.f32": ("f32", 0.15625),
    "kvz.f64": ("f64", 1e-300),
    "kvz.bool": ("bool", True),
    "kvz.utf8": ("string", "h\u00e9llo \u4e16\u754c"),
}
w.add_name("kvz fixture")
w.add_uint32("llama.block_count", 5)
w.add_uint8("kvz.u8", 200)
w.add_int8("kvz.i8", -100)
w.add_uint16("kvz.u16", 60000)
w.add_int16("kvz.i16", -30000)
w.add_int32("kvz.i32", -2000000000)
w.add_uint64("kvz.u64", 2**40 + 3)
w.add_int64("kvz.i64", -(2**40) - 5)
w.add_float32("kvz.f32", 0.15625)
w.add_float64("kvz.f64", 1e-300)
w.add_bool("kvz.bool", True)
w.add_string("kvz.utf8", "h\u00e9llo \u4e16\u754c")
strs = ["", "a", "\u2581the", "<0x0A>", "x" * 300]
w.add_array("kvz.arr_str", strs)
ints = [1, -2, 3, 2**31 - 1]
w.add_array("kvz.arr_i32", ints)
floats = [0.5, -1.25, 3.0]
w.add_array("kvz.arr_f32", floats)
meta["kvz.arr_str"] = ("arr_string", strs)
meta["kvz.arr_i32"] = ("arr_int", ints)
meta["kvz.arr_f32"] = ("arr_float", floats)

tensors = {}


def fnv1a64(data):
    h = 0xCBF29CE484222325
    for byte in data:
        h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def add(name, arr, raw_dtype=None, ne=None, dtype_name=None):
    if raw_dtype is None:
        w.add_tensor(name, arr)
    else:
        w.add_tensor(name, arr, raw_dtype=raw_dtype)
    tensors[name] = {"dtype": dtype_name, "ne": ne, "fnv1a64": fnv1a64(arr.tobytes()),
                     "n_bytes": arr.nbytes}

a = rng.standard_normal((3, 8)).astype(np.float32)           # torch shape [3, 8] -> ne [8, 3]
add("f32.weight", a, ne=[8, 3], dtype_name="f32")
b = rng.standard_normal((2, 2, 5)).astype(np.float16)
add("f16.weight", b, ne=[5, 2, 2], dtype_name="f16")
q = gguf.quants.quantize(rng.standard_normal((4, 64)).astype(np.float32), gguf.GGMLQuantizationType.Q8_0)
add("q8_0.weight", q, raw_dtype=gguf.GGMLQuantizationType.Q8_0, ne=[64, 4], dtype_name="q8_0")
k = rng.integers(0, 256, size=(2, 144), dtype=np.uint8)       # 2 rows of one Q4_K block each
add("q4_k.weight", k, raw_dtype=gguf.GGMLQuantizationType.Q4_K, ne=[256, 2], dtype_name="q4_k")
bf = rng.integers(0, 65536, size=(7,), dtype=np.uint16).view(np.uint8)
add("bf16.weight", bf, raw_dtype=gguf.GGMLQuantizationType.BF16, ne=[7], dtype_name="bf16")

w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()

# Read back with the reference reader to record data offsets independently of our writer.
r = gguf.GGUFReader(str(path))
for t in r.tensors:
    tensors[t.name]["file_offset"] = int(t.data_offset)
    assert [int(x) for x in t.shape] == tensors[t.name]["ne"], (t.name, t.shape)
meta["general.architecture"] = ("string", "llama")
with open(out_dir / "fixture.json", "w") as f:
    json.dump({"version": 3, "alignment": 32, "metadata": {k: {"type": t, "value": v} for k, (t, v) in meta.items()},
               "tensors": tensors}, f, indent=1, ensure_ascii=False)
print("wrote", path, path.stat().st_size, "bytes")
