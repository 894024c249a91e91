source .gl/dev.sh
O=$OUT
timeout 100 $B/kvz_runtime_tests --gtest_brief=1 --gtest_filter='*MatmulCoopmat*cm2*:*ChunkedWeights*' > $O/tests_cm2.log 2>&1
echo "tests rc=$?"; grep -E "FAILED|PASSED|ran\.|exceeds|exception" $O/tests_cm2.log | head -20
F='BM_matmul/llama3_8b_(attn_4096x4096_f16_m4096|ffn_up_14336x4096_f16_m512|ffn_down_4096x14336_f16_m512|attn_4096x4096_f16_m512)/'
run() { name=$1; shift; echo "== $name"; env "$@" timeout 40 $B/kvz_bench --benchmark_filter="$F" --benchmark_min_time=0.2 2>&1 | tee $O/mm_$name.txt | grep -E "^BM_|rror" | cut -c1-150; }
run khr KVZ_COOPMAT=khr
run cm2 KVZ_COOPMAT=cm2
run cm2_xprobe KVZ_COOPMAT=cm2 KVZ_CM2_XPROBE=1
run cm2_128x256x32 KVZ_COOPMAT=cm2 KVZ_CM2_TILE=128,256,32
run cm2_128x256x32_xprobe KVZ_COOPMAT=cm2 KVZ_CM2_TILE=128,256,32 KVZ_CM2_XPROBE=1
run cm2_256x128x32 KVZ_COOPMAT=cm2 KVZ_CM2_TILE=256,128,32
run cm2_128x128x64 KVZ_COOPMAT=cm2 KVZ_CM2_TILE=128,128,64
run cm2_256x256x32_xprobe KVZ_COOPMAT=cm2 KVZ_CM2_TILE=256,256,32 KVZ_CM2_XPROBE=1
