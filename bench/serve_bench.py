#!/usr/bin/env python3
"""bench-serve: N concurrent streaming clients over one compressed context of `kvzip serve`.

Starts the server (or uses --url), builds one context per kept ratio, then for each client count
N and each ratio runs N chat requests at once (greedy, `ignore_eos`, --max-tokens each) and reports the total
generated tokens/s, the time to first token (TTFT) and the time per output token after the first
(TPOT, per request; p50/p99 over requests), and the KV bytes one request held of its own (the
server's `kvzip_last_request_kv_bytes`: requests share the context's blocks), as a markdown table
(and JSON with --json, rewritten after every level so that a run cut short keeps what it
measured). Only the standard library is used.

  python3 bench/serve_bench.py --kvzip build/tools/kvzip -m MODEL --context-tokens 2000 \\
      --ratios 1.0,0.3 --clients 1,4,16,64 --max-tokens 32

A synthetic model (synthetic:llama3.1-8b:q4_k) has a byte tokenizer: --words-per-token 0.17.
"""
import argparse
import http.client
import json
import os
import re
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEXT = os.path.join(ROOT, "tools", "data", "demo", "context.txt")


def start_server(a):
    cmd = [a.kvzip, "serve", "-m", a.model, "--port", "0", "--parallel", str(max(a.clients)),
           "--queue", str(max(a.clients)), "--cache-type-k", a.cache_type_k,
           "--cache-type-v", a.cache_type_v]
    cmd += ["--ctx-size", str(a.ctx_size)] if a.ctx_size else []
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    port, log = [], []

    def read():
        for line in proc.stderr:
            log.append(line)
            m = re.search(r"on http://[\d.]+:(\d+) ", line)
            if m:
                port.append(int(m.group(1)))

    threading.Thread(target=read, daemon=True).start()
    deadline = time.time() + a.start_timeout
    while not port and time.time() < deadline and proc.poll() is None:
        time.sleep(0.1)
    if not port:
        proc.kill()
        sys.exit("server did not start:\n" + "".join(log))
    return proc, "127.0.0.1", port[0], log


def metric(host, port, name, timeout=30):
    """One value of the server's /metrics (None when absent)."""
    c = http.client.HTTPConnection(host, port, timeout=timeout)
    c.request("GET", "/metrics")
    text = c.getresponse().read().decode()
    c.close()
    m = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


def post(host, port, path, body, timeout):
    c = http.client.HTTPConnection(host, port, timeout=timeout)
    c.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
    r = c.getresponse()
    data = r.read().decode()
    if r.status != 200:
        sys.exit(f"{path}: {r.status} {data}")
    return json.loads(data)


def one_request(host, port, body, out, timeout):
    """Streams one chat completion; appends (t_start, [t of each content event], tokens), or
    (t_start, [], 0) when the request failed."""
    t0 = time.perf_counter()
    try:
        stream_request(host, port, body, out, timeout, t0)
    except (OSError, http.client.HTTPException, ValueError) as e:
        print(f"request failed: {e!r}", file=sys.stderr)
        out.append((t0, [], 0))


def stream_request(host, port, body, out, timeout, t0):
    c = http.client.HTTPConnection(host, port, timeout=timeout)
    c.request("POST", "/v1/chat/completions", json.dumps(body),
              {"Content-Type": "application/json"})
    r = c.getresponse()
    times, tokens = [], 0
    for raw in r:
        line = raw.decode().strip()
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        ev = json.loads(line[6:])
        if ev.get("usage"):
            tokens = ev["usage"]["completion_tokens"]
        for ch in ev.get("choices", []):
            if ch.get("delta", {}).get("content"):
                times.append(time.perf_counter())
    c.close()
    out.append((t0, times, tokens))


def percentile(xs, q):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * (len(xs) - 1) + 0.5))]


