#!/bin/sh
# swapbench [dupalloc options]: dupalloc under zswap, with zswap's and the
# VM's counters (the zswap bench, harness/sweeps/bench-swap.toml).
#
# A background loop keeps the peaks of zswap's pool and stored pages
# (every 0.2 s) while dupalloc, given every argument, fills and verifies;
# then one event with every counter, and dupalloc's exit status:
#
#   PKSMTB-EVENT swapbench rc=R t0=S t1=S pool_peak=B stored_peak=N
#       written_back=N poor=N cfail=N afail=N zswpout=N zswpin=N
#       pswpout=N pswpin=N allocstall=N
#
# t0, t1: /proc/uptime around dupalloc; poor, cfail, afail: zswap's
# reject_compress_poor, reject_compress_fail, reject_alloc_fail;
# allocstall: the sum of /proc/vmstat's allocstall_* lines.
# (harness/pksmtb/metrics/swap.py turns the event into figures.)
z=/sys/kernel/debug/zswap
peak=/tmp/zswap-peak
[ -r $z/pool_total_size ] || { echo "swapbench: no $z (zswap on, debugfs mounted?)" >&2; exit 3; }
rm -f /tmp/stop-peak
( pool=0; stored=0
  while [ ! -e /tmp/stop-peak ]; do
	p=$(cat $z/pool_total_size); s=$(cat $z/stored_pages)
	[ "$p" -gt "$pool" ] && pool=$p
	[ "$s" -gt "$stored" ] && stored=$s
	echo "$pool $stored" > $peak.new && mv $peak.new $peak
	sleep 0.2
  done ) &
W=$!
t0=$(cut -d' ' -f1 /proc/uptime)
dupalloc "$@"
rc=$?
t1=$(cut -d' ' -f1 /proc/uptime)
touch /tmp/stop-peak; wait $W
read pool stored < $peak
vm() { awk -v k="$1" '$1 == k { print $2 }' /proc/vmstat; }
stall=0
for f in $(awk '$1 ~ /^allocstall_/ { print $2 }' /proc/vmstat); do stall=$((stall + f)); done
echo "PKSMTB-EVENT swapbench rc=$rc t0=$t0 t1=$t1 pool_peak=$pool stored_peak=$stored" \
	"written_back=$(cat $z/written_back_pages) poor=$(cat $z/reject_compress_poor)" \
	"cfail=$(cat $z/reject_compress_fail) afail=$(cat $z/reject_alloc_fail)" \
	"zswpout=$(vm zswpout) zswpin=$(vm zswpin) pswpout=$(vm pswpout) pswpin=$(vm pswpin)" \
	"allocstall=$stall"
exit $rc
