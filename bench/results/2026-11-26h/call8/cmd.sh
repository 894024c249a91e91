source .gl/dev.sh
O=$OUT
for t in runtime model kvzip; do
  timeout 170 $B/kvz_${t}_tests --gtest_brief=1 > $O/test_$t.log 2>&1
  echo "kvz_${t}_tests rc=$? $(grep -E '^\[  (PASSED|FAILED)  \]|tests? ran' $O/test_$t.log | tr '\n' ' ')"
  grep -E '^\[  FAILED  \]' $O/test_$t.log | head -10
done
