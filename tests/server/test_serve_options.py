"""`kvzip serve` options and accounting (tests/server/): quantised KV cache types for every cache
the server builds, the memory of deleted contexts that requests still read, and context builds
that run one at a time with a bounded queue."""
import concurrent.futures
import http.client
import json
import subprocess
import threading

import pytest

from conftest import MODEL, QWEN3, kvzip_env, kvzip_exe
from test_server import CONTEXT, QUESTIONS, ask, client, make_context, wait_for

# Row bytes of head_dim 32 values (llama.cpp's layouts): f16 2 bytes a value; q8_0 one block of
# 32 int8 and an f16 scale. KvCache keeps per row K, V and a 4-byte position, per block of 32
# rows one 4-byte table entry, and per layer and head a 4-byte length.
ROW_F16, ROW_Q8_0 = 64, 34


def kv_bytes(n_blocks, row, n_layers=2, n_kv_heads=2):
    return n_blocks * (32 * (2 * row + 4) + 4) + n_layers * n_kv_heads * 4


def test_q8_0_cache_answers_and_reports_its_type(start_server, tmp_path):
    f16 = start_server(model=QWEN3)
    q8 = start_server("--cache-type-k", "q8_0", "--cache-type-v", "q8_0", "--parallel", "4",
                      "--cache-dir", str(tmp_path), model=QWEN3)
    for s, t in ((f16, "f16"), (q8, "q8_0")):
        status, models = s.request("GET", "/v1/models")
        assert status == 200
        assert (models["data"][0]["cache_type_k"], models["data"][0]["cache_type_v"]) == (t, t)
        _, text = s.request("GET", "/metrics")
        assert f'kvzip_kv_cache_type_info{{k="{t}",v="{t}"}} 1' in text
    # Every row kept: the same blocks in both, the q8_0 ones smaller by the row sizes.
    full16, full8 = make_context(f16, method="none"), make_context(q8, method="none")
    assert (full16["cache_type_k"], full8["cache_type_k"], full8["cache_type_v"]) == \
        ("f16", "q8_0", "q8_0")
    n_blocks = (full16["kv_bytes"] - 2 * 2 * 4) // (32 * (2 * ROW_F16 + 4) + 4)
    assert kv_bytes(n_blocks, ROW_F16) == full16["kv_bytes"]
    assert full8["kv_bytes"] == kv_bytes(n_blocks, ROW_Q8_0)
    # A compressed q8_0 context answers, alone and batched alike.
    ctx = make_context(q8, ratio=0.3)
    assert ctx["cache_type_k"] == "q8_0" and 0 < ctx["kept_fraction"] < 0.5
    c = client(q8)
    alone = [ask(c, q8, q, ctx["id"], max_tokens=12) for q in QUESTIONS]
    assert all(r.usage.completion_tokens == 12 for r in alone)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda q: ask(client(q8), q8, q, ctx["id"], max_tokens=12)
                                 .choices[0].message.content, QUESTIONS))
    assert together == [r.choices[0].message.content for r in alone]
    # A request without a context runs on a cache of the server's types too.
    held = {}
    for s in (f16, q8):
        assert ask(client(s), s, "Hi", max_tokens=40).usage.completion_tokens == 40
        held[s] = s.metric("kvzip_last_request_kv_bytes")
    assert 0 < held[q8] < held[f16] * 0.7
    # A context keeps the types it was built with: an f16 server reloads the q8_0 cache file.
    assert q8.stop() == 0
    again = start_server("--cache-dir", str(tmp_path), model=QWEN3)
    status, got = again.request("GET", f"/v1/contexts/{ctx['id']}")
    assert status == 200 and (got["cache_type_k"], got["cache_type_v"]) == ("q8_0", "q8_0")
    assert ask(client(again), again, QUESTIONS[0], ctx["id"], max_tokens=12) \
        .choices[0].message.content == alone[0].choices[0].message.content
    assert make_context(again, method="none")["cache_type_k"] == "f16"


