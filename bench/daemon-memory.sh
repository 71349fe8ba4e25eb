#!/usr/bin/env bash
# scanban's memory: RSS idle, then peak RSS during a bounded spoofed-source SYN flood to closed
# ports (hping3 --rand-source: every packet a new source, the worst case for tracking), with the
# default capacity of 65,536 sources. A real scan (nmap -sS from 192.0.2.2) is started 3 s into
# the flood; the script times it from nmap's start to its ban being in the kernel set.
# Also reports what the daemon counted and the kernel's queue counters. Throwaway namespaces;
# the flood is bounded by count and by time.
# Usage (as root): bench/daemon-memory.sh [PACKETS]   (default 1000000)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
packets=${1:-1000000}
cargo build -q --release
bin=$PWD/target/release/scanban
tmp=$(mktemp -d)
on_exit+=('[ -n "${pid:-}" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null'
          '[ -n "${flood:-}" ] && kill "$flood" 2>/dev/null' 'rm -rf "$tmp"')
bench_netns mem
# Replies to spoofed sources go to the attacker's namespace (which drops them) through its
# address: a route "dev veth0" would make the server ARP for each random source, and the ARP
# table's size limit is shared by every namespace on the host (a flood would overflow it and
# break neighbour resolution everywhere, the host included).
# The next hop is a second attacker address: a gateway is auto-allowlisted, the scanner must not be.
ip -n "$atk" addr add 192.0.2.3/24 dev veth0
ip -n "$srv" route add 0.0.0.0/1 via 192.0.2.3
ip -n "$srv" route add 128.0.0.0/1 via 192.0.2.3

ip netns exec "$srv" "$bin" run --stats-file "$tmp/stats" 2>"$tmp/log" &
pid=$!
for _ in $(seq 100); do [ -s "$tmp/stats" ] && break; sleep 0.1; done
rss() { awk -v k="$1" '$1 == k":" {print $2}' "/proc/$pid/status"; }
bench_machine
echo "idle: VmRSS $(rss VmRSS) kB"
start=$(date +%s.%N)
ip netns exec "$atk" timeout 90 hping3 -S --rand-source -p 81 -c "$packets" --faster 192.0.2.1 \
  >/dev/null 2>&1 &
flood=$!
sleep 3
t0=$(date +%s%N)
ip netns exec "$atk" timeout 30 nmap -n -Pn -sS --top-ports 200 -T4 192.0.2.1 >/dev/null 2>&1 &
scan=$!
banned_after=never
for _ in $(seq 500); do
  if ip netns exec "$srv" nft list set inet scanban banned4 2>/dev/null | grep -q '192\.0\.2\.2\b'; then
    banned_after="$(( ($(date +%s%N) - t0) / 1000000 )) ms"
    break
  fi
  sleep 0.02
done
wait "$scan" || true
echo "hidden scan (nmap -sS from 192.0.2.2, 3 s into the flood): banned $banned_after after nmap started"
wait "$flood" || true; flood=
end=$(date +%s.%N)
sleep 2
echo "flood: $packets SYNs from random sources in $(echo "$end - $start" | bc) s"
echo "after the flood: VmRSS $(rss VmRSS) kB, peak VmHWM $(rss VmHWM) kB"
"$bin" status --stats-file "$tmp/stats" | grep -E "^(packets|probes|tracked|evicted|bans_issued|bans_suppressed|bans_applied|bans_active|queue_failed_open|queue_dropped|queue_user_dropped|ban_latency_from_arrival_p50_us|ban_latency_from_arrival_p99_us|ban_latency_from_receive_p50_us|ban_latency_from_receive_p99_us) "
