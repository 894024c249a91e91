#!/usr/bin/env python3
"""`kvzip bench --compare` end to end (tests/tools/).

Runs `kvzip bench --json` on stories260K on the CPU backend and on the first Vulkan device
(lavapipe in CI), then compares them with a stored H100 run and a llama-bench file
(tests/data/bench/SOURCE.md). Checks the table's values and ratios against the JSON itself, decodes
the PNG with Python's zlib and binascii.crc32 (an independent decoder), and checks that malformed
input is refused with one error line and exit status 1.

Usage: bench_compare_test.py KVZIP SRC WORK
"""
import binascii
import json
import os
import struct
import subprocess
import sys
import zlib

KVZIP, SRC, WORK = sys.argv[1], sys.argv[2], sys.argv[3]
MODEL = os.path.join(SRC, "tests/data/stories260K/stories260K.bin")
DATA = os.path.join(SRC, "tests/data/bench")
H100 = os.path.join(DATA, "h100_q4k_2026-11-27.json")
LLAMA = os.path.join(DATA, "llama_bench_quoted.json")


def kvzip(*args, device="cpu", ok=True):
    env = dict(os.environ, KVZIP_DEVICE=device)
    p = subprocess.run([KVZIP, *args], env=env, capture_output=True, text=True, timeout=240)
    if ok and p.returncode != 0:
        sys.exit(f"kvzip {' '.join(args)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p


def fail(msg):
    sys.exit("FAIL: " + msg)


def refused(args, pattern):
    p = kvzip(*args, ok=False)
    lines = p.stderr.strip().splitlines()
    if p.returncode != 1 or not lines or not lines[-1].startswith("kvzip: error:") or \
            pattern not in lines[-1]:
        fail(f"{args} not refused with '{pattern}' (rc {p.returncode}):\n{p.stdout}\n{p.stderr}")


def ratio(v, first):
    """The table's ratio text: two decimals, two significant digits below 0.1."""
    r = v / first
    return f"{r:.2f}x" if r >= 0.1 else f"{r:.2g}x"


def table(md):
    """The markdown table as (header cells, {(test, depth, unit): cells})."""
    rows = [ln for ln in md.splitlines() if ln.startswith("| ")]
    split = [[c.strip() for c in ln.strip("|").split("|")] for ln in rows]
    return split[0], {tuple(r[:3]): r[3:] for r in split[1:]}


def png_pixels(path):
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        fail("PNG signature missing")
    pos, chunks = 8, {}
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        (crc,) = struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])
        if binascii.crc32(kind + body) != crc:
            fail(f"PNG chunk {kind} has a bad CRC")
        chunks[kind] = chunks.get(kind, b"") + body
        pos += 12 + n
    w, h, depth, color = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    if (depth, color) != (8, 2) or b"IEND" not in chunks:
        fail(f"PNG header {depth}/{color} or IEND missing")
    raw = zlib.decompress(chunks[b"IDAT"])  # checks the Adler-32 too
    if len(raw) != h * (1 + 3 * w):
        fail(f"PNG data {len(raw)} bytes for {w}x{h}")
    rows = [raw[y * (1 + 3 * w):(y + 1) * (1 + 3 * w)] for y in range(h)]
    if any(r[0] != 0 for r in rows):
        fail("PNG rows with an unexpected filter")
    return w, h, {tuple(r[1 + 3 * x:4 + 3 * x]) for r in rows for x in range(w)}


