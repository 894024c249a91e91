# 2026-11-27 call 4: matmul_coopmat without the register prefetch (STAGES 0: the next tile is read
# after the products, so its registers are not live during them) against the default tile, same
# binary; its tests first; registers per pipeline; pp4096 f16 with each.
. .gl/dev.sh; $B/kvzip devices | grep -q H100 || exit 1
$B/kvz_runtime_tests --gtest_brief=1 --gtest_filter='*MatmulCoopmat*f16_khr*:*MatmulCoopmat*q4_K_khr*' 2>&1 | tail -3
F='BM_matmul/llama3_8b_(attn_4096x4096_f16_m4096|ffn_up_14336x4096_f16_m512|ffn_down_4096x14336_f16_m512)/'
for t in default 2,2,4,4,0,32 2,2,4,4,0,64 4,2,4,4,0,32 2,4,4,4,0,32 default 2,2,4,4,0,32; do
  echo "KVZ_MATMUL_TILE=$t"
  ( [ $t = default ] || export KVZ_MATMUL_TILE=$t
    KVZ_PIPELINE_STATS=1 $B/kvz_bench --benchmark_min_time=0.3 --benchmark_filter="$F" 2>&1 | grep -E "^BM_|matmul_coopmat_f16_khr" | sed 's/.*pipeline/pipeline/' | cut -c1-130 | sort -u )
done
for t in default 2,2,4,4,0,32 default 2,2,4,4,0,32; do
  echo "pp4096 f16 KVZ_MATMUL_TILE=$t"
  ( [ $t = default ] || export KVZ_MATMUL_TILE=$t
    timeout 90 $B/kvzip bench -m synthetic:llama3.1-8b:f16 -p 4096 -n 0 -d 0 --kvzip-depth 0 -r 2 2>/dev/null | grep pp4096 )
done
