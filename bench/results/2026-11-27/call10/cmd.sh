# 2026-11-27 call 10: the suites, then the whole target table in one command, final binaries
# (3028d41: the probe and the tile rule).
. .gl/dev.sh; $B/kvzip devices | grep -q H100 || exit 1
OUT=$OUT bash bench/gpu_run.sh check
