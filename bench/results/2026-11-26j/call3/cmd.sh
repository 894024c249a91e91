# Call 3: cm2 prefill attention variants (KVZ_ATTN_CM2_VARIANT bits: 1 = row sums as ones columns
# of V in PV, 2 = V loaded with K at the start of a step): tests, the attention shapes alternated
# twice, then the 32K KVzip phases for the default and variant 1.
source .gl/dev.sh
$B/kvzip devices 2>&1 | grep -q H100 || { echo "no H100 through Vulkan"; exit 1; }
for va in 0 1 2 3; do
  KVZ_PIPELINE_STATS=1 KVZ_ATTN_CM2_VARIANT=$va timeout 90 $B/kvz_runtime_tests --gtest_brief=1 \
    --gtest_filter='*PagedAttention*:*Cm2Split*' > $OUT/t$va.log 2>&1
  echo "variant=$va $(grep -E '^\[  (PASSED|FAILED)' $OUT/t$va.log | tr '\n' ' ') $(grep -o 'paged_attention_cm2 spec [^:]*: Register Count=[0-9]*' $OUT/t$va.log | sort -u | tr '\n' ' ')"
  grep -E "^\[  FAILED" $OUT/t$va.log | head -5
done
for va in 0 1 2 3 0 1 2 3; do
  echo "== variant=$va"
  KVZ_ATTN_CM2_VARIANT=$va timeout 60 $B/kvz_bench --benchmark_min_time=0.2 \
    --benchmark_filter='BM_paged_attention/llama3_8b_(prefill|reconstruct)' 2>&1 | grep -E "^BM_" | cut -c1-110
done
for va in 1 0 1 0; do
  KVZ_ATTN_CM2_VARIANT=$va timeout 100 $B/kvzip bench -m synthetic:llama3.1-8b:q4_k -p 512 -n 0 -d 0 \
    --kvzip-depth 32768 --ratios 0.3 -r 1 > $OUT/k32_v$va.md 2>/dev/null
  echo "variant=$va rc=$? $(grep -E 'kvzip (prefill|scoring)' $OUT/k32_v$va.md | awk -F'|' '{print $5, $7}' | tr '\n' ' ')"
done
