source .gl/dev.sh
O=$OUT
timeout 100 $B/kvz_runtime_tests --gtest_brief=1 --gtest_filter='*Coopmat*:*PagedAttention*:*Prefill*' > $O/tests_rt.log 2>&1
echo "runtime tests rc=$?"; grep -E "FAILED|PASSED|ran\." $O/tests_rt.log | head -10
timeout 80 $B/kvz_model_tests --gtest_brief=1 > $O/tests_model.log 2>&1
echo "model tests rc=$?"; grep -E "FAILED|PASSED|ran\." $O/tests_model.log | head -10
OUT=$O/targets bash bench/gpu_run.sh targets > $O/targets_log.txt 2>&1; echo "targets rc=$?"; cat $O/targets/targets.md
F='BM_paged_attention/llama3_8b_prefill_(4k|16k)_causal/'
run() { name=$1; shift; echo "== $name"; env "$@" timeout 30 $B/kvz_bench --benchmark_filter="$F" --benchmark_min_time=0.2 2>&1 | tee $O/targets/attn_$name.txt | grep -E "^BM_|rror" | cut -c1-160; }
run khr KVZ_COOPMAT=khr
run cm2_br256_wg256 KVZ_ATTN_CM2_BR=256
run cm2_br128_wg128 KVZ_ATTN_CM2_BR=128 KVZ_ATTN_CM2_WG=128
(cd $O && tar czf targets.tgz targets && rm -rf targets)
