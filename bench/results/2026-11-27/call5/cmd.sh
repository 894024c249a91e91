# 2026-11-27 call 5: matmul_coopmat with x rounded to f16 as it arrives (KVZ_MATMUL_PACK_EARLY=1:
# half the prefetch registers) against the default, same binary; its tests first; registers.
. .gl/dev.sh; $B/kvzip devices | grep -q H100 || exit 1
KVZ_MATMUL_PACK_EARLY=1 $B/kvz_runtime_tests --gtest_brief=1 --gtest_filter='*MatmulCoopmat*f16_khr*' 2>&1 | tail -3
F='BM_matmul/llama3_8b_(attn_4096x4096_f16_m4096|ffn_up_14336x4096_f16_m512|ffn_down_4096x14336_f16_m512)/'
for pe in 0 1 0 1; do for t in default 4,2,2,4,1,32; do
  echo "KVZ_MATMUL_PACK_EARLY=$pe KVZ_MATMUL_TILE=$t"
  ( [ $t = default ] || export KVZ_MATMUL_TILE=$t
    KVZ_MATMUL_PACK_EARLY=$pe KVZ_PIPELINE_STATS=1 $B/kvz_bench --benchmark_min_time=0.3 --benchmark_filter="$F" 2>&1 | grep -E "^BM_|matmul_coopmat_f16_khr" | sed 's/.*pipeline/pipeline/' | cut -c1-130 | sort -u )
done; done
for pe in 0 1 0 1; do
  echo "pp4096 f16 KVZ_MATMUL_PACK_EARLY=$pe"
  KVZ_MATMUL_PACK_EARLY=$pe timeout 90 $B/kvzip bench -m synthetic:llama3.1-8b:f16 -p 4096 -n 0 -d 0 --kvzip-depth 0 -r 2 2>/dev/null | grep pp4096
done