@pytest.mark.parametrize("args, message", [
    (["--cache-type-k", "q5_1"], "unknown KV cache type 'q5_1' (use f16, q8_0 or q4_0)"),
    (["--cache-type-v", "q8_0"], "needs a head_dim that is a multiple of 32"),  # stories260K: 8
])
def test_bad_cache_type_is_refused_at_start(args, message):
    p = subprocess.run([kvzip_exe(), "serve", "-m", MODEL, "--port", "0", *args],
                       capture_output=True, text=True, timeout=60, env=kvzip_env())
    assert p.returncode == 1
    last = p.stderr.strip().splitlines()[-1]
    assert last.startswith("kvzip: error: ") and message in last, p.stderr


@pytest.mark.parametrize("how", ["deleted", "evicted"])
def test_context_counted_while_a_request_reads_it(start_server, tmp_path, how):
    """A context deleted, or evicted under --memory-budget, while a request reads it stays in
    memory until the request ends; the metrics count it meanwhile, and not once it is freed."""
    s = start_server("--parallel", "1", "--cache-dir", str(tmp_path), "--memory-budget",
                     "1" if how == "evicted" else "0")
    other = None
    # The tiny model may finish the request before the context goes (a loaded machine): then the
    # pair is tried again.
    for attempt in range(10):
        status, ctx = s.request("POST", "/v1/contexts", {"text": CONTEXT[:200], "method": "none"})
        assert status == 200, ctx
        assert s.metric("kvzip_kv_bytes_in_use") >= ctx["kv_bytes"]
        # As many tokens as the 512-token sequence holds after the context and the question.
        n_answer = 512 - ctx["n_prefix_tokens"] - ctx["n_context_tokens"] - 32
        assert n_answer >= 200, ctx
        conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=60)
        conn.request("POST", "/v1/chat/completions", json.dumps({
            "model": s.model, "stream": True, "max_tokens": n_answer, "ignore_eos": True,
            "temperature": 0, "context_id": ctx["id"],
            "messages": [{"role": "user", "content": "Hi"}]}))
        r = conn.getresponse()
        assert r.status == 200
        r.fp.readline()  # the first event: the request reads the context
        if how == "deleted":
            assert s.request("DELETE", f"/v1/contexts/{ctx['id']}")[0] == 200
        else:  # a second context over the budget evicts the first
            other = make_context(s, ratio=1.0, method="none")
        wait_for(lambda: s.metric("kvzip_kv_bytes_evicted_pending") > 0
                 or s.metric("kvzip_requests_active") == 0, 10)
        seen = s.metrics()
        conn.sock.shutdown(2)
        conn.close()
        if seen["kvzip_kv_bytes_evicted_pending"] > 0 or seen["kvzip_requests_active"] > 0:
            break
        assert wait_for(lambda: s.metric("kvzip_requests_active") == 0)
        if how == "evicted":
            assert s.request("DELETE", f"/v1/contexts/{other['id']}")[0] == 200
        assert s.request("DELETE", f"/v1/contexts/{ctx['id']}")[0] in (200, 404)
        assert wait_for(lambda: s.metric("kvzip_kv_bytes_in_use") == 0)
    else:
        pytest.fail(f"the {how} context's bytes were not counted while its request ran "
                    "(or the request always ended first), in 10 tries")
    assert seen["kvzip_kv_bytes_evicted_pending"] >= ctx["kv_bytes"], seen
    assert seen["kvzip_kv_bytes_in_use"] >= seen["kvzip_kv_bytes_evicted_pending"], seen
    assert seen["kvzip_contexts_evicted_pending"] == 1, seen
    assert seen["kvzip_contexts_resident"] == (0 if how == "deleted" else 1), seen
    # The disconnected request ends; then its context is freed and no longer counted.
    assert wait_for(lambda: s.metric("kvzip_requests_active") == 0)
    assert wait_for(lambda: s.metric("kvzip_kv_bytes_evicted_pending") == 0)
    after = s.metrics()
    assert after["kvzip_contexts_evicted_pending"] == 0
    if how == "deleted":
        assert after["kvzip_kv_bytes_in_use"] == 0, after
    else:  # the second context alone
        assert other["kv_bytes"] <= after["kvzip_kv_bytes_in_use"] <= \
            seen["kvzip_kv_bytes_in_use"] - seen["kvzip_kv_bytes_evicted_pending"], (seen, after)


