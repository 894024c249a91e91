# Call 4: the sampling tests with the rounding-aware check (call 3: the 128,256-token case was off
# the double-precision reference on the H100), three times.
source .gl/dev.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $OUT/gpu.txt
for i in 1 2 3; do
  timeout 100 $B/kvz_runtime_tests --gtest_brief=1 --gtest_filter='*Sample*:*Argmax*:Tuning*' 2>&1 | grep -vE "^Running main|^\[==" 
done
