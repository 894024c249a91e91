source .gl/dev.sh
O=$OUT
timeout 90 $B/kvz_runtime_tests --gtest_brief=1 --gtest_filter='*PagedAttentionCoopmat*cm2*:*MatmulCoopmat*f16_cm2*:*MatmulCoopmat*q4_k_cm2*' > $O/tests_cm2.log 2>&1
echo "cm2 tests rc=$?"; grep -E "FAILED|PASSED|ran\." $O/tests_cm2.log | head -10
M=synthetic:llama3.1-8b:q4_k
for i in 1 2; do
  for v in old new; do
    K=$B/kvzip; [ $v = old ] && K=$B/old/kvzip
    timeout 80 $K bench -m $M -p 512 -n 64 -d 4096 --kvzip-depth 0 -r 3 > $O/tg_${v}_$i.md 2>$O/tg_${v}_$i.err
    echo "$v $i rc=$? $(grep tg64 $O/tg_${v}_$i.md | awk -F'|' '{print $6, $7}')"
  done
done
(cd $O && tar czf ab.tgz tg_* && rm -f tg_*)
