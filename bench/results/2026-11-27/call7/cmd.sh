# 2026-11-27 call 7: smaller tiles for the m = 512 matmuls (the 512x4096x14336 grid is 128
# workgroups of 128x128 on 132 SMs): KVZ_MATMUL_TILE per shape, alternated twice, same binary.
. .gl/dev.sh; $B/kvzip devices | grep -q H100 || exit 1
F='BM_matmul/(llama3_8b_(ffn_up_14336x4096|ffn_down_4096x14336|attn_4096x4096)|qwen2_5_7b_ffn_down_3584x18944)_f16_m512/'
for rep in 1 2; do for t in default 2,2,2,4,1,32 2,2,4,2,1,32 2,2,2,2,1,32; do
  echo "KVZ_MATMUL_TILE=$t"
  ( [ $t = default ] || export KVZ_MATMUL_TILE=$t
    $B/kvz_bench --benchmark_min_time=0.3 --benchmark_filter="$F" 2>&1 | grep -E "^BM_" | cut -c1-130 )
done; done