def stream_build(s, text, events, started):
    """POSTs a streamed context build; appends its events (parsed, [DONE] as None)."""
    conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=60)
    conn.request("POST", "/v1/contexts", json.dumps({"text": text, "ratio": 0.3, "stream": True}))
    r = conn.getresponse()
    events.append(r.status)
    for line in r:
        if line.startswith(b"data: "):
            data = line[6:].strip()
            events.append(None if data == b"[DONE]" else json.loads(data))
            started.set()
    conn.close()


def test_context_builds_run_one_at_a_time(start_server):
    """A build waits for the running one (its stream says "queued"); beyond --build-queue waiting
    builds the server answers 429 at once."""
    s = start_server("--build-queue", "1", "--prefill-chunk", "1")
    # A long build (one token per chunk) runs while the others arrive; on a loaded machine it may
    # end first, and the three are tried again.
    for _ in range(5):
        a, b = [], []
        a_started, b_started = threading.Event(), threading.Event()
        ta = threading.Thread(target=stream_build, args=(s, CONTEXT * 2, a, a_started))
        ta.start()
        assert a_started.wait(30)
        tb = threading.Thread(target=stream_build, args=(s, CONTEXT, b, b_started))
        tb.start()
        assert b_started.wait(30)
        status, body = s.request("POST", "/v1/contexts", {"text": CONTEXT, "ratio": 0.3})
        gauges = (s.metric("kvzip_context_builds_running"),
                  s.metric("kvzip_context_builds_waiting"))
        ta.join(60)
        tb.join(60)
        assert not ta.is_alive() and not tb.is_alive()
        if status == 429:
            break
        assert status == 200, body  # the first build had ended: nothing to wait for
    else:
        pytest.fail("no 429 while one build ran and one waited, in 5 tries")
    assert body["error"]["code"] == "build_queue_full"
    assert "a context build is running and 1 more are waiting" in body["error"]["message"]
    assert gauges[0] <= 1 and gauges[1] <= 1
    # Both builds ended with their context; the second waited for the first.
    for events in (a, b):
        assert events[0] == 200 and events[-1] is None and events[-2]["object"] == "context"
    assert b[1] == {"object": "context.progress", "phase": "queued", "done": 1, "total": 1}
    assert "queued" not in {e.get("phase") for e in a[1:-1]}
    assert {"prefill", "score"} <= {e.get("phase") for e in b[2:-2]}
    assert s.metric("kvzip_context_builds_running") == 0
    assert s.metric("kvzip_context_builds_waiting") == 0
    # No build waits: a build is answered again.
    assert make_context(s)["object"] == "context"


def test_no_build_queue_refuses_a_second_build(start_server):
    s = start_server("--build-queue", "0", "--prefill-chunk", "1")
    for _ in range(5):
        a, a_started = [], threading.Event()
        ta = threading.Thread(target=stream_build, args=(s, CONTEXT * 2, a, a_started))
        ta.start()
        assert a_started.wait(30)
        status, body = s.request("POST", "/v1/contexts", {"text": CONTEXT})
        streamed = s.request("POST", "/v1/contexts", {"text": CONTEXT, "stream": True})
        ta.join(60)
        if status == 429 and streamed[0] == 429:
            break
    else:
        pytest.fail("no 429 while a build ran, in 5 tries")
    assert "a context build is running and 0 more are waiting (at most 0 may wait)" in \
        body["error"]["message"]
    assert streamed[1]["error"]["code"] == "build_queue_full"  # a status, not a stream
    assert a[-2]["object"] == "context"
