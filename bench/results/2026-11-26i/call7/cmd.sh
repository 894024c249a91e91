# Call 7: the cm2 split-K test fixed (the CPU reference run no longer asks for a split scratch).
source .gl/dev.sh
timeout 60 $B/kvz_runtime_tests --gtest_brief=1 --gtest_filter='*Cm2Split*:*PagedAttentionCoopmat*cm2*' 2>&1 | grep -vE "^Running main"
