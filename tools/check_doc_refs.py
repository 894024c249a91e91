#!/usr/bin/env python3
"""Every documentation reference resolves inside the repository (tools/, run by ctest as doc_refs).

Scans the sources, scripts and Markdown files of the repository (not build trees, data folders or
raw results) and checks:
  - repository paths to documents (`docs/X.md`, `bench/RESULTS.md`, `tools/data/.../SOURCE.md`)
    and bare design-document names (`ALGORITHMS.md`, `STYLE.md`): the file exists;
  - in Markdown, repository paths to any file (`model/families/registry.cpp`) and relative links
    `[text](path)`: the file or folder exists;
  - `ALGORITHMS.md 1.3` / `ALGORITHMS 2.6`: that numbered section of docs/ALGORITHMS.md exists;
  - `STYLE B12` / `STYLE.md B1`: that section of docs/STYLE.md exists;
  - `X.md, "Section name"`: the quoted name occurs in X.md;
  - nothing points outside the repository (`shared/design`).
Prints one line per broken reference (file:line: what) and exits 1 if there is any.

Usage: check_doc_refs.py [REPO_ROOT]   (default: the folder above this script's)
"""
import os
import re
import sys

SCAN_EXT = {".md", ".h", ".cpp", ".comp", ".glsl", ".py", ".sh", ".cmake", ".txt", ".toml"}
SCAN_NAMES = {"CMakeLists.txt", "run"}
# Build trees, fetched tools, data and raw results: not documentation.
SKIP_DIRS = {".git", ".tools", "data", "results", "corpus", "__pycache__", "node_modules"}
TOP = ("docs", "bench", "tools", "tests", "runtime", "model", "kvzip", "server", "shaders",
       "cmake", "python", ".ci")
# This checker and its test, which hold broken references on purpose.
SKIP_FILES = {os.path.normpath("tools/check_doc_refs.py"), os.path.normpath("tests/tools/doc_refs_test.py")}
DESIGN_DOCS = {"ALGORITHMS.md", "ARCHITECTURE.md", "STYLE.md", "TUNING.md"}

PATH_RE = re.compile(r"(?<![\w./$-])((?:%s)/[\w./-]*[\w-]\.(?:md|h|cpp|comp|glsl|py|sh|cmake|txt|json|"
                     r"toml|tar\.xz|gguf|bin|jsonl)|README\.md)\b" % "|".join(re.escape(t) for t in TOP))
BARE_DOC_RE = re.compile(r"(?<![\w./$-])([A-Z][A-Z_]+\.md)\b")
ALG_RE = re.compile(r"\bALGORITHMS(?:\.md)?,? (?:§ ?)?(\d+(?:\.\d+)?)\b")
STYLE_RE = re.compile(r"\bSTYLE(?:\.md)?,? (B\d+)\b")
SECTION_RE = re.compile(r"((?:[\w.-]+/)*[\w.-]+\.md),? \"([^\"]+)\"")
LINK_RE = re.compile(r"\]\(([^)\s]+)\)")


def scanned_files(root):
    for d, dirs, files in os.walk(root):
        rel_d = os.path.relpath(d, root)
        dirs[:] = sorted(x for x in dirs if x not in SKIP_DIRS and not x.startswith("build"))
        for f in sorted(files):
            if os.path.splitext(f)[1] in SCAN_EXT or f in SCAN_NAMES:
                if rel_d == "." and f not in ("README.md", "CMakeLists.txt"):
                    continue
                yield os.path.normpath(os.path.join(rel_d, f))


def sections(root, doc, pattern):
    path = os.path.join(root, doc)
    if not os.path.exists(path):
        return set()
    with open(path, encoding="utf-8") as f:
        return {m.group(1) for m in re.finditer(pattern, f.read(), re.M)}


def main():
    root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                           os.path.join(os.path.dirname(__file__), ".."))
    alg = sections(root, "docs/ALGORITHMS.md", r"^#{2,3} (\d+(?:\.\d+)?)\.? ")
    style = sections(root, "docs/STYLE.md", r"^#{2,3} (B\d+)\. ")
    texts = {}
    errors = []

    def text_of(rel):
        if rel not in texts:
            with open(os.path.join(root, rel), encoding="utf-8") as f:
                texts[rel] = f.read()
        return texts[rel]

    def doc_path(name, rel):
        """The repository file a document name means, or None."""
        for cand in (name, os.path.join(os.path.dirname(rel), name), os.path.join("docs", name)):
            cand = os.path.normpath(cand)
            if os.path.isfile(os.path.join(root, cand)):
                return cand
        return None

    n_refs = 0
    for rel in scanned_files(root):
        if rel in SKIP_FILES:
            continue
        try:
            lines = text_of(rel).splitlines()
        except UnicodeDecodeError:
            continue
        md = rel.endswith(".md")
        for i, line in enumerate(lines, 1):
            where = f"{rel}:{i}"
            if "shared/design" in line:
                errors.append(f"{where}: points outside the repository (shared/design)")
            for m in PATH_RE.finditer(line):
                p = m.group(1).rstrip(".")
                if not md and not p.endswith(".md"):
                    continue  # code comments name code by path freely; the compiler checks includes
                n_refs += 1
                if not os.path.exists(os.path.join(root, p)):
                    errors.append(f"{where}: {p} does not exist")
            for m in BARE_DOC_RE.finditer(line):
                if m.group(1) in DESIGN_DOCS:
                    n_refs += 1
                    if not doc_path(m.group(1), rel):
                        errors.append(f"{where}: {m.group(1)} not found")
            for m in ALG_RE.finditer(line):
                n_refs += 1
                if m.group(1) not in alg:
                    errors.append(f"{where}: docs/ALGORITHMS.md has no section {m.group(1)}")
            for m in STYLE_RE.finditer(line):
                n_refs += 1
                if m.group(1) not in style:
                    errors.append(f"{where}: docs/STYLE.md has no section {m.group(1)}")
            for m in SECTION_RE.finditer(line):
                doc = doc_path(m.group(1), rel)
                if not doc:
                    continue  # a missing file is reported above
                n_refs += 1
                if m.group(2) not in text_of(doc):
                    errors.append(f"{where}: {doc} has no \"{m.group(2)}\"")
            if md:
                for m in LINK_RE.finditer(line):
                    target = m.group(1).split("#")[0]
                    if not target or re.match(r"^[a-z]+:", target):
                        continue
                    n_refs += 1
                    path = os.path.normpath(os.path.join(os.path.dirname(rel), target))
                    if path.startswith("..") or not os.path.exists(os.path.join(root, path)):
                        errors.append(f"{where}: link {target} does not resolve in the repository")
    for e in errors:
        print(e)
    print(f"{n_refs} references checked, {len(errors)} broken", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
