# 2026-11-27 call 2: the tensor-core ceiling probe (BM_coopmat_peak) and its test; 4K decode with
# 64-row decode shares (KVZ_DECODE_MIN_ROWS=64: 512 workgroups instead of 256) against the default (WAVE=0, or the one-round rule grows them back to 128 rows).
. .gl/dev.sh; $B/kvzip devices | grep -q H100 || exit 1
$B/kvz_runtime_tests --gtest_brief=1 --gtest_filter='*CoopmatPeak*:*MatmulCoopmat*f16*' 2>&1 | tail -4
$B/kvz_bench --benchmark_min_time=0.2 --benchmark_filter='BM_coopmat_peak|BM_matmul/llama3_8b_attn_4096x4096_f16_m4096/' 2>&1 | grep -E "^BM_|rror" | cut -c1-150
for mr in 128 64 128 64; do w=$([ $mr = 64 ] && echo 0 || echo 1)
  echo "KVZ_DECODE_MIN_ROWS=$mr WAVE=$w"
  KVZ_DECODE_WAVE=$w KVZ_DECODE_MIN_ROWS=$mr $B/kvz_bench --benchmark_min_time=0.2 --benchmark_filter='BM_paged_attention/llama3_8b_decode_(4k|32k)/' 2>&1 | grep -E "^BM_" | cut -c1-120
done
for mr in 128 64 128 64; do w=$([ $mr = 64 ] && echo 0 || echo 1)
  echo "KVZ_DECODE_MIN_ROWS=$mr WAVE=$w"
  KVZ_DECODE_WAVE=$w KVZ_DECODE_MIN_ROWS=$mr timeout 100 $B/kvzip bench -m synthetic:llama3.1-8b:q4_k -p 512 -n 64 -d 4096 --kvzip-depth 0 -r 2 2>/dev/null | grep tg64
done
