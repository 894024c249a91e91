source .gl/dev.sh
O=$OUT
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $O/gpu.txt
$B/kvzip devices > $O/devices.txt 2>&1; grep -A3 "NV2" $O/devices.txt
timeout 150 $B/kvz_runtime_tests --gtest_brief=1 --gtest_filter='*Coopmat*:*MatmulSplit*' > $O/tests_coopmat.log 2>&1
echo "tests rc=$?"; grep -E "FAILED|PASSED|ran\." $O/tests_coopmat.log | head -20
F='BM_matmul/llama3_8b'
for api in khr cm2; do
  echo "== $api"; KVZ_COOPMAT=$api timeout 90 $B/kvz_bench --benchmark_filter="$F" --benchmark_min_time=0.2 2>&1 | tee $O/mm_$api.txt | grep -E "^BM_" | cut -c1-150
done
F='BM_matmul/llama3_8b_(attn_4096x4096_f16_m4096|ffn_up_14336x4096_f16_m512|ffn_down_4096x14336_f16_m512)/'
for t in 128,128,64 128,256,32 256,128,32 128,256,64 256,128,64 256,256,32 64,128,32 64,256,32 128,64,32; do
  echo "== tile $t"; KVZ_COOPMAT=cm2 KVZ_CM2_TILE=$t timeout 40 $B/kvz_bench --benchmark_filter="$F" --benchmark_min_time=0.2 2>&1 | tee $O/mm_tile_$t.txt | grep -E "^BM_|rror" | cut -c1-150
done
timeout 150 python3 bench/torch_ref.py --no-hf > $O/torch.jsonl 2> $O/torch.err; echo "torch rc=$?"; grep -i matmul $O/torch.jsonl
