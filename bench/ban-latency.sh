#!/usr/bin/env bash
# Ban latency: from the probe that crosses the threshold to the kernel's ACK of the ban element,
# over 1,000 bans, against one spawned `nft add element` per ban (what a script, fail2ban's
# nftables action or the article's tool do).
#
# scanban runs in managed mode in a throwaway namespace; bench/c/pktgen.c plays 1,000 scanners,
# one /64 each (2001:db8:100::/48 and up), each sending SYNs to privileged ports 1..8 back to
# back (7 reach the default threshold of 21), 2,000 packets/s in all: a new ban every 4 ms.
# The daemon times every ban to the kernel's ACK of the element twice, and `scanban status`
# reports the percentiles of the last 1,024 of each:
#   from arrival: from the kernel's receive timestamp of the probe that crossed the threshold
#                 (NFQA_TIMESTAMP; the daemon turns kernel timestamps on): what a scanner sees;
#   from receive: from the return of the recvmmsg that read the probe's batch: scanban's own part.
# The difference is the probe's wait in the kernel's queue and the queue thread's wake-up.
# The script also counts the elements in the kernel.
# Usage (as root): bench/ban-latency.sh [BANS]   (default 1000)
# WRAP="chrt -f 10" bench/ban-latency.sh runs the daemon under that command (a diagnostic: with
# real-time scheduling, how much of the latency is waiting for a CPU on a busy machine).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
bans=${1:-1000}
read -r -a wrap <<<"${WRAP:-}"
cargo build -q --release
bin=$PWD/target/release/scanban
build_pktgen
tmp=$(mktemp -d)
on_exit+=('[ -n "${pid:-}" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null' 'rm -rf "$tmp"')
bench_netns lat
ip -n "$srv" -6 route add 2001:db8::/32 via 2001:db8::2
bench_machine

[ ${#wrap[@]} -gt 0 ] && echo "daemon run under: ${wrap[*]}"
ip netns exec "$srv" "${wrap[@]}" "$bin" run --verdict drop --ban-rate 10000 --stats-file "$tmp/stats" \
  2>"$tmp/log" &
pid=$!
for _ in $(seq 100); do [ -s "$tmp/stats" ] && break; sleep 0.1; done
ip netns exec "$atk" "$pktgen" veth0 "$srv_mac" 2001:db8::1 2001:db8:100:: "$bans" 8 1 syn \
  $((bans * 8)) 2000 60
for _ in $(seq 100); do
  [ "$(stat_of "$tmp/stats" ban_latency_from_receive_samples)" -ge "$((bans < 1024 ? bans : 1024))" ] && break
  sleep 0.2
done
sleep 1.2 # one more stats write
in_kernel=$(ip netns exec "$srv" "$bin" list | grep -c '^2001:db8:' || true)
echo "scanban: $(stat_of "$tmp/stats" bans_applied) bans applied, $in_kernel elements in the kernel set"
latency() { # from_arrival|from_receive
  local k=ban_latency_$1
  echo "scanban: ban latency $1 p50 $(stat_of "$tmp/stats" "${k}_p50_us") us," \
    "p99 $(stat_of "$tmp/stats" "${k}_p99_us") us, max $(stat_of "$tmp/stats" "${k}_max_us") us" \
    "over $(stat_of "$tmp/stats" "${k}_samples") bans"
}
latency from_arrival
latency from_receive
echo "scanban: bans not timed from arrival (no kernel timestamp): $(stat_of "$tmp/stats" ban_latency_from_arrival_untimed)"
kill "$pid"; wait "$pid" 2>/dev/null || true; pid=

# The peer: one `nft add element` process per ban, timed from spawn to exit, in the same
# namespace, into the same kind of set.
ip netns exec "$srv" nft add table inet peer
ip netns exec "$srv" nft add set inet peer ban6 "{ type ipv6_addr; flags interval, timeout; }"
ip netns exec "$srv" bash -c '
  for i in $(seq 1 '"$bans"'); do
    t0=$EPOCHREALTIME
    nft add element inet peer ban6 "{ 2001:db8:$(printf %x $((0x200 + i / 65536))):$(printf %x $((i % 65536)))::/64 timeout 1h }"
    t1=$EPOCHREALTIME
    echo $(( (${t1/./} - ${t0/./}) ))
  done' > "$tmp/peer"
python3 - "$tmp/peer" <<'PY'
import math, sys
v = sorted(int(x) for x in open(sys.argv[1]))
r = lambda p: v[max(1, math.ceil(p * len(v) / 100)) - 1]
print(f"nft add element (spawn per ban): p50 {r(50)} us, p99 {r(99)} us, max {v[-1]} us over {len(v)} bans")
PY
echo "peer elements: $(ip netns exec "$srv" nft list set inet peer ban6 | grep -o '2001:db8:' | wc -l)"
