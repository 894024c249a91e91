# 2026-11-27 call 8: the tile rule as committed (64x128 where 128x128 tiles fill less than one
# round of 2 per SM): coopmat matmul tests, the m = 512 shapes, and pp512 against the old tile
# (KVZ_MATMUL_TILE=2,2,4,4,1,32 gives every m = 512 matmul the 128x128 tile), alternated.
. .gl/dev.sh; $B/kvzip devices | grep -q H100 || exit 1
$B/kvz_runtime_tests --gtest_brief=1 --gtest_filter='*MatmulCoopmat*khr*:*MatmulCoopmat*cm2*:MatmulCoopmatTile*' 2>&1 | tail -3
F='BM_matmul/(llama3_8b_(ffn_up_14336x4096|ffn_down_4096x14336|attn_4096x4096)|qwen2_5_7b_ffn_(up_18944x3584|down_3584x18944))_f16_m512/'
$B/kvz_bench --benchmark_min_time=0.3 --benchmark_filter="$F" 2>&1 | grep -E "^BM_" | cut -c1-130
for rep in 1 2; do for t in default 2,2,4,4,1,32; do for q in f16 q4_k; do
  echo "pp512 $q KVZ_MATMUL_TILE=$t"
  ( [ $t = default ] || export KVZ_MATMUL_TILE=$t
    timeout 80 $B/kvzip bench -m synthetic:llama3.1-8b:$q -p 512 -n 0 -d 0 --kvzip-depth 0 -r 3 2>/dev/null | grep pp512 )
done; done; done
