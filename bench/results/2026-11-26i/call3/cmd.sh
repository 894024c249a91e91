# Call 3: the radix sampling kernel (shaders/sample_radix.comp): GPU tests of both sampling kernels,
# sampling A/B (radix vs KVZ_SAMPLE_BISECT=1, alternated), the model suite, then the 128K KVzip
# phases again (the tg64 ratio r 0.3 / r 1).
source .gl/dev.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $OUT/gpu.txt
$B/kvzip devices > $OUT/devices.txt 2>&1
grep -q "H100\|H200" $OUT/devices.txt || { echo "no Vulkan GPU"; cat $OUT/devices.txt; exit 1; }
timeout 100 $B/kvz_runtime_tests --gtest_brief=1 --gtest_filter='*Sample*:*Argmax*:Tuning*' > $OUT/tests_sampling.log 2>&1
echo "sampling tests rc=$?"; grep -E "^\[  (PASSED|FAILED)" $OUT/tests_sampling.log
for rep in 1 2; do
  for cfg in "KVZ_SAMPLE_BISECT=0" "KVZ_SAMPLE_BISECT=1"; do
    echo "== $cfg rep $rep"
    env $cfg timeout 60 $B/kvz_bench --benchmark_filter='BM_(sample|argmax)/' --benchmark_min_time=0.3 2>&1 | grep -E "^BM_" | cut -c1-150
  done
done 2>&1 | tee $OUT/sample_ab.txt
timeout 150 $B/kvz_model_tests --gtest_brief=1 > $OUT/tests_model.log 2>&1
echo "model tests rc=$?"; grep -E "^\[  (PASSED|FAILED)|SKIPPED \]" $OUT/tests_model.log | head
timeout 330 $B/kvzip bench -m synthetic:llama3.1-8b:q4_k -p 512 -n 64 -d 0 --kvzip-depth 130000 --ratios 1,0.3 -r 1 \
  --json $OUT/kvzip128k.json > $OUT/kvzip128k.md 2> $OUT/kvzip128k.err
echo "kvzip128k rc=$?"; cat $OUT/kvzip128k.md
