# Call 2: lazy rescaling in the cm2 prefill attention (KVZ_ATTN_CM2_LAZY, default 1) and the
# forward's early stop after the last layer's hook when no logits are asked for.
# Tests with lazy on and off, the attention shapes alternated, then the 32K KVzip phases.
source .gl/dev.sh
$B/kvzip devices 2>&1 | grep -q H100 || { echo "no H100 through Vulkan"; exit 1; }
for lz in 1 0; do
  KVZ_ATTN_CM2_LAZY=$lz timeout 90 $B/kvz_runtime_tests --gtest_brief=1 \
    --gtest_filter='*PagedAttention*:*Cm2Split*:*AttnScore*' 2>&1 | grep -E "^\[  (PASSED|FAILED)|FAILED" | sed "s/^/lazy=$lz /" | head
done
for t in kvzip model; do
  timeout 150 $B/kvz_${t}_tests --gtest_brief=1 > $OUT/test_$t.log 2>&1
  echo "$t rc=$? $(grep -E '^\[  (PASSED|FAILED)' $OUT/test_$t.log | tr '\n' ' ')"
  grep -E "^\[  FAILED" $OUT/test_$t.log | head
done
for lz in 0 1 0 1; do
  echo "== lazy=$lz"
  KVZ_ATTN_CM2_LAZY=$lz timeout 60 $B/kvz_bench --benchmark_min_time=0.2 \
    --benchmark_filter='BM_paged_attention/llama3_8b_(prefill|reconstruct)' 2>&1 | grep -E "^BM_" | cut -c1-150
done
for lz in 1 0 1 0; do
  KVZ_ATTN_CM2_LAZY=$lz timeout 100 $B/kvzip bench -m synthetic:llama3.1-8b:q4_k -p 512 -n 0 -d 0 \
    --kvzip-depth 32768 --ratios 0.3 -r 1 > $OUT/k32_lazy$lz.md 2>/dev/null
  echo "lazy=$lz rc=$? $(grep -E 'kvzip (prefill|scoring)' $OUT/k32_lazy$lz.md | awk -F'|' '{print $5, $7}' | tr '\n' ' ')"
done
