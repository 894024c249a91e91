#!/usr/bin/env bash
# gpuspeed's H100 call (issue 25): the suites for what changed (filtered), then decode tg128 at
# depth 4096 with main's binary (kvzip_base) and the branch's (kvzip) alternated, torch's copy
# bandwidth for the bound, and kvzip bench --compare over the runs. Writes to $OUT.
set -uo pipefail
cd "$(dirname "$0")/.."
C=.carry_gpuspeed
export LD_LIBRARY_PATH=$PWD/.gl/lib KVZ_SOURCE_DIR=$PWD
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
$C/kvzip devices 2>&1 | head -6
$C/kvzip --version; $C/kvzip_base --version
timeout 60 $C/kvz_runtime_tests --gtest_brief=1 \
  --gtest_filter='*MatvecGateUp*:*GatedAct*:*Dequant*:*Matvec*:*matvec*' >"$OUT/test_runtime.log" 2>&1
echo "runtime rc=$? $(grep -E '^\[  (PASSED|FAILED)  \]|tests? ran' "$OUT/test_runtime.log" | tr '\n' ' ')"
grep -E '^\[  FAILED  \]' "$OUT/test_runtime.log" | head
timeout 60 $C/kvz_bench --benchmark_filter='BM_gate_up/' --benchmark_min_time=0.2 \
  --benchmark_out="$OUT/bench_gate_up.json" --benchmark_out_format=json 2>&1 | grep -E "^BM_|rror" | cut -c1-150
timeout 60 python3 - <<'PY' | tee "$OUT/copy.json"
import json, time, torch
a = torch.empty(1 << 30, dtype=torch.uint8, device="cuda"); b = torch.empty_like(a)
for _ in range(3): b.copy_(a)
torch.cuda.synchronize(); t = time.perf_counter()
for _ in range(20): b.copy_(a)
torch.cuda.synchronize(); s = (time.perf_counter() - t) / 20
print(json.dumps({"test": "copy", "GBps": 2 * (1 << 30) / s / 1e9, "torch": torch.__version__}))
PY
for i in 1 2; do
  for b in base ours; do
    bin=$C/kvzip; [ $b = base ] && bin=$C/kvzip_base
    timeout 100 $bin bench -m synthetic:llama3.1-8b:q4_k -p 16 -n 128 -d 4096 --kvzip-depth 0 -r 2 \
      --json "$OUT/tg_${b}_$i.json" >"$OUT/tg_${b}_$i.md" 2>"$OUT/tg_${b}_$i.err"
    echo "$b $i rc=$? $(grep -E 'tg128|weights' "$OUT/tg_${b}_$i.md" | cut -d'|' -f5- | tr '\n' ' ')"
  done
done
$C/kvzip bench --compare "$OUT"/tg_base_1.json "$OUT"/tg_ours_1.json "$OUT"/tg_base_2.json \
  "$OUT"/tg_ours_2.json --plot "$OUT/compare.png" | tee "$OUT/compare.md"
