# Call 5: cm2 prefill attention, the next tile's K (PF=1) or K and V (PF=2) loaded into their own
# registers during a step: tests, timings (twice, alternated), then the 32K KVzip phases with the
# fastest and the default.
source .gl/dev.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $OUT/gpu.txt
$B/kvzip devices > $OUT/devices.txt 2>&1
grep -q "H100\|H200" $OUT/devices.txt || { echo "no Vulkan GPU"; cat $OUT/devices.txt; exit 1; }
for cfg in "KVZ_ATTN_CM2_PF=0" "KVZ_ATTN_CM2_PF=1" "KVZ_ATTN_CM2_PF=2"; do
  echo "== tests $cfg"
  env $cfg timeout 60 $B/kvz_runtime_tests --gtest_brief=1 --gtest_filter='*PagedAttentionCoopmat*cm2*' 2>&1 | grep -E "^\[  (PASSED|FAILED)|SKIPPED \]" | head -12
done 2>&1 | tee $OUT/tests.txt
F='BM_paged_attention/llama3_8b_(prefill|reconstruct)'
for rep in 1 2; do
  for cfg in "KVZ_ATTN_CM2_PF=0" "KVZ_ATTN_CM2_PF=1" "KVZ_ATTN_CM2_PF=2"; do
    echo "== bench $cfg"
    env $cfg KVZ_PIPELINE_STATS=1 timeout 60 $B/kvz_bench --benchmark_filter="$F" --benchmark_min_time=0.2 2>&1 | grep -E "^BM_|paged_attention_cm2" | cut -c1-150
  done
done 2>&1 | tee $OUT/bench.txt
best=$(awk '/^== bench/{c=$0; sub(/^== bench /,"",c)} /reconstruct/{if(b=="" || $2<t){t=$2; b=c}} END{print b}' $OUT/bench.txt)
echo "best: $best"
for cfg in "KVZ_ATTN_CM2_PF=0" "$best" "KVZ_ATTN_CM2_PF=0" "$best"; do
  echo "== kvzip 32k $cfg"
  env $cfg timeout 150 $B/kvzip bench -m synthetic:llama3.1-8b:q4_k -p 512 -n 0 -d 0 --kvzip-depth 32768 --ratios 1 -r 1 2>>$OUT/e2e.err | grep -E "kvzip (prefill|scoring)"
done 2>&1 | tee $OUT/e2e.txt
