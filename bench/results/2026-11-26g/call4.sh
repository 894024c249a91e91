source .gl/dev.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
for b in old new old new; do X=$B/kvz_bench; [ $b = old ] && X=$B/old/kvz_bench; echo "== $b small ops"; timeout 40 $X --benchmark_filter='BM_(rms_norm|argmax)/' --benchmark_min_time=0.2 2>&1 | grep -E "^BM_" | grep -vE "m512|_512" | cut -c1-110; done
M=synthetic:llama3.1-8b:q4_k
row() { grep -E "^\| synth" | awk -F'|' '{print $5,$6,$7}'; }
for b in old new; do K=$B/kvzip; [ $b = old ] && K=$B/old/kvzip; echo "== $b 128K"; timeout 270 $K bench -m $M -p 512 -n 64 -d 0 --kvzip-depth 130000 --ratios 1,0.3 -r 1 --json $OUT/e2e128k_$b.json 2>$OUT/e2e_$b.err | tee $OUT/e2e_$b.md | row; done
