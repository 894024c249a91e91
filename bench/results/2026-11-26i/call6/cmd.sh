# Call 6: split-K for the cm2 prefill kernel on long heads (2 shares + the combine pass; forced
# 3-way in PagedAttentionCm2SplitTest): the three GPU suites whole, the attention shapes with and
# without splits (KVZ_ATTN_CM2_SPLITS), alternated, then the 32K KVzip phases alternated.
source .gl/dev.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $OUT/gpu.txt
$B/kvzip devices > $OUT/devices.txt 2>&1
grep -q "H100\|H200" $OUT/devices.txt || { echo "no Vulkan GPU"; cat $OUT/devices.txt; exit 1; }
for t in runtime model kvzip; do
  timeout 200 $B/kvz_${t}_tests --gtest_brief=1 > $OUT/test_$t.log 2>&1
  echo "kvz_${t}_tests rc=$? $(grep -E '^\[  (PASSED|FAILED)  \]|SKIPPED \]' $OUT/test_$t.log | tr '\n' ' ')"
  grep -E '^\[  FAILED  \]' $OUT/test_$t.log | head -10
done
tar czf $OUT/test_logs.tgz -C $OUT test_runtime.log test_model.log test_kvzip.log && rm $OUT/test_*.log
F='BM_paged_attention/llama3_8b_(prefill|reconstruct)'
for rep in 1 2; do
  for cfg in "KVZ_ATTN_CM2_SPLITS=1" "KVZ_ATTN_CM2_SPLITS=0"; do
    echo "== bench $cfg"
    env $cfg timeout 60 $B/kvz_bench --benchmark_filter="$F" --benchmark_min_time=0.2 2>&1 | grep -E "^BM_" | cut -c1-150
  done
done 2>&1 | tee $OUT/bench.txt
for cfg in "KVZ_ATTN_CM2_SPLITS=1" "KVZ_ATTN_CM2_SPLITS=0" "KVZ_ATTN_CM2_SPLITS=1" "KVZ_ATTN_CM2_SPLITS=0"; do
  echo "== kvzip 32k $cfg"
  env $cfg timeout 150 $B/kvzip bench -m synthetic:llama3.1-8b:q4_k -p 512 -n 0 -d 0 --kvzip-depth 32768 --ratios 1 -r 1 2>>$OUT/e2e.err | grep -E "kvzip (prefill|scoring)"
done 2>&1 | tee $OUT/e2e.txt
