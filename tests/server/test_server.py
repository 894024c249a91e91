"""`kvzip serve` against the real `openai` Python client on the CPU backend (tests/server/):
chat, streaming, completions, contexts queried by concurrent clients (answers equal to the
single-client greedy answers), restart keeps contexts, each error status, a client that
disconnects mid-stream."""
import concurrent.futures
import http.client
import json
import os
import threading
import time

import openai
import pytest

from conftest import MODEL

CONTEXT = (
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the park "
    "with her red ball. One day, she saw a big dog under a tree. The dog was sad because it was "
    "lost. Lily said, \"Do not be sad, dog. I will help you find your home.\" They walked and "
    "walked until they found a small house with a blue door. A kind old man opened the door.")
QUESTIONS = ["Who was lost?", "What color was the door?", "Where did Lily play?",
             "What did the old man do?"]


def wait_for(cond, timeout_s=20):
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


def client(server, **kw):
    return openai.OpenAI(base_url=server.base_url, api_key=kw.pop("api_key", "none"),
                         max_retries=0, timeout=60, **kw)


def ask(c, server, question, context_id=None, max_tokens=24, **extra):
    body = {"ignore_eos": True, **extra}
    if context_id:
        body["context_id"] = context_id
    r = c.chat.completions.create(model=server.model, temperature=0, max_tokens=max_tokens,
                                  messages=[{"role": "user", "content": question}],
                                  extra_body=body)
    return r


def make_context(server, ratio=0.3, method="kvzip"):
    status, body = server.request("POST", "/v1/contexts",
                                  {"text": CONTEXT, "ratio": ratio, "method": method})
    assert status == 200, body
    return body


def test_models_health_and_chat(start_server):
    s = start_server()
    c = client(s)
    assert [m.id for m in c.models.list().data] == [s.model]
    assert s.request("GET", "/health") == (200, {"status": "ok"})
    r = ask(c, s, "Tell me a story.", max_tokens=16)
    assert r.object == "chat.completion"
    assert r.choices[0].message.role == "assistant"
    assert r.choices[0].message.content
    assert r.choices[0].finish_reason == "length"
    assert r.usage.completion_tokens == 16
    assert r.usage.prompt_tokens > 0
    assert r.usage.total_tokens == r.usage.prompt_tokens + 16
    # Greedy is deterministic; seeded sampling repeats with the same seed.
    assert ask(c, s, "Tell me a story.", max_tokens=16).choices[0].message.content == \
        r.choices[0].message.content
    sampled = [c.chat.completions.create(model=s.model, temperature=0.9, seed=7, max_tokens=16,
                                         messages=[{"role": "user", "content": "Hi"}],
                                         extra_body={"ignore_eos": True})
               .choices[0].message.content for _ in range(2)]
    assert sampled[0] == sampled[1]


