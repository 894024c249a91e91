source .gl/dev.sh
O=$OUT
timeout 100 $B/kvz_runtime_tests --gtest_brief=1 --gtest_filter='*PagedAttentionCoopmat*cm2*:*Prefill*block_runs*' > $O/tests_attn.log 2>&1
echo "attn tests rc=$?"; grep -E "FAILED|PASSED|ran\." $O/tests_attn.log | head -10
timeout 80 $B/kvz_model_tests --gtest_brief=1 > $O/tests_model.log 2>&1
echo "model tests rc=$?"; grep -E "FAILED|PASSED|ran\." $O/tests_model.log | head -10
F='BM_paged_attention/llama3_8b_prefill_(4k|16k)_causal/'
run() { name=$1; shift; echo "== $name"; env "$@" timeout 40 $B/kvz_bench --benchmark_filter="$F" --benchmark_min_time=0.2 2>&1 | tee $O/attn_$name.txt | grep -E "^BM_|rror" | cut -c1-160; }
run kt64 KVZ_ATTN_CM2_KT=64
run kt32 KVZ_ATTN_CM2_KT=32
run khr KVZ_COOPMAT=khr
run kt64_again KVZ_ATTN_CM2_KT=64
