"""Starts and stops `kvzip serve` for the server tests (tests/server/): a free port on 127.0.0.1,
the CPU backend, the committed test model; every wait is bounded."""
import http.client
import json
import os
import re
import subprocess
import threading
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODEL = os.path.join(ROOT, "tests", "data", "stories260K", "stories260K.bin")
# head_dim 32: quantised KV cache types need whole blocks of 32 values (stories260K's is 8).
QWEN3 = os.path.join(ROOT, "tests", "data", "parity", "qwen3.gguf")
START_TIMEOUT_S = 60
STOP_TIMEOUT_S = 30


def kvzip_exe():
    return os.environ.get("KVZIP", os.path.join(ROOT, "build", "tools", "kvzip"))


def kvzip_env():
    return dict(os.environ, KVZIP_DEVICE=os.environ.get("KVZIP_DEVICE", "cpu"))


class Server:
    """One `kvzip serve` process; `args` are extra command-line options."""

    def __init__(self, *args, model=MODEL):
        self.proc = subprocess.Popen([kvzip_exe(), "serve", "-m", model, "--port", "0", *args],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True, env=kvzip_env())
        self.log = []
        self.port = None
        ready = threading.Event()

        def read():
            for line in self.proc.stderr:
                self.log.append(line)
                m = re.search(r"on http://[\d.]+:(\d+) ", line)
                if m:
                    self.port = int(m.group(1))
                    ready.set()
            ready.set()

        threading.Thread(target=read, daemon=True).start()
        if not ready.wait(START_TIMEOUT_S) or self.port is None:
            self.stop()
            raise RuntimeError("kvzip serve did not start:\n" + "".join(self.log))
        self.model = os.path.basename(model)

    @property
    def base_url(self):
        return f"http://127.0.0.1:{self.port}/v1"

    def request(self, method, path, body=None, headers=None, timeout=60):
        """(status, parsed JSON or text) of one HTTP request."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        data = body if isinstance(body, (bytes, str)) or body is None else json.dumps(body)
        c.request(method, path, body=data, headers={"Content-Type": "application/json",
                                                     **(headers or {})})
        r = c.getresponse()
        text = r.read().decode()
        c.close()
        try:
            return r.status, json.loads(text)
        except ValueError:
            return r.status, text

    def metric(self, name):
        _, text = self.request("GET", "/metrics")
        m = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
        return float(m.group(1)) if m else None

    def metrics(self):
        """Every unlabelled metric of one /metrics scrape: {name: value}."""
        _, text = self.request("GET", "/metrics")
        return {m.group(1): float(m.group(2))
                for m in re.finditer(r"^([a-z_]+) (\S+)$", text, re.M)}

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@pytest.fixture
def start_server():
    started = []

    def start(*args, model=MODEL):
        s = Server(*args, model=model)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()
