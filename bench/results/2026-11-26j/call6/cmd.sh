# Call 6: is the decode split's workgroup count (waves of about 3 workgroups per SM x 132 SMs =
# 396) what holds decode attention below the copy rate? The decode shapes under several share
# counts (KVZ_DECODE_SPLITS caps the shares per head; rows per share round up to 64).
source .gl/dev.sh
$B/kvzip devices 2>&1 | grep -q H100 || { echo "no H100 through Vulkan"; exit 1; }
run() {  # filter, splits
  if [ "$2" = default ]; then unset KVZ_DECODE_SPLITS; else export KVZ_DECODE_SPLITS=$2; fi
  KVZ_PIPELINE_STATS=1 timeout 60 $B/kvz_bench --benchmark_min_time=0.3 --benchmark_filter="$1" 2>&1 |
    grep -E "^BM_|paged_decode spec" | sed -E 's/.*(paged_decode spec [^:]*: Register Count=[0-9]*).*/\1/' |
    cut -c1-100 | sed "s/^/splits=$2 /" | sort -u
}
for i in 1 2; do
  for s in default 293 98 49; do run 'BM_paged_attention/llama3_8b_decode_128k/' $s; done
  for s in default 79 158; do run 'BM_paged_attention/llama3_8b_decode_128k_ragged30/' $s; done
  for s in default 47 99; do run 'BM_paged_attention/llama3_8b_decode_32k/' $s; done
  for s in default 64; do run 'BM_paged_attention/llama3_8b_decode_4k/' $s; done
done