def test_streaming_equals_non_streaming(start_server):
    s = start_server()
    c = client(s)
    full = ask(c, s, "Tell me about a dog.", max_tokens=20).choices[0].message.content
    pieces, finish, usage = [], None, None
    stream = c.chat.completions.create(model=s.model, temperature=0, max_tokens=20, stream=True,
                                       stream_options={"include_usage": True},
                                       messages=[{"role": "user", "content": "Tell me about a dog."}],
                                       extra_body={"ignore_eos": True})
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for ch in chunk.choices:
            pieces.append(ch.delta.content or "")
            finish = ch.finish_reason or finish
    assert "".join(pieces) == full
    # It really streams: a longer answer arrives in several pieces (a short one may be produced
    # before the first piece is sent).
    long_stream = c.chat.completions.create(
        model=s.model, temperature=0, max_tokens=300, stream=True,
        messages=[{"role": "user", "content": "Tell me about a dog."}],
        extra_body={"ignore_eos": True})
    assert len([ch for ch in long_stream if ch.choices and ch.choices[0].delta.content]) > 1
    assert finish == "length"
    assert usage.completion_tokens == 20
    # Stop sequences end the answer before them.
    stop = full[len(full) // 2:len(full) // 2 + 3]
    if stop.strip():
        r = ask(c, s, "Tell me about a dog.", max_tokens=20, stop=[stop])
        assert r.choices[0].message.content == full[:full.index(stop)]
        assert r.choices[0].finish_reason == "stop"


def test_completions(start_server):
    s = start_server()
    c = client(s)
    r = c.completions.create(model=s.model, prompt="Once upon a time", max_tokens=12,
                             temperature=0, extra_body={"ignore_eos": True})
    assert r.object == "text_completion"
    assert r.choices[0].text
    assert r.usage.completion_tokens == 12
    text = "".join(ch.choices[0].text for ch in c.completions.create(
        model=s.model, prompt="Once upon a time", max_tokens=12, temperature=0, stream=True,
        extra_body={"ignore_eos": True}) if ch.choices)
    assert text == r.choices[0].text


def test_context_four_concurrent_clients_and_restart(start_server, tmp_path):
    s = start_server("--parallel", "4", "--cache-dir", str(tmp_path))
    ctx = make_context(s, ratio=0.3)
    assert ctx["method"] == "kvzip" and 0 < ctx["kept_fraction"] < 0.5
    assert ctx["kv_bytes"] < ctx["kv_bytes_full"]
    full = make_context(s, ratio=1.0)
    c = client(s)
    alone = [ask(c, s, q, ctx["id"]).choices[0].message.content for q in QUESTIONS]
    # The compressed context answers; the cached tokens are reported as such.
    r = ask(c, s, QUESTIONS[0], ctx["id"])
    assert r.usage.prompt_tokens_details.cached_tokens == \
        ctx["n_prefix_tokens"] + ctx["n_context_tokens"]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        together = list(pool.map(
            lambda q: ask(client(s), s, q, ctx["id"]).choices[0].message.content, QUESTIONS))
    assert together == alone
    assert s.metric("kvzip_decode_rows_total") > s.metric("kvzip_decode_steps_total")  # batched
    status, listed = s.request("GET", "/v1/contexts")
    assert status == 200 and {x["id"] for x in listed["data"]} == {ctx["id"], full["id"]}
    assert s.stop() == 0
    # Each context is a cache file and a JSON sidecar, both written whole (no temporaries left).
    assert sorted(os.listdir(tmp_path)) == sorted(
        f"{x['id']}.{ext}" for x in (ctx, full) for ext in ("json", "kvzc"))
    with open(tmp_path / f"{ctx['id']}.json") as f:
        side = json.load(f)
    assert side["id"] == ctx["id"] and side["kv_bytes"] == ctx["kv_bytes"] and side["model"]
    # A restart reloads both contexts from the cache folder; the answers are unchanged.
    s2 = start_server("--parallel", "4", "--cache-dir", str(tmp_path))
    status, got = s2.request("GET", f"/v1/contexts/{ctx['id']}")
    assert status == 200 and got["kept_fraction"] == ctx["kept_fraction"]
    c2 = client(s2)
    assert [ask(c2, s2, q, ctx["id"]).choices[0].message.content for q in QUESTIONS] == alone
    assert s2.request("DELETE", f"/v1/contexts/{full['id']}")[0] == 200
    assert s2.request("GET", f"/v1/contexts/{full['id']}")[0] == 404


def test_memory_budget_evicts_and_reloads(start_server, tmp_path):
    s = start_server("--cache-dir", str(tmp_path), "--memory-budget", "1")
    a, b = make_context(s, ratio=0.5), make_context(s, ratio=1.0)
    assert s.metric("kvzip_contexts_resident") == 1  # the budget holds one at a time
    c = client(s)
    first = ask(c, s, QUESTIONS[0], a["id"]).choices[0].message.content  # reloads a
    ask(c, s, QUESTIONS[0], b["id"])  # reloads b, evicts a
    assert ask(c, s, QUESTIONS[0], a["id"]).choices[0].message.content == first
    assert s.metric("kvzip_contexts") == 2


def test_context_progress_stream(start_server):
    s = start_server()
    conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=60)
    conn.request("POST", "/v1/contexts", json.dumps({"text": CONTEXT, "ratio": 0.3,
                                                     "stream": True}))
    r = conn.getresponse()
    assert r.status == 200
    events = [line[6:] for line in r.read().decode().splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    phases = {json.loads(e).get("phase") for e in events[:-2]}
    assert {"prefill", "score"} <= phases
    assert json.loads(events[-2])["object"] == "context"


def test_error_statuses(start_server):
    s = start_server("--ctx-size", "160", "--parallel", "1", "--queue", "0")
    c = client(s)
    status, body = s.request("POST", "/v1/chat/completions", "{not json")
    assert status == 400 and body["error"]["type"] == "invalid_request_error"
    with pytest.raises(openai.BadRequestError):
        c.chat.completions.create(model=s.model, temperature=5,
                                  messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.BadRequestError):
        c.chat.completions.create(model=s.model, messages=[])
    with pytest.raises(openai.NotFoundError):
        c.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.NotFoundError):
        ask(c, s, "x", context_id="ctx-0000")
    assert s.request("GET", "/v1/contexts/ctx-0000")[0] == 404
    status, body = s.request("GET", "/v1/nothing")
    assert status == 404 and "error" in body
    with pytest.raises(openai.APIStatusError) as e:
        ask(c, s, "word " * 200, max_tokens=8)
    assert e.value.status_code == 413
    status, body = s.request("POST", "/v1/contexts", {"text": CONTEXT * 3})
    assert status == 413 and body["error"]["code"] == "context_length_exceeded"
    status, body = s.request("POST", "/v1/contexts", {"text": CONTEXT, "method": "kvzap"})
    assert status == 400
    status, body = s.request("POST", "/v1/chat/completions", "x" * (17 << 20))
    assert status == 413
    # One slot and no queue: a second request while the first decodes is refused with 429. The
    # tiny model may finish its 100 tokens before the second request arrives (a loaded machine):
    # then the second is answered, and the pair is tried again.
    for _ in range(5):
        stream = c.chat.completions.create(model=s.model, temperature=0, max_tokens=100,
                                           stream=True, messages=[{"role": "user", "content": "Hi"}],
                                           extra_body={"ignore_eos": True})
        next(iter(stream))
        try:
            ask(c, s, "Hi", max_tokens=4)
        except openai.RateLimitError:
            break
        finally:
            stream.close()
        assert wait_for(lambda: s.metric("kvzip_requests_active") == 0)
    else:
        pytest.fail("no 429 while the only slot was decoding, in 5 tries")
    # The closed stream frees the slot within a step; then the server answers again.
    assert wait_for(lambda: s.metric("kvzip_requests_active") == 0)
    assert ask(c, s, "Hi", max_tokens=4).usage.completion_tokens == 4