def main():
    cpu, lava = os.path.join(WORK, "cmp_cpu.json"), os.path.join(WORK, "cmp_lavapipe.json")
    for path, device in ((cpu, "cpu"), (lava, "0")):
        kvzip("bench", "-m", MODEL, "-p", "16", "-n", "8", "-d", "0", "--kvzip-depth", "0",
              "-r", "2", "--json", path, device=device)
    png = os.path.join(WORK, "cmp.png")
    if os.path.exists(png):
        os.remove(png)
    out = kvzip("bench", "--compare", cpu, lava, H100, LLAMA, "--plot", png).stdout
    head, rows = table(out)
    want_head = ["test", "depth", "unit", "cmp_cpu", "cmp_lavapipe", "cmp_lavapipe / cmp_cpu",
                 "h100_q4k_2026-11-27", "h100_q4k_2026-11-27 / cmp_cpu", "llama_bench_quoted",
                 "llama_bench_quoted / cmp_cpu"]
    if head != want_head:
        fail(f"header {head}")
    runs = [json.load(open(p)) for p in (cpu, lava, H100)]
    means = [{(r["test"], str(r["depth"]), r["unit"]): r for r in run} for run in runs]
    # Every row of every kvzip file, with its mean and std, in its own column.
    for c, m in enumerate(means):
        for k, r in m.items():
            cell = rows[k][0 if c == 0 else 2 * c - 1]
            if cell != f"{r['mean']:.2f} ± {r['std']:.2f}":
                fail(f"{k} column {c}: '{cell}' for mean {r['mean']}")
    # Ratios to the first column where both have the row, '-' where the first lacks it.
    for k in means[1]:
        want = ratio(means[1][k]["mean"], means[0][k]["mean"])
        if rows[k][2] != want:
            fail(f"{k} ratio '{rows[k][2]}', want {want}")
    for k in means[2]:
        want = "-" if k not in means[0] else ratio(means[2][k]["mean"], means[0][k]["mean"])
        if rows[k][4] != want:
            fail(f"{k} H100 ratio '{rows[k][4]}', want {want}")
    if rows[("pp512", "0", "tok/s")][5] != "10750.00 ± 0.00" or \
            rows[("pp4096", "0", "tok/s")][5] != "10590.00 ± 0.00" or \
            rows[("pp16", "0", "tok/s")][5] != "-":
        fail(f"llama-bench column: {rows}")
    if "NVIDIA H100 80GB HBM3" not in out or "llama.cpp unknown (Vulkan)" not in out:
        fail(f"column descriptions:\n{out}")
    # The chart: one bar colour per run that has a tok/s row of the first file (cpu: 1.0, lavapipe).
    w, h, colours = png_pixels(png)
    if w < 400 or h < 100 or not {(31, 119, 180), (255, 127, 14), (20, 20, 20)} <= colours:
        fail(f"chart {w}x{h} lacks its bars or text ({len(colours)} colours)")

    # llama-bench's pg test and model_size; a row repeated; malformed files.
    def write(name, text):
        path = os.path.join(WORK, name)
        with open(path, "w") as f:
            f.write(text)
        return path
    pg = write("cmp_pg.json", json.dumps([{"n_prompt": 512, "n_gen": 128, "n_depth": 4096,
                                           "avg_ts": 50.0, "model_size": 3 << 20}]))
    out = kvzip("bench", "--compare", pg, LLAMA).stdout
    _, rows = table(out)
    if rows[("pp512+tg128", "4096", "tok/s")][0] != "50.00 ± 0.00" or \
            rows[("weights", "0", "MiB")][0] != "3.00 ± 0.00" or \
            rows[("pp512", "0", "tok/s")][1:] != ["10750.00 ± 0.00", "-"]:
        fail(f"llama-bench pg / model_size rows:\n{out}")
    refused(["bench", "--compare", write("cmp_bad.json", "[{\"test\": ")], "not JSON")
    refused(["bench", "--compare", write("cmp_obj.json", "{}")], "non-empty JSON array")
    refused(["bench", "--compare", write("cmp_nomean.json", '[{"test":"pp1","depth":0,'
                                         '"unit":"tok/s"}]')], "row 0: 'mean' missing")
    refused(["bench", "--compare", write("cmp_depth.json", '[{"test":"pp1","depth":-1,'
                                         '"unit":"tok/s","mean":1}]')], "'depth' is negative")
    row = '{"test":"pp1","depth":0,"unit":"tok/s","mean":1}'
    refused(["bench", "--compare", write("cmp_dup.json", f"[{row},{row}]")], "appears twice")
    refused(["bench", "--compare", write("cmp_mix.json", f'[{row},{{"avg_ts":1}}]')],
            "mixes llama-bench rows")
    refused(["bench", "--compare", os.path.join(WORK, "cmp_missing.json")], "cannot open")
    refused(["bench", "--compare", write("cmp_ms.json", '[{"test":"x","depth":0,"unit":"ms",'
                                         '"mean":1}]'), "--plot", png], "no tok/s rows to chart")
    refused(["bench", "-m", MODEL, "--plot", png], "--plot draws the chart of --compare")
    print("kvzip bench --compare: table, ratios, PNG and refusals OK")


main()
