#!/usr/bin/env bash
# Fetches a glslang that compiles GL_NV_cooperative_matrix2 (no Debian 12 or cmeel glslang can):
# the shared library libslang-glslang that PyPI's slangpy wheel carries (glslang and SPIRV-Tools
# of 2026, built by the Slang project, with a C entry point, glslang_compile_1_2). Build time only:
# tools/glsl_cm2.py drives it, cmake/glslang_cm2.cmake probes it and then builds the *_cm2 shader
# variants; without it those variants are simply not built and the engine uses the others.
# Usage: tools/fetch_glslang_cm2.sh [dest]   (default: <repo>/.tools/glslang-cm2). Prints the
# library's path.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
dest=${1:-$repo/.tools/glslang-cm2}
lib=libslang-glslang-2026.12.so
if [ -f "$dest/$lib" ]; then
  echo "$dest/$lib"
  exit 0
fi
# Wheel -> sha256 (as downloaded on 2026-11-26: slangpy 0.43.1, Slang 2026.12, manylinux_2_34
# x86_64; Debian 12 has glibc 2.36). 92 MB downloaded, 10 MB kept.
whl=slangpy-0.43.1-cp311-cp311-manylinux_2_34_x86_64.whl
sha=965dbbd1d907c90e17027945780146a67c66baf766f3d0b8af3f52ea2c4a8eb9
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --no-deps --only-binary=:all: --platform manylinux_2_34_x86_64 \
  --python-version 3.11 -d "$tmp" slangpy==0.43.1 >&2
echo "$sha  $tmp/$whl" | sha256sum -c --quiet - >&2
mkdir -p "$dest"
python3 - "$tmp/$whl" "$dest" "$lib" <<'PY'
import os, sys, zipfile
whl, dest, lib = sys.argv[1:4]
with zipfile.ZipFile(whl) as z:
    data = z.read("slangpy/" + lib)
    notice = [n for n in z.namelist() if n.endswith(".dist-info/licenses/LICENSE")]
    with open(os.path.join(dest, lib), "wb") as f:
        f.write(data)
    for n in notice:  # the wheel's licence travels with the library
        with open(os.path.join(dest, "LICENSE.slangpy"), "wb") as f:
            f.write(z.read(n))
PY
echo "$dest/$lib"
