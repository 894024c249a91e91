# Call 1: the tests the ninth session could not run on the H100 (cm2 split-K, sampling), the whole
# runtime suite, a fresh decode profile at 4K, and the prefill attention shapes (baseline).
source .gl/dev.sh
$B/kvzip devices 2>&1 | grep -q H100 || { echo "no H100 through Vulkan"; exit 1; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
timeout 240 $B/kvz_runtime_tests --gtest_brief=1 2>&1 | grep -E "^\[  (PASSED|FAILED)|tests? ran|FAILED" | head -20
KVZ_PROFILE=1 timeout 120 $B/kvzip bench -m synthetic:llama3.1-8b:q4_k -p 512 -n 32 -d 4096 \
  --kvzip-depth 0 -r 1 > $OUT/profile4k.txt 2>&1; echo "profile rc=$?"
KVZ_PIPELINE_STATS=1 timeout 120 $B/kvz_bench --benchmark_min_time=0.2 \
  --benchmark_filter='BM_paged_attention/llama3_8b_(prefill|reconstruct)' > $OUT/attn.txt 2>&1
grep -E "^BM_" $OUT/attn.txt | cut -c1-150
grep -iE "cm2.*reg|regist" $OUT/attn.txt | sort | uniq | head
