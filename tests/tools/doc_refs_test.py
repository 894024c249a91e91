#!/usr/bin/env python3
"""tools/check_doc_refs.py (tests/tools): on a small tree with one broken reference of each kind
it reports each of them and only them; then every documentation reference of the repository
resolves."""
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHECK = os.path.join(ROOT, "tools", "check_doc_refs.py")


def run(root):
    r = subprocess.run([sys.executable, CHECK, root], capture_output=True, text=True)
    return r.returncode, r.stdout.splitlines()


def write(root, rel, text):
    os.makedirs(os.path.dirname(os.path.join(root, rel)), exist_ok=True)
    with open(os.path.join(root, rel), "w", encoding="utf-8") as f:
        f.write(text)


with tempfile.TemporaryDirectory() as tmp:
    write(tmp, "docs/ALGORITHMS.md", "# A\n## 1. Scoring\n### 1.2 Inputs\n")
    write(tmp, "docs/STYLE.md", "# S\n### B1. Layering\n")
    write(tmp, "bench/RESULTS.md", "# R\n**Occupancy rules** hold.\n")
    write(tmp, "model/a.cpp",
          "// ALGORITHMS.md 1.2, ALGORITHMS 1, STYLE B1, bench/RESULTS.md, \"Occupancy rules\"\n"
          "// ALGORITHMS.md 1.3\n"
          "// STYLE.md B9\n"
          "// bench/RESULTS.md, \"No such part\"\n"
          "// docs/MISSING.md; model/not_here.h (code: the compiler's business)\n"
          "// ../shared/design/X\n"
          "// TUNING.md\n")
    write(tmp, "README.md",
          "[ok](docs/STYLE.md) [web](https://example.org) `model/a.cpp`\n"
          "[gone](docs/GONE.md)\n"
          "`model/gone.cpp`\n"
          "[up](../outside.md)\n")
    rc, out = run(tmp)
    want = [
        "README.md:2: docs/GONE.md does not exist",
        "README.md:2: link docs/GONE.md does not resolve in the repository",
        "README.md:3: model/gone.cpp does not exist",
        "README.md:4: link ../outside.md does not resolve in the repository",
        "model/a.cpp:2: docs/ALGORITHMS.md has no section 1.3",
        "model/a.cpp:3: docs/STYLE.md has no section B9",
        "model/a.cpp:4: bench/RESULTS.md has no \"No such part\"",
        "model/a.cpp:5: docs/MISSING.md does not exist",
        "model/a.cpp:6: points outside the repository (shared/design)",
        "model/a.cpp:7: TUNING.md not found",
    ]
    if rc != 1 or sorted(out) != sorted(want):
        raise SystemExit("FAILED on the broken tree: rc %d, got\n  %s\nwanted\n  %s"
                         % (rc, "\n  ".join(out), "\n  ".join(want)))

rc, out = run(ROOT)
if rc != 0:
    raise SystemExit("FAILED: broken documentation references:\n  " + "\n  ".join(out))
print("doc_refs: ok")
