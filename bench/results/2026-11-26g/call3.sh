source .gl/dev.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
for t in runtime kvzip model; do timeout 200 $B/kvz_${t}_tests --gtest_brief=1 > $OUT/test_$t.log 2>&1; echo "kvz_${t}_tests rc=$? $(grep -E '^\[  (PASSED|FAILED)  \]|SKIPPED \]|tests? ran' $OUT/test_$t.log | tr '\n' ' ')"; grep -E '^\[  FAILED  \]' $OUT/test_$t.log | head; done
for i in 1 2; do timeout 90 $B/kvz_bench --benchmark_filter='BM_paged_attention/llama3_8b_decode_(4k|32k|128k|128k_ragged30)(_combine)?/' --benchmark_min_time=0.2 2>&1 | grep -E "^BM_" | cut -c1-150; done
M=synthetic:llama3.1-8b:q4_k
row() { grep -E "^\| synth|GPU time per decoded" | awk -F'|' '/synth/{print $5,$6,$7; next} {print}'; }
for c in 0 1 0 1; do echo "== COMBINE=$c tg"; KVZ_DECODE_COMBINE=$c timeout 100 $B/kvzip bench -m $M -p 512 -n 64 -d 0,4096 --kvzip-depth 0 -r 2 2>&1 | row | grep tg; done
for c in 0 1; do echo "== COMBINE=$c 32K"; KVZ_DECODE_COMBINE=$c timeout 120 $B/kvzip bench -m $M -p 512 -n 64 -d 0 --kvzip-depth 32768 --ratios 1,0.3 -r 1 2>&1 | row | grep -E "tg|scoring|prefill"; done
