source .gl/dev.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
timeout 150 $B/kvz_runtime_tests --gtest_brief=1 > $OUT/test_runtime.log 2>&1; echo "runtime rc=$? $(grep -E '^\[  (PASSED|FAILED)  \]|SKIPPED \]' $OUT/test_runtime.log | tr '\n' ' ')"; grep -E '^\[  FAILED  \]' $OUT/test_runtime.log | head
timeout 100 $B/kvz_model_tests --gtest_brief=1 > $OUT/test_model.log 2>&1; echo "model rc=$? $(grep -E '^\[  (PASSED|FAILED)  \]|SKIPPED \]' $OUT/test_model.log | tr '\n' ' ')"; grep -E '^\[  FAILED  \]' $OUT/test_model.log | head
M=synthetic:llama3.1-8b:q4_k
row() { grep -E "^\| synth" | awk -F'|' '{print $5,$6,$7}' | grep -E "tg|scoring"; }
for e in X=0 KVZ_AHEAD_SUBMIT_LAYERS=8 X=0 KVZ_AHEAD_SUBMIT_LAYERS=8 KVZ_NO_DECODE_AHEAD=1; do echo "== $e"; env $e timeout 80 $B/kvzip bench -m $M -p 512 -n 64 -d 0,4096 --kvzip-depth 0 -r 2 2>&1 | row; done
for e in X=0 KVZ_AHEAD_SUBMIT_LAYERS=8; do echo "== $e 32K"; env $e timeout 120 $B/kvzip bench -m $M -p 512 -n 64 -d 0 --kvzip-depth 32768 --ratios 1,0.3 -r 1 2>&1 | row; done
