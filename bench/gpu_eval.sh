#!/usr/bin/env bash
# The Qwen2.5-Coder-0.5B accuracy runs of docs/RESULTS.md ("GPU runs") on a Vulkan GPU, with a
# deadline: each run gets the time that is left and is resumed by the next call (the JSON lines
# in $EVO keep finished rows). Prints one line per run; tables and KVzap thresholds go to
# $EVO/NAME.log.
#   Q=model.gguf KQ=kvzap-dir bench/gpu_eval.sh SECONDS TASK...
#   TASK: squad niah kv mk niah8k (the first table set), vt s1 s2 s3 mv mq qa fwe cwe mk2 mk3 gsm8k,
#         the issue-20 set with at least 100 queries a cell and its nine methods:
#         squad100 niah100 niah8k100 mk100 kv100, or kvq-<one of those> (KVzip 0.3 with q8_0 and
#         q4_0 K/V on the same samples)
# Q: qwen2.5-coder-0.5b-instruct.gguf (tools/fetch_model.sh); KQ: the Qwen KVzap surrogates
# (tools/data/kvzap/SOURCE.md, second section); KVZIP: the binary (default build/tools/kvzip);
# EVO: the results folder (default eval-out); M9: the issue-20 method list (default the nine);
# EVAL_BATCH: answers decoded together (default 256: every cell of a sample at once). On a lent machine whose
# transfers are capped below the model's size, the model travels in parts (`split -b`) that are
# put together there first.
set -uo pipefail
cd "$(dirname "$0")/.."
END=$(($(date +%s) + $1))
shift
: "${Q:?Q: the Qwen2.5-Coder-0.5B GGUF}" "${KQ:?KQ: the folder of its KVzap surrogates}"
KVZIP=${KVZIP:-build/tools/kvzip} EVO=${EVO:-eval-out}
mkdir -p "$EVO"
HS=docs/results/heads-qwen2.5coder-niah0.json
M=kvzip,kvzip_head,snapkv,pyramidkv,tova,h2o,streaming,knorm,random,expected_attention
MZ=$M,kvzap_linear,kvzap_mlp R=0.1,0.2,0.3,0.5,1.0 R4=0.1,0.2,0.3,0.5
RM=kvzip,kvzip_head,snapkv,pyramidkv,tova,h2o,expected_attention,kvzap_mlp
M9=${M9:-kvzip,kvzip_head,kvzap_mlp,snapkv,pyramidkv,tova,h2o,streaming,expected_attention}
ev() {
  local name=$1 left=$((END - $(date +%s) - 15)) t0
  shift
  if [ $left -lt 20 ]; then echo "$name: no time"; return; fi
  t0=$(date +%s)
  timeout $left "$KVZIP" eval --model "$Q" --data tools/data/eval --kvzap-dir "$KQ" \
    --head-scores $HS --batch "${EVAL_BATCH:-256}" --timings "$@" --out "$EVO/$name.jsonl" \
    >"$EVO/$name.log" 2>&1
  local rc=$?
  echo "$name rc=$rc $(($(date +%s) - t0)) s, $(cat "$EVO/$name.jsonl" 2>/dev/null | wc -l) rows"
}
# The sample set of each issue-20 task.
set100() {
  case $1 in
    squad100) echo --task squad --num 20 --kvzap-window 16 ;;
    niah100) echo --task niah --num 25 --vary-haystack ;;
    niah8k100) echo --task niah --length 8192 --num 25 --vary-haystack ;;
    mk100) echo --task ruler_mk --length 4096 --num 50 --queries 2 ;;
    kv100) echo --task kv --num 25 ;;
    *) echo "unknown task $1" >&2; exit 2 ;;
  esac
}
for t in "$@"; do
  case $t in
    squad) ev squad-qwen2.5coder-gpu --task squad --num 20 --methods $MZ --kvzap-window 16 --ratios $R ;;
    niah) ev niah-qwen2.5coder-gpu-vary --task niah --num 8 --vary-haystack --methods $MZ --ratios $R ;;
    kv) ev kv-qwen2.5coder-gpu --task kv --num 8 --methods $MZ --ratios $R ;;
    mk) ev ruler_mk-qwen2.5coder-gpu-4k --task ruler_mk --length 4096 --num 8 --queries 2 --methods $MZ --ratios $R ;;
    niah8k) ev niah8k-qwen2.5coder-gpu-vary --task niah --length 8192 --num 4 --vary-haystack \
      --methods kvzip,kvzip_head,snapkv,tova,expected_attention,kvzap_linear,kvzap_mlp --ratios $R ;;
    vt | s1 | s2 | s3 | mv | mq | qa | fwe | cwe | mk2 | mk3)
      ev ruler_$t-qwen2.5coder-gpu-4k --task ruler_$t --length 4096 --num 4 --methods $RM --ratios 0.1,0.3,0.5,1.0 ;;
    # >= 100 queries a cell: squad 20 contexts = 163 questions; niah 25 x 4 needles; ruler_mk 50 x
    # 2 keys; kv 25 x 4 keys. The summary's four ratios (the full cache is always a row).
    squad100 | niah100 | niah8k100 | mk100 | kv100) ev $t-qwen2.5coder-gpu $(set100 $t) \
      --methods $M9 --ratios $R4 ;;
    # Issue 26: KVzip 0.3 with 8-bit and 4-bit K/V on the same samples (TASK: squad100 ... kv100).
    kvq-*) for ty in q8_0 q4_0; do
        ev ${t#kvq-}-$ty-qwen2.5coder-gpu $(set100 ${t#kvq-}) --methods kvzip --ratios 0.3 \
          --cache-type-k $ty --cache-type-v $ty
      done ;;
    gsm8k) ev gsm8k-qwen2.5coder-gpu --task gsm8k --num 8 -n 256 \
      --methods kvzip,snapkv,h2o,expected_attention,kvzap_mlp --ratios 0.3,0.5,1.0 ;;
    *) echo "unknown task $t" >&2; exit 2 ;;
  esac
done
