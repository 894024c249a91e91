# 2026-11-27 call 3: the ceiling probe with matmul_coopmat's shared memory (c1: one stage) or the
# double buffer's (c2), and with its two barriers per 32-deep tile; its test first.
. .gl/dev.sh; $B/kvzip devices | grep -q H100 || exit 1
$B/kvz_runtime_tests --gtest_brief=1 --gtest_filter='*CoopmatPeak*' 2>&1 | tail -3
$B/kvz_bench --benchmark_min_time=0.2 --benchmark_filter='BM_coopmat_peak|BM_matmul/llama3_8b_attn_4096x4096_f16_m4096/' 2>&1 | grep -E "^BM_|rror" | cut -c1-150
KVZ_PIPELINE_STATS=1 $B/kvz_bench --benchmark_min_time=0.05 --benchmark_filter='BM_coopmat_peak/khr|BM_matmul/llama3_8b_attn_4096x4096_f16_m4096/' 2>&1 | grep -i -E "coopmat_peak|matmul_coopmat" | grep -i regist | sort -u | cut -c1-220 | head -24
