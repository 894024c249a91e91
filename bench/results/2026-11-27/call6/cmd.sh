# 2026-11-27 call 6: the suites, then the whole target table in one command, final binaries
# (ff92640: the ceiling probe in the table's kvz_bench run).
. .gl/dev.sh; $B/kvzip devices | grep -q H100 || exit 1
OUT=$OUT bash bench/gpu_run.sh check
