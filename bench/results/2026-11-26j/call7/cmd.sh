# Call 7: decode split-K sized to one round of resident workgroups (KVZ_DECODE_WAVE, default on;
# the H100 reports 132 SMs): tests, the decode shapes with and without it (alternated twice),
# torch's copy and SDPA decode in the same call, then the 128K KVzip phases.
source .gl/dev.sh
$B/kvzip devices 2>&1 | grep -q H100 || { echo "no H100 through Vulkan"; exit 1; }
$B/kvzip devices 2>&1 | grep -o "compute units [0-9a-z]*" | head -1
timeout 120 $B/kvz_runtime_tests --gtest_brief=1 --gtest_filter='*PagedAttention*:*DecodeSplit*:*AttnScore*' \
  > $OUT/test_runtime.log 2>&1; echo "runtime rc=$? $(grep -E '^\[  (PASSED|FAILED)' $OUT/test_runtime.log | tr '\n' ' ')"
grep -E "^\[  FAILED" $OUT/test_runtime.log | head
timeout 120 $B/kvz_kvzip_tests --gtest_brief=1 > $OUT/test_kvzip.log 2>&1
echo "kvzip rc=$? $(grep -E '^\[  (PASSED|FAILED)' $OUT/test_kvzip.log | tr '\n' ' ')"
for w in 1 0 1 0; do
  KVZ_DECODE_WAVE=$w timeout 60 $B/kvz_bench --benchmark_min_time=0.3 \
    --benchmark_filter='BM_paged_attention/llama3_8b_decode_(4k|32k|128k|128k_ragged30)/' 2>&1 |
    grep -E "^BM_" | cut -c1-100 | sed "s/^/wave=$w /"
done | tee $OUT/decode.txt
timeout 150 python3 bench/torch_ref.py --no-hf > $OUT/torch.jsonl 2>$OUT/torch.err
echo "torch rc=$?"; grep -E '"(copy|sdpa_decode)"' $OUT/torch.jsonl
timeout 280 $B/kvzip bench -m synthetic:llama3.1-8b:q4_k -p 512 -n 64 -d 0 --kvzip-depth 130000 \
  --ratios 1,0.3 -r 1 > $OUT/kvzip128k.md 2>$OUT/kvzip128k.err
echo "kvzip128k rc=$?"; grep -E "kvzip (prefill|scoring|tg64)" $OUT/kvzip128k.md | awk -F'|' '{print $5, $6, $7}'
