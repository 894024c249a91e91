source .gl/dev.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $OUT/gpu.txt
timeout 120 $B/kvz_model_tests --gtest_filter='*SessionTest*:*Stories*' --gtest_brief=1 > $OUT/t_model.log 2>&1; echo "model tests rc=$? $(grep -E '^\[  (PASSED|FAILED)' $OUT/t_model.log | tr '\n' ' ')"
M=synthetic:llama3.1-8b:q4_k
row() { grep -E "^\| synth|GPU time per decoded" | awk -F'|' '/synth/{print $5,$6,$7; next} {print}'; }
for a in 0 1; do echo "== NO_AHEAD=$a tg d0,4096"; KVZ_NO_DECODE_AHEAD=$a timeout 100 $B/kvzip bench -m $M -p 512 -n 64 -d 0,4096 --kvzip-depth 0 -r 2 2>&1 | tee $OUT/tg_$a.txt | row; done
for a in 0 1; do echo "== NO_AHEAD=$a 32K"; KVZ_NO_DECODE_AHEAD=$a timeout 120 $B/kvzip bench -m $M -p 512 -n 64 -d 0 --kvzip-depth 32768 --ratios 1,0.3 -r 1 2>&1 | tee $OUT/k32_$a.txt | row; done
echo "== 128K ahead"; timeout 300 $B/kvzip bench -m $M -p 512 -n 64 -d 0 --kvzip-depth 130000 --ratios 1,0.3 -r 1 --json $OUT/e2e128k.json 2>$OUT/e2e.err | tee $OUT/e2e.md | row; tail -2 $OUT/e2e.err
