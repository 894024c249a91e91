# Call 4: HOIST in the cm2 prefill attention where the queries start 8K or more keys into the head
# (default) vs never / always (KVZ_ATTN_CM2_HOIST=0/1): the three GPU suites (default, then the
# attention tests with HOIST always on), the attention shapes, and the 32K KVzip phases alternated.
source .gl/dev.sh
$B/kvzip devices 2>&1 | grep -q H100 || { echo "no H100 through Vulkan"; exit 1; }
for t in runtime kvzip model; do
  timeout 200 $B/kvz_${t}_tests --gtest_brief=1 > $OUT/test_$t.log 2>&1
  echo "$t rc=$? $(grep -E '^\[  (PASSED|FAILED)' $OUT/test_$t.log | tr '\n' ' ')"
  grep -E "^\[  FAILED" $OUT/test_$t.log | head
done
KVZ_ATTN_CM2_HOIST=1 timeout 90 $B/kvz_runtime_tests --gtest_brief=1 \
  --gtest_filter='*PagedAttention*:*Cm2Split*' 2>&1 | grep -E '^\[  (PASSED|FAILED)' | sed 's/^/hoist=1 /'
timeout 60 $B/kvz_bench --benchmark_min_time=0.2 \
  --benchmark_filter='BM_paged_attention/llama3_8b_(prefill|reconstruct)' 2>&1 | grep -E "^BM_" | cut -c1-110
for hv in 0 rule 1 0 rule 1; do
  if [ $hv = rule ]; then unset KVZ_ATTN_CM2_HOIST; else export KVZ_ATTN_CM2_HOIST=$hv; fi
  timeout 100 $B/kvzip bench -m synthetic:llama3.1-8b:q4_k -p 512 -n 0 -d 0 \
    --kvzip-depth 32768 --ratios 0.3 -r 1 > $OUT/k32_h$hv.md 2>/dev/null
  echo "hoist=$hv rc=$? $(grep -E 'kvzip (prefill|scoring)' $OUT/k32_h$hv.md | awk -F'|' '{print $5, $7}' | tr '\n' ' ')"
done
