# 2026-11-27 call 1: suites + the target table in one command, binaries at 098760f
. .gl/dev.sh; $B/kvzip devices | grep -q H100 || exit 1
OUT=$OUT bash bench/gpu_run.sh check