def test_api_key_and_503_without_cache_dir(start_server):
    s = start_server("--api-key", "sekret", "--memory-budget", "1")
    with pytest.raises(openai.AuthenticationError):
        client(s, api_key="wrong").models.list()
    assert s.request("GET", "/health")[0] == 200  # health needs no key
    assert client(s, api_key="sekret").models.list().data[0].id == s.model
    # No cache folder: a context over the budget cannot be evicted, so it is refused.
    status, body = s.request("POST", "/v1/contexts", {"text": CONTEXT, "ratio": 0.3},
                             headers={"Authorization": "Bearer sekret"})
    assert status == 503 and "error" in body


def test_disconnect_mid_stream_frees_the_slot(start_server):
    s = start_server("--parallel", "1", "--queue", "4", "--ctx-size", "512")
    conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=60)
    conn.request("POST", "/v1/chat/completions", json.dumps({
        "model": s.model, "stream": True, "max_tokens": 400, "ignore_eos": True,
        "temperature": 0, "messages": [{"role": "user", "content": "Hi"}]}))
    r = conn.getresponse()
    assert r.status == 200
    r.fp.readline()  # the first event arrived: the request holds the only slot
    conn.sock.shutdown(2)
    conn.close()
    assert wait_for(lambda: s.metric('kvzip_requests_total{outcome="cancelled"}') == 1)
    assert s.metric("kvzip_requests_active") == 0
    assert s.metric("kvzip_generated_tokens_total") < 400
    c = client(s)
    assert ask(c, s, "Hi", max_tokens=4).usage.completion_tokens == 4


