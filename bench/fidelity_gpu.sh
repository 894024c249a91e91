#!/usr/bin/env bash
# KVzip fidelity against NVIDIA kvpress on the lent GPU machine (docs/FIDELITY.md): our binary on
# Vulkan and kvpress on PyTorch/CUDA, on the same GGUF and the same token ids.
#   C=CARRY bench/fidelity_gpu.sh SECONDS STEP...
#   STEP: parity (scores at 2K, 4K, 8K, 16K tokens; CPU backend too at 2K)
#         acc_niah8k | acc_kv | acc_squad (answers: ours and kvpress' KVzip and SnapKV)
# CARRY (default .carry_fidelity) holds bin/kvzip (bin/lib: its shared libraries fmt, spdlog,
# pcre2), whl/*.whl (kvpress, gguf, transformers 5.2,
# tokenizers 0.22, cachetools), tools/kvpress_{reference,compare}.py and the model as parts
# m/part* (put together once, checked against tools/fetch_model.sh's hash). Results go to $OUT.
set -uo pipefail
C=${C:-.carry_fidelity}
END=$(($(date +%s) + $1))
shift
OUT=${OUT:-$PWD/fidelity-out} W=${W:-/tmp/fid}
mkdir -p "$OUT" "$W"
for f in .gl/*.deb; do [ -f "$f" ] && dpkg -x "$f" /; done
ldconfig 2>/dev/null
export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json PYTHONUNBUFFERED=1
export LD_LIBRARY_PATH=$PWD/$C/bin/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
if [ ! -d "$W/site" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$W/site" "$C"/whl/*.whl ||
    exit 1
fi
export PYTHONPATH=$W/site
Q=$W/qwen2.5-coder-0.5b-instruct.gguf
if [ ! -f "$Q" ]; then
  # The parts: $W/m (moved there call by call while the machine stays warm) or $C/m.
  if [ -d "$W/m" ]; then cat "$W"/m/part* >"$Q.tmp"; else cat "$C"/m/part* >"$Q.tmp"; fi
  echo "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32  $Q.tmp" | sha256sum -c - || exit 1
  mv "$Q.tmp" "$Q"
fi
K=$C/bin/kvzip
PY="python3 $C/tools"
left() { echo $((END - $(date +%s))); }
REF="$PY/kvpress_reference.py --model $Q --cache $W/hf"
for step in "$@"; do
  if [ "$(left)" -lt 30 ]; then
    echo "$step: no time"
    continue
  fi
  t0=$(date +%s)
  case $step in
    parity)
      P=$W/parity
      mkdir -p "$P"
      for L in 2000 4000 8000 16000; do
        [ -f "$P/ours$L/1.f32" ] || timeout "$(left)" "$K" eval --task niah --length $L --num 2 \
          --vary-haystack --model "$Q" --data tools/data/eval --chunk 2000 \
          --dump-samples "$P/s$L.jsonl" --dump-scores "$P/ours$L" >>"$OUT/parity_ours.log" 2>&1
      done
      [ -f "$P/cpu2000/0.f32" ] || KVZIP_DEVICE=cpu timeout "$(left)" "$K" eval --task niah --length 2000 \
        --num 2 --vary-haystack --model "$Q" --data tools/data/eval --chunk 2000 \
        --dump-samples "$P/cpu_s2000.jsonl" --dump-scores "$P/cpu2000" >>"$OUT/parity_ours.log" 2>&1
      for L in 2000 4000 8000 16000; do
        [ -f "$P/ref$L/1.f32" ] || timeout "$(left)" $REF --samples "$P/s$L.jsonl" \
          --scores-out "$P/ref$L" >>"$OUT/parity_ref.log" 2>&1
      done
      for L in 2000 4000 8000 16000; do
        echo "### $L tokens (GPU, Vulkan)"
        $PY/kvpress_compare.py --samples "$P/s$L.jsonl" --ours "$P/ours$L" --ref "$P/ref$L" \
          --json "$OUT/parity_$L.json"
      done >"$OUT/parity.md" 2>&1
      { echo "### 2000 tokens (CPU backend)"; cmp -s "$P/s2000.jsonl" "$P/cpu_s2000.jsonl" &&
        $PY/kvpress_compare.py --samples "$P/s2000.jsonl" --ours "$P/cpu2000" --ref "$P/ref2000" \
          --json "$OUT/parity_cpu2000.json"; } >>"$OUT/parity.md" 2>&1
      cat "$OUT/parity.md"
      ;;
    acc_niah8k | acc_kv | acc_squad)
      A=$W/acc
      mkdir -p "$A"
      case $step in
        acc_niah8k) args="--task niah --length 8192 --num ${NIAH_NUM:-8} --vary-haystack" ;;
        acc_kv) args="--task kv --num ${KV_NUM:-8}" ;;
        acc_squad) args="--task squad --num ${SQUAD_NUM:-10}" ;;
      esac
      # shellcheck disable=SC2086  # $args is a list of options
      "$K" eval $args --model "$Q" --data tools/data/eval --dump-samples "$A/$step.samples.jsonl" \
        >/dev/null 2>&1
      # shellcheck disable=SC2086
      timeout "$(left)" "$K" eval $args --model "$Q" --data tools/data/eval --methods kvzip,snapkv \
        --ratios 0.1,0.3,0.5,1.0 --out "$OUT/$step.ours.jsonl" >"$OUT/$step.ours.log" 2>&1
      timeout "$(left)" $REF --samples "$A/$step.samples.jsonl" --answers-out "$OUT/$step.ref.jsonl" \
        --methods kvzip,snapkv --ratios 0.1,0.3,0.5 >"$OUT/$step.ref.log" 2>&1
      $PY/kvpress_compare.py --acc-ours "$OUT/$step.ours.jsonl" --acc-ref "$OUT/$step.ref.jsonl" \
        | tee "$OUT/$step.md"
      ;;
    *) echo "unknown step $step" >&2 ;;
  esac
  echo "$step: $(($(date +%s) - t0)) s"
done
# The lent machine returns at most eight files: the tables stay, the rest goes in one archive.
(cd "$OUT" && shopt -s nullglob && f=$(ls | grep -v '\.md$' | grep -v '^raw.*\.tgz$') &&
  [ -n "$f" ] && tar czf "raw-$(date +%H%M%S).tgz" $f && rm -f $f)
