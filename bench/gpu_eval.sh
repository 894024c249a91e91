#!/usr/bin/env bash
# The Qwen2.5-Coder-0.5B accuracy runs of docs/RESULTS.md ("GPU runs") on a Vulkan GPU, with a
# deadline: each run gets the time that is left and is resumed by the next call (the JSON lines
# in $EVO keep finished rows). Prints one line per run; tables and KVzap thresholds go to
# $EVO/NAME.log.
#   Q=model.gguf KQ=kvzap-dir bench/gpu_eval.sh SECONDS TASK...
#   TASK: squad niah kv mk niah8k (the first table set), vt s1 s2 s3 mv mq qa fwe cwe mk2 mk3 gsm8k,
#         or the issue-20 set with at least 100 queries a cell and its nine methods:
#         squad100 niah100 niah8k100 mk100 kv100
# Q: qwen2.5-coder-0.5b-instruct.gguf (tools/fetch_model.sh); KQ: the Qwen KVzap surrogates
# (tools/data/kvzap/SOURCE.md, second section); KVZIP: the binary (default build/tools/kvzip);
# EVO: the results folder (default eval-out); M9: the issue-20 method list (default the nine);
# EVAL_BATCH: queries of a sample answered together (default 16). On a lent machine whose
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
MZ=$M,kvzap_linear,kvzap_mlp R=0.1,0.2,0.3,0.5,1.0
RM=kvzip,kvzip_head,snapkv,pyramidkv,tova,h2o,expected_attention,kvzap_mlp
M9=${M9:-kvzip,kvzip_head,kvzap_mlp,snapkv,pyramidkv,tova,h2o,streaming,expected_attention}
ev() {
  local name=$1 left=$((END - $(date +%s) - 15)) t0
  shift
  if [ $left -lt 20 ]; then echo "$name: no time"; return; fi
  t0=$(date +%s)
  timeout $left "$KVZIP" eval --model "$Q" --data tools/data/eval --kvzap-dir "$KQ" \
    --head-scores $HS --batch "${EVAL_BATCH:-16}" "$@" --out "$EVO/$name.jsonl" >"$EVO/$name.log" 2>&1
  echo "$name rc=$? $(($(date +%s) - t0)) s, $(wc -l <"$EVO/$name.jsonl") rows"
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
    # 2 keys; kv 25 x 4 keys.
    squad100) ev squad100-qwen2.5coder-gpu --task squad --num 20 --methods $M9 --kvzap-window 16 --ratios $R ;;
    niah100) ev niah100-qwen2.5coder-gpu --task niah --num 25 --vary-haystack --methods $M9 --ratios $R ;;
    niah8k100) ev niah8k100-qwen2.5coder-gpu --task niah --length 8192 --num 25 --vary-haystack \
      --methods $M9 --ratios $R ;;
    mk100) ev ruler_mk100-qwen2.5coder-gpu-4k --task ruler_mk --length 4096 --num 50 --queries 2 \
      --methods $M9 --ratios $R ;;
    kv100) ev kv100-qwen2.5coder-gpu --task kv --num 25 --methods $M9 --ratios $R ;;
    gsm8k) ev gsm8k-qwen2.5coder-gpu --task gsm8k --num 8 -n 256 \
      --methods kvzip,snapkv,h2o,expected_attention,kvzap_mlp --ratios 0.3,0.5,1.0 ;;
    *) echo "unknown task $t" >&2; exit 2 ;;
  esac
done
