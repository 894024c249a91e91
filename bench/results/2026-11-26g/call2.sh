source .gl/dev.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
F='Prefill/PagedAttentionCoopmatTest.*:Prefill/PagedAttentionTest.*'
for e in "X=0" "KVZ_ATTN_DIRECT=1" "KVZ_ATTN_DIRECT=1 KVZ_ATTN_NSG=4" "KVZ_ATTN_DIRECT=1 KVZ_ATTN_NSG=2"; do
  env $e timeout 60 $B/kvz_runtime_tests --gtest_filter="$F" --gtest_brief=1 > $OUT/t.log 2>&1; echo "[$e] tests rc=$? $(grep -E '^\[  (PASSED|FAILED)' $OUT/t.log | tr '\n' ' ')"; grep -E "^\[  FAILED" $OUT/t.log | head -5
  env $e timeout 60 $B/kvz_bench --benchmark_filter='BM_paged_attention/llama3_8b_prefill' --benchmark_min_time=0.2 2>&1 | grep -E "^BM_" | cut -c1-150
done
KVZ_ATTN_DIRECT=1 timeout 100 $B/kvz_model_tests --gtest_filter='*SessionTest*:*Stories*:*Parity*' --gtest_brief=1 > $OUT/tm.log 2>&1; echo "[direct] model tests rc=$? $(grep -E '^\[  (PASSED|FAILED)' $OUT/tm.log | tr '\n' ' ')"; grep -E "^\[  FAILED" $OUT/tm.log | head -5
MF='BM_matmul/llama3_8b_(attn_4096x4096_f16_m4096|ffn_up_14336x4096_f16_m512|ffn_down_4096x14336_f16_m512)/'
for e in "X=0" "KVZ_MATMUL_XHALF_PROBE=1" "KVZ_MATMUL_XHALF_PROBE=1 KVZ_MATMUL_TILE=2,2,4,4,1,64" "KVZ_MATMUL_XHALF_PROBE=1 KVZ_MATMUL_TILE=2,4,4,4,1,32" "KVZ_MATMUL_TILE=2,2,4,4,1,64"; do
  echo "== $e"; env $e timeout 60 $B/kvz_bench --benchmark_filter="$MF" --benchmark_min_time=0.2 2>&1 | grep -E "^BM_|rror" | cut -c1-150
done
timeout 200 python3 bench/torch_ref.py --no-hf > $OUT/torch.jsonl 2> $OUT/torch.err; echo "torch rc=$?"; cut -c1-220 $OUT/torch.jsonl
