source .gl/dev.sh
O=$OUT
M=synthetic:llama3.1-8b
KVZ_PROFILE=1 timeout 150 $B/kvzip bench -m $M:q4_k -p 512 -n 16 -d 0 --kvzip-depth 32768 --ratios 1 -r 1 > $O/prof32k.md 2> $O/prof32k.err
echo "32k rc=$?"; cat $O/prof32k.md | grep -E "prefill|scor" ; grep -A40 "KVzip prefill and scoring" $O/prof32k.err | head -45
KVZ_PROFILE=1 timeout 60 $B/kvzip bench -m $M:f16 -p 4096 -n 0 -d 0 --kvzip-depth 0 -r 1 > $O/prof_pp4096.md 2> $O/prof_pp4096.err
echo "pp4096 rc=$?"; grep pp4096 $O/prof_pp4096.md; grep -A25 "pp/tg runs" $O/prof_pp4096.err | head -30