def test_kvzap_and_none_contexts(start_server):
    zap = os.path.join(os.path.dirname(MODEL), "stories260K.linear.kvzap")
    s = start_server("--kvzap", zap)
    status, none = s.request("POST", "/v1/contexts", {"text": CONTEXT, "method": "none"})
    assert status == 200 and none["kept_fraction"] == 1.0 and none["method"] == "none"
    status, z = s.request("POST", "/v1/contexts",
                          {"messages": [{"role": "user", "content": CONTEXT}], "method": "kvzap",
                           "threshold": 0.0})
    assert status == 200, z
    assert z["method"] == "kvzap" and z["kept_fraction"] < 1.0 and z["kv_bytes"] < none["kv_bytes"]
    c = client(s)
    assert ask(c, s, QUESTIONS[0], z["id"]).usage.completion_tokens == 24


def test_context_build_keeps_streams_going(start_server):
    """While a context is built, streaming requests keep receiving tokens: the build runs one
    step of the active requests after each of its chunks."""
    s = start_server("--parallel", "2", "--prefill-chunk", "2")
    arrivals, stop = [], threading.Event()

    def stream_until_stopped():
        c = client(s)
        while not stop.is_set():  # one streaming request after another, so one is always active
            for chunk in c.chat.completions.create(
                    model=s.model, stream=True, temperature=0, max_tokens=400,
                    messages=[{"role": "user", "content": "Hi"}],
                    extra_body={"ignore_eos": True}):
                if chunk.choices and chunk.choices[0].delta.content:
                    arrivals.append(time.monotonic())

    readers = [threading.Thread(target=stream_until_stopped, daemon=True) for _ in range(2)]
    for t in readers:
        t.start()
    assert wait_for(lambda: len(arrivals) >= 2)
    steps0 = s.metric("kvzip_context_build_steps_total")
    conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=60)
    conn.request("POST", "/v1/contexts", json.dumps({"text": CONTEXT, "ratio": 0.3,
                                                     "stream": True}))
    r = conn.getresponse()
    assert r.status == 200
    first = None
    for line in r:
        if line.startswith(b"data: ") and first is None:
            first = time.monotonic()  # the first progress event: the build runs
    end = time.monotonic()
    conn.close()
    build_steps = s.metric("kvzip_context_build_steps_total") - steps0
    stop.set()
    for t in readers:
        t.join(60)
        assert not t.is_alive()
    assert first is not None
    during = [t for t in arrivals if first <= t <= end]
    assert len(during) >= 10, (len(during), build_steps, end - first)
    assert build_steps >= 10, build_steps
    assert s.metric('kvzip_requests_total{outcome="failed"}') == 0


def test_requests_share_the_context_blocks(start_server):
    """A request on a context holds KV memory for its own rows only (the context's blocks are
    shared, not copied), so what it holds does not grow with the context; batched answers on the
    shared blocks equal the single ones."""
    s = start_server("--parallel", "4")
    short = make_context(s, ratio=1.0, method="none")
    status, long = s.request("POST", "/v1/contexts", {"text": CONTEXT + " " + CONTEXT[:300],
                                                      "method": "none"})
    assert status == 200, long
    assert long["kv_bytes"] > 1.5 * short["kv_bytes"]
    c = client(s)
    held = {}
    for ctx in (short, long):
        ask(c, s, QUESTIONS[0], ctx["id"], max_tokens=8)
        held[ctx["id"]] = s.metric("kvzip_last_request_kv_bytes")
        assert 0 < held[ctx["id"]] < ctx["kv_bytes"] / 3
    # The longer context adds to what a request holds at most a partial block per head and a
    # longer block table, far less than its extra rows.
    assert held[long["id"]] - held[short["id"]] < (long["kv_bytes"] - short["kv_bytes"]) / 4
    # More own tokens, more memory.
    ask(c, s, QUESTIONS[0], long["id"], max_tokens=150)
    assert s.metric("kvzip_last_request_kv_bytes") > held[long["id"]]
    alone = [ask(c, s, q, long["id"], max_tokens=40).choices[0].message.content
             for q in QUESTIONS]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        together = list(pool.map(
            lambda q: ask(client(s), s, q, long["id"], max_tokens=40).choices[0].message.content,
            QUESTIONS))
    assert together == alone
    assert wait_for(lambda: s.metric("kvzip_request_kv_bytes") == 0)  # all blocks given back