def run_level(host, port, ctx_id, n, a):
    body = {"model": "", "context_id": ctx_id, "stream": True, "temperature": 0,
            "max_tokens": a.max_tokens, "ignore_eos": True,
            "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": "Summarise the text in one sentence."}]}
    out = []
    threads = [threading.Thread(target=one_request, args=(host, port, body, out, a.timeout))
               for _ in range(n)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    tokens = sum(x[2] for x in out)
    ttft = [x[1][0] - x[0] for x in out if x[1]]
    # Time per output token after the first, per request (pieces of text can hold several
    # tokens, so gaps between events would understate it).
    tpot = [(x[1][-1] - x[1][0]) / (x[2] - 1) for x in out if x[1] and x[2] > 1]
    failed = sum(1 for x in out if x[2] == 0)
    return {"clients": n, "tokens": tokens, "failed": failed, "wall_s": wall, "tok_s": tokens / wall,
            "ttft_p50_ms": 1e3 * percentile(ttft, 0.5), "ttft_p99_ms": 1e3 * percentile(ttft, 0.99),
            "tpot_p50_ms": 1e3 * percentile(tpot, 0.5), "tpot_p99_ms": 1e3 * percentile(tpot, 0.99)}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kvzip", default=os.path.join(ROOT, "build", "tools", "kvzip"))
    p.add_argument("-m", "--model", default="")
    p.add_argument("--url", help="use a running server (host:port) instead of starting one")
    p.add_argument("--context-tokens", type=int, default=2000,
                   help="about this many context tokens (the demo text repeated)")
    p.add_argument("--words-per-token", type=float, default=0.75,
                   help="words of English text per token of the model's tokenizer (a synthetic "
                        "model's byte tokenizer: about 0.17)")
    p.add_argument("--ratios", default="1.0,0.3")
    p.add_argument("--clients", default="1,4,16,64")
    p.add_argument("--max-tokens", type=int, default=32)
    p.add_argument("--ctx-size", type=int, default=0)
    p.add_argument("--cache-type-k", default="f16", help="f16, q8_0 or q4_0 (a started server)")
    p.add_argument("--cache-type-v", default="f16", help="f16, q8_0 or q4_0 (a started server)")
    p.add_argument("--timeout", type=float, default=600)
    p.add_argument("--start-timeout", type=float, default=300)
    p.add_argument("--json", help="also write the rows here")
    a = p.parse_args()
    a.clients = [int(x) for x in a.clients.split(",")]
    ratios = [float(x) for x in a.ratios.split(",")]
    proc = None
    if a.url:
        host, port = a.url.rsplit(":", 1)
        port = int(port)
    else:
        proc, host, port, _ = start_server(a)
    words = open(TEXT).read().split()
    # The server reports the real token count.
    n_words = int(a.context_tokens * a.words_per_token)
    text = " ".join((words * (1 + n_words // max(len(words), 1)))[:n_words])
    rows = []
    try:
        # Every context first, then each client count over every ratio in turn: the ratios are
        # compared at each N in the same state, and a run cut short has both ratios of the
        # client counts it reached (order them, e.g. 1,16,4,64).
        contexts = []
        for ratio in ratios:
            t0 = time.perf_counter()
            ctx = post(host, port, "/v1/contexts", {"text": text, "ratio": ratio}, a.timeout)
            contexts.append((ratio, ctx, time.perf_counter() - t0))
            print(f"ratio {ratio}: context built in {contexts[-1][2]:.1f} s", file=sys.stderr,
                  flush=True)
            run_level(host, port, ctx["id"], 1, a)  # warm-up
        for n in a.clients:
            for ratio, ctx, build_s in contexts:
                r = run_level(host, port, ctx["id"], n, a)
                r.update(ratio=ratio, context_tokens=ctx["n_context_tokens"],
                         cache_type=f"{ctx.get('cache_type_k', 'f16')}/"
                                    f"{ctx.get('cache_type_v', 'f16')}",
                         kv_bytes=ctx["kv_bytes"], build_s=build_s,
                         request_kv_bytes=metric(host, port, "kvzip_last_request_kv_bytes"))
                rows.append(r)
                print(json.dumps(r), file=sys.stderr, flush=True)
                if a.json:
                    with open(a.json, "w") as f:
                        json.dump(rows, f, indent=1)
    finally:
        if proc:
            proc.terminate()
            proc.wait(30)
    print("| ratio | K/V type | context tokens | context KV | build (s) | KV / request | clients "
          "| failed | total tok/s | TTFT p50 / p99 (ms) | TPOT p50 / p99 (ms) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in sorted(rows, key=lambda r: (-r["ratio"], r["clients"])):
        own = r["request_kv_bytes"]
        own = f"{own / 2**20:.2f} MiB" if own is not None else "-"
        print(f"| {r['ratio']:.1f} | {r['cache_type']} | {r['context_tokens']} "
              f"| {r['kv_bytes'] / 2**20:.1f} MiB "
              f"| {r['build_s']:.1f} | {own} | {r['clients']} | {r['failed']} | {r['tok_s']:.1f} "
              f"| {r['ttft_p50_ms']:.0f} / {r['ttft_p99_ms']:.0f} "
              f"| {r['tpot_p50_ms']:.1f} / {r['tpot_p99_ms']:.1f} |")


if __name__ == "__main__":
    main()
