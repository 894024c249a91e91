#!/usr/bin/env bash
# The GPU session behind bench/RESULTS.md: runs our test suites and benchmarks on the real GPU and
# the PyTorch references in the same command (same machine, same driver). Writes logs and JSON to
# $OUT (default ./gpu-out). Binaries come prebuilt in .gl/bin with their shared libraries in
# .gl/lib (the lent GPU machine has no compilers or package registry).
#   bench/gpu_run.sh targets # every issue-6 figure in one call (about 9 minutes on an H100), then
#                            # the target table from them (bench/targets.py)
#   bench/gpu_run.sh tests   # the three GoogleTest suites on the GPU
#   bench/gpu_run.sh check   # tests, then targets (the table's raw files in targets_raw.tgz)
#   bench/gpu_run.sh quick   # tests, then the two end-to-end runs of targets (q4k, kvzip32k):
#                            # a check after a refactor when the full table does not fit the call
#   bench/gpu_run.sh e2e     # those two end-to-end runs alone
#   bench/gpu_run.sh kvquant # quantised-K/V attention tests, then decode / prefill / scoring
#                            # attention per K/V type and KVzip at 32K with f16, q8_0, q4_0 caches
#   bench/gpu_run.sh kvsweep # decode attention over quantised pools per lane layout (overrides)
#   bench/gpu_run.sh tg128k  # tg at 130,000 tokens after KVzip r 1 / 0.3 per K/V type (TG_TYPES)
#   bench/gpu_run.sh profile32k # GPU time per op kind of KVzip prefill + scoring at 32K
#   bench/gpu_run.sh serve   # bench/serve_bench.py against `kvzip serve` (docs/SERVING.md)
#   bench/gpu_run.sh ops     # kernel benchmarks (ours) + torch_ref.py (theirs)
#   bench/gpu_run.sh model   # kvzip run demo (SmolLM2) and kvzip bench on synthetic LLaMA-3.1-8B
#   bench/gpu_run.sh decode  # decode attention kernels and their tuning overrides
#   bench/gpu_run.sh e2e128k # KVzip phases at 128K context (E2E_QUANT, E2E_DEPTH)
#   bench/gpu_run.sh matvec  # Q4_K decode matvec variants side by side, their sweep, decode e2e
#   bench/gpu_run.sh tiles   # tensor-core tile sweep: KVZ_MATMUL_TILE (matmul) and KVZ_ATTN_NSG
#                            # (prefill attention), each config checked by the coopmat tests first
#   bench/gpu_run.sh decode  # decode attention: tiled vs decode kernel, then a tuning sweep of the
#                            # decode kernel (KVZ_DECODE_* overrides, runtime/ops/paged_attention.cpp)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
for f in .gl/*.deb; do [ -f "$f" ] && dpkg -x "$f" /; done
ldconfig 2>/dev/null
export LD_LIBRARY_PATH=$PWD/.gl/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export KVZ_SOURCE_DIR=$PWD KVZ_MODEL_DIR=$PWD/.gl/models
export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
for j in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json \
         /etc/vulkan/icd.d/nvidia_icd.json; do
  if [ -f "$j" ]; then export VK_DRIVER_FILES=$j VK_ICD_FILENAMES=$j; break; fi
done
B=.gl/bin
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
$B/kvzip devices 2>&1 | tee "$OUT/devices.txt" | head -30

# `kvzip bench -m ARGS...` as run NAME within LIMIT seconds: $OUT/NAME.{json,md,err}, then its rc.
bench_json() {
  local name=$1 limit=$2
  shift 2
  timeout "$limit" $B/kvzip bench -m "$@" --json "$OUT/$name.json" >"$OUT/$name.md" 2>"$OUT/$name.err"
  echo "kvzip bench $name rc=$?"
}

# Several modes run one after the other: bench/gpu_run.sh kvquant kvsweep serve
for mode in "${@:-all}"; do
case "$mode" in
  targets)
    timeout 150 $B/kvz_bench --benchmark_min_time=0.2 --benchmark_out="$OUT/ops.json" --benchmark_out_format=json \
      --benchmark_filter='BM_matmul/llama3_8b_(attn_4096x4096_f16_m4096|ffn_up_14336x4096_f16_m512|ffn_down_4096x14336_f16_m512)/|BM_paged_attention/llama3_8b_(prefill_(4k|16k)_causal|decode_128k(_ragged30)?)/|BM_coopmat_peak/khr_(registers|two_barriers)_c1_2x2x4x4/' \
      >"$OUT/ops.txt" 2>&1
    echo "kvz_bench rc=$?"
    timeout 200 python3 bench/torch_ref.py >"$OUT/torch.jsonl" 2>"$OUT/torch.err"
    echo "torch_ref rc=$?"
    M=synthetic:llama3.1-8b
    for run in "q4k 120 $M:q4_k -p 512 -n 64 -d 0,4096 --kvzip-depth 0 -r 2" \
               "f16 90 $M:f16 -p 4096 -n 0 -d 0 --kvzip-depth 0 -r 2" \
               "kvzip32k 120 $M:q4_k -p 512 -n 64 -d 0 --kvzip-depth 32768 --ratios 1,0.3 -r 1" \
               "kvzip128k 300 $M:q4_k -p 512 -n 64 -d 0 --kvzip-depth 130000 --ratios 1,0.3 -r 1"; do
      bench_json $run
    done
    python3 bench/targets.py "$OUT" | tee "$OUT/targets.md"
    # The lent machine returns few files per call: everything but the table goes in one archive.
    (shopt -s nullglob; cd "$OUT" && tar czf targets_raw.tgz ops.* torch.* q4k.* f16.* kvzip32k.* kvzip128k.* &&
      rm -f ops.* torch.* q4k.* f16.* kvzip32k.* kvzip128k.*)
    ;;
  check)
    # The start of a GPU session: the three suites, then the whole target table (about 7 minutes
    # on an H100).
    "$0" tests
    "$0" targets
    ;;
  quick)
    "$0" tests
    "$0" e2e
    ;;
  e2e)
    M=synthetic:llama3.1-8b
    for run in "q4k 120 $M:q4_k -p 512 -n 64 -d 0,4096 --kvzip-depth 0 -r 2" \
               "kvzip32k 120 $M:q4_k -p 512 -n 64 -d 0 --kvzip-depth 32768 --ratios 1,0.3 -r 1"; do
      set -- $run
      bench_json "$@"; cat "$OUT/$1.md"
    done
    ;;
  kvquant)
    # First the tensor-core kernels over quantised K/V against the CPU reference (the quantised
    # prefill and scoring run them), then decode, prefill-chunk and scoring kernels per K/V type
    # next to f16, then KVzip at 32K for f16 (the baseline, same machine) and each type.
    # KVQ_KERNELS=0 skips the tests and kernels, KVQ_E2E=0 the KVzip runs.
    if [ "${KVQ_KERNELS:-1}" = 1 ]; then
      timeout 90 $B/kvz_runtime_tests --gtest_brief=1 \
        --gtest_filter='Quant*:*AttnScore*:*PagedAttentionCoopmat*' >"$OUT/kvquant_tests.log" 2>&1
      echo "kvquant tests rc=$? $(grep -E '^\[  (PASSED|FAILED)  \]' "$OUT/kvquant_tests.log" | tr '\n' ' ')"
      grep -E '^\[  FAILED  \]' "$OUT/kvquant_tests.log" | head -20
      timeout 120 $B/kvz_bench --benchmark_filter='BM_paged_attention/llama3_8b_decode_(32|128)k_ragged30_kv_|BM_paged_attention/llama3_8b_(prefill_chunk2048_after_30k|reconstruct_2256_after_32k)|BM_attn_score/llama3_8b_chunk2000' \
        --benchmark_min_time=0.2 --benchmark_out="$OUT/kvquant_attn.json" --benchmark_out_format=json \
        2>&1 | grep -E "^BM_" | cut -c1-160
    fi
    if [ "${KVQ_E2E:-1}" = 1 ]; then
      for ty in ${KVQ_TYPES:-f16 q8_0 q4_0}; do
        bench_json kvzip32k_$ty 120 synthetic:llama3.1-8b:q4_k -p 512 -n 64 -d 0 --kvzip-depth 32768 \
          --ratios 1,0.3 -r 1 --cache-type-k $ty --cache-type-v $ty
        cat "$OUT/kvzip32k_$ty.md"
      done
    fi
    ;;
  tg128k)
    # Issue 26's decode target: tg at 130,000 tokens of context after KVzip at r 1 and 0.3 per
    # K/V type (TG_TYPES); the f16 run's r 1 row is the full cache the ratios are taken against.
    for ty in ${TG_TYPES:-f16 q8_0}; do
      bench_json tg128k_$ty "${TG_TIMEOUT:-280}" synthetic:llama3.1-8b:q4_k -p 512 -n 64 -d 0 \
        --kvzip-depth 130000 --ratios 1,0.3 -r 1 --cache-type-k $ty --cache-type-v $ty
      cat "$OUT/tg128k_$ty.md"; tail -2 "$OUT/tg128k_$ty.err"
    done
    ;;
  profile32k)
    # Where KVzip's prefill and scoring time goes at 32K: GPU time per op kind (KVZ_PROFILE).
    KVZ_PROFILE=1 timeout 150 $B/kvzip bench -m synthetic:llama3.1-8b:q4_k -p 512 -n 0 -d 0 \
      --kvzip-depth 32768 --ratios 0.3 -r 1 >"$OUT/profile32k.md" 2>"$OUT/profile32k.err"
    echo "profile32k rc=$?"; cat "$OUT/profile32k.md"
    ;;
  kvsweep)
    # Decode attention over q8_0 / q4_0 pools per lane layout (runtime/ops/paged_attention.cpp,
    # pick_decode's rule for quantised pools): LPK 16 is the f16 layout with the quantised loads.
    # The overrides change the f16 rows too: compare against kvquant's f16 row.
    F='BM_paged_attention/llama3_8b_decode_(32|128)k_ragged30_kv_'
    # KVSWEEP: the configurations, comma-separated (default: the list below).
    IFS=, read -ra cfgs <<<"${KVSWEEP:-KVZ_DECODE_KPI=1,KVZ_DECODE_KPI=4,KVZ_DECODE_PREFETCH=0,KVZ_DECODE_KPI=4 KVZ_DECODE_PREFETCH=0,KVZ_DECODE_LPK=16,KVZ_DECODE_LPK=16 KVZ_DECODE_KPI=4,KVZ_DECODE_LPK=4,KVZ_DECODE_LPK=4 KVZ_DECODE_KPI=1}"
    for cfg in "${cfgs[@]}"; do
      echo "== $cfg"
      env $cfg timeout 60 $B/kvz_bench --benchmark_filter="$F" --benchmark_min_time=0.1 2>&1 |
        grep -E "^BM_" | cut -c1-160
    done
    ;;
  serve)
    $B/kvzip serve -m synthetic:llama3.1-8b:q4_k --port 8765 --parallel 64 --queue 64 2>"$OUT/server.log" &
    S=$!
    for i in $(seq 90); do grep -q "on http" "$OUT/server.log" && break; sleep 1; done
    timeout "${SERVE_TIMEOUT:-150}" python3 bench/serve_bench.py --url 127.0.0.1:8765 --context-tokens 32768 \
      --words-per-token 0.17 --ratios 1.0,0.3 --clients 1,16,4,64 --max-tokens 32 \
      --json "$OUT/serve_gpu.json" >"$OUT/serve_gpu.md" 2>"$OUT/serve_gpu.err"
    echo "serve_bench rc=$?"; cat "$OUT/serve_gpu.md"; tail -3 "$OUT/serve_gpu.err"
    kill $S; wait $S
    ;;
  tests)
    for t in runtime kvzip model; do
      timeout "${TEST_TIMEOUT:-240}" $B/kvz_${t}_tests --gtest_brief=1 --gtest_filter="${TEST_FILTER:-*}" \
        >"$OUT/test_$t.log" 2>&1
      echo "kvz_${t}_tests rc=$? $(grep -E '^\[  (PASSED|FAILED)  \]|tests? ran' "$OUT/test_$t.log" | tr '\n' ' ')"
      grep -E '^\[  FAILED  \]' "$OUT/test_$t.log" | head -20
    done
    ;;
  ops)
    timeout 300 $B/kvz_bench --benchmark_filter="${BENCH_FILTER:-BM_matmul/llama3_8b|BM_matvec/llama3_8b|BM_paged_attention|BM_attn_score}" \
      --benchmark_min_time=0.2 --benchmark_out="$OUT/bench_ops.json" --benchmark_out_format=json \
      >"$OUT/bench_ops.txt" 2>&1
    echo "kvz_bench rc=$?"; grep -E "^BM_" "$OUT/bench_ops.txt" | cut -c1-160
    timeout 200 python3 bench/torch_ref.py >"$OUT/torch.jsonl" 2>"$OUT/torch.err"
    echo "torch_ref rc=$?"; cat "$OUT/torch.jsonl"; tail -3 "$OUT/torch.err"
    ;;
  decode)
    F='BM_paged_attention/llama3_8b_decode'
    timeout 120 $B/kvz_bench --benchmark_filter="$F" --benchmark_min_time=0.2 \
      --benchmark_out="$OUT/bench_decode.json" --benchmark_out_format=json 2>&1 | grep -E "^BM_" | cut -c1-160
    F='BM_paged_attention/llama3_8b_decode_128k(_ragged30)?/'
    for cfg in "KVZ_DECODE_SPLITS=256" "KVZ_DECODE_PREFETCH=0" "KVZ_DECODE_KPI=2" "KVZ_DECODE_KPI=8" \
               "KVZ_DECODE_KPI=2 KVZ_DECODE_PREFETCH=0" "KVZ_DECODE_KPI=8 KVZ_DECODE_PREFETCH=0" \
               "KVZ_DECODE_WG=64" "KVZ_DECODE_WG=256" "KVZ_DECODE_LPK=8" \
               "KVZ_DECODE_LPK=8 KVZ_DECODE_KPI=2" "KVZ_DECODE_LPK=8 KVZ_DECODE_PREFETCH=0"; do
      echo "== $cfg"
      env $cfg timeout 60 $B/kvz_bench --benchmark_filter="$F" --benchmark_min_time=0.1 2>&1 |
        grep -E "^BM_" | cut -c1-160
    done
    ;;
  model)
    if [ -f "$KVZ_MODEL_DIR/SmolLM2-135M-Instruct.Q4_1.gguf" ]; then
      KVZIP_MODELS=$KVZ_MODEL_DIR timeout 120 $B/kvzip run 2>&1 | tee "$OUT/demo.txt" | tail -28
    fi
    timeout "${SYN_TIMEOUT:-300}" $B/kvzip bench -m synthetic:llama3.1-8b:q4_k -p 512,4096 -n 64 -d 0,4096 \
      --kvzip-depth 16384 --ratios 1,0.5,0.3,0.1 -r 2 --json "$OUT/bench_llama8b_q4k.json" \
      2>"$OUT/bench_llama8b_q4k.err" | tee "$OUT/bench_llama8b_q4k.md"
    tail -3 "$OUT/bench_llama8b_q4k.err"
    timeout 240 $B/kvzip bench -m synthetic:llama3.1-8b:f16 -p 4096 -n 32 -d 0 --kvzip-depth 32768 \
      --ratios 1,0.3 -r 2 --json "$OUT/bench_llama8b_f16.json" 2>"$OUT/bench_llama8b_f16.err" |
      tee "$OUT/bench_llama8b_f16.md"
    tail -3 "$OUT/bench_llama8b_f16.err"
    # Where decode time goes: GPU time per op kind (timestamps around every op) at 4K depth.
    KVZ_PROFILE=1 timeout 120 $B/kvzip bench -m synthetic:llama3.1-8b:q4_k -p 512 -n 32 -d 4096 \
      --kvzip-depth 0 -r 1 2>&1 | tee "$OUT/profile_llama8b_q4k.md" | grep -E "decode/|GPU time"
    ;;
  matvec)
    # Q4_K decode matvec variants (MatmulTuning::matvec_variant 0-4: shaders/matvec.comp,
    # shaders/matvec_wide.comp) side by side with the f16 matvec, then the workgroup size / rows
    # sweep (MATVEC_SWEEP), then decode end to end per variant (KVZ_MATVEC_VARIANT; the forward
    # pass passes no x8 scratch, so 4 would run as 3 there).
    # KVZ_PIPELINE_STATS=1: the driver's registers / spills per pipeline, into the log.
    KVZ_PIPELINE_STATS=1 timeout 240 $B/kvz_bench \
      --benchmark_filter='BM_matvec/llama3_8b_.*_(f16|q4_k(_v[0-4])?)/' --benchmark_min_time=0.2 \
      --benchmark_out="$OUT/bench_matvec.json" --benchmark_out_format=json \
      2>&1 | tee "$OUT/bench_matvec.txt" | grep -E "^BM_|q4k_variants" | cut -c1-160
    timeout 300 $B/kvz_bench \
      --benchmark_filter="${MATVEC_SWEEP:-BM_matvec/llama3_8b_(attn|ffn_up|ffn_down)_.*_q4_k_wg.*_v[0-4]/}" \
      --benchmark_min_time=0.05 2>&1 | tee "$OUT/bench_matvec_sweep.txt" | grep -E "^BM_" | cut -c1-160
    for v in 0 1 2 3; do
      echo "== KVZ_MATVEC_VARIANT=$v"
      KVZ_MATVEC_VARIANT=$v timeout 120 $B/kvzip bench -m synthetic:llama3.1-8b:q4_k -p 512 -n 64 \
        -d 0 --kvzip-depth 0 -r 1 2>"$OUT/bench_e2e_matvec_v$v.err" | tee "$OUT/bench_e2e_matvec_v$v.md"
    done
    ;;
  tiles)
    F=${TILE_FILTER:-'BM_matmul/llama3_8b_(attn_4096x4096_f16_m4096|ffn_up_14336x4096_f16_m(512|4096)|ffn_(up_14336x4096|down_4096x14336)_q4_k_m512)/'}
    for tile in ${TILES:-"" 2,2,4,4,1,32 2,2,4,4,1,64 2,4,4,2,1,32 4,2,2,4,1,32 4,4,4,2,1,32 \
                 4,2,4,4,1,32 2,4,4,4,1,32 1,4,4,4,1,32 4,1,4,4,1,32 2,4,4,2,2,64}; do
      echo "== KVZ_MATMUL_TILE=$tile"
      if [ -n "$tile" ]; then
        KVZ_MATMUL_TILE=$tile timeout 60 $B/kvz_runtime_tests --gtest_brief=1 \
          --gtest_filter='*MatmulCoopmat*MatchesReference*' 2>&1 | grep -E '^\[  (PASSED|FAILED)' | head -3
      fi
      KVZ_MATMUL_TILE=$tile timeout 90 $B/kvz_bench --benchmark_filter="$F" --benchmark_min_time=0.2 \
        2>&1 | grep -E "^BM_" | cut -c1-150
    done
    for nsg in 8 4; do
      echo "== KVZ_ATTN_NSG=$nsg"
      KVZ_ATTN_NSG=$nsg timeout 60 $B/kvz_runtime_tests --gtest_brief=1 \
        --gtest_filter='*PagedAttention*oopmat*' 2>&1 | grep -E '^\[  (PASSED|FAILED)' | head -3
      KVZ_ATTN_NSG=$nsg timeout 60 $B/kvz_bench --benchmark_filter='BM_paged_attention/llama3_8b_prefill' \
        --benchmark_min_time=0.2 2>&1 | grep -E "^BM_" | cut -c1-150
    done
    ;;
  e2e128k)
    # KVzip end to end at 128K context: prefill, scoring, then decode at ratio 1.0 and 0.3.
    timeout "${E2E_TIMEOUT:-580}" $B/kvzip bench -m synthetic:llama3.1-8b:"${E2E_QUANT:-q4_k}" -p 512 \
      -n 32 -d 0 --kvzip-depth "${E2E_DEPTH:-130000}" --ratios 1,0.3 -r 1 \
      --json "$OUT/bench_e2e128k.json" 2>"$OUT/bench_e2e128k.err" | tee "$OUT/bench_e2e128k.md"
    tail -3 "$OUT/bench_e2e128k.err"
    ;;
esac
done
