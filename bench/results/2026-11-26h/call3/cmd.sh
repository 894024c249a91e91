source .gl/dev.sh
O=$OUT
timeout 120 $B/kvz_runtime_tests --gtest_brief=1 --gtest_filter='*PagedAttentionCoopmat*:*Prefill*:*MatmulCoopmat*cm2*' > $O/tests_attn.log 2>&1
echo "tests rc=$?"; grep -E "FAILED|PASSED|ran\.|exception" $O/tests_attn.log | head -20
KVZ_COOPMAT=cm2 timeout 120 $B/kvz_model_tests --gtest_brief=1 > $O/tests_model_cm2.log 2>&1
echo "model tests (cm2) rc=$?"; grep -E "FAILED|PASSED|ran\." $O/tests_model_cm2.log | head -10
F='BM_paged_attention/llama3_8b_prefill_(4k|16k)_causal/'
run() { name=$1; shift; echo "== $name"; env "$@" timeout 60 $B/kvz_bench --benchmark_filter="$F" --benchmark_min_time=0.3 2>&1 | tee $O/attn_$name.txt | grep -E "^BM_|rror" | cut -c1-160; }
run khr KVZ_COOPMAT=khr
run cm2_br64 KVZ_COOPMAT=cm2
run cm2_br128 KVZ_COOPMAT=cm2 KVZ_ATTN_CM2_BR=128
