#!/usr/bin/env bash
# scanban's memory: RSS idle, then peak RSS during a bounded spoofed-source SYN flood to closed
# ports (hping3 --rand-source: every packet a new source, the worst case for tracking), with the
# default capacity of 65,536 sources. Also reports what the daemon counted and the kernel's
# queue counters. Throwaway namespaces; the flood is bounded by count and by time.
# Usage: sudo bench/daemon-memory.sh [PACKETS]   (default 1000000)
set -euo pipefail
cd "$(dirname "$0")/.."
packets=${1:-1000000}
cargo build -q --release
bin=$PWD/target/release/scanban
srv=sb-mem-$$-srv; atk=sb-mem-$$-atk
tmp=$(mktemp -d)
cleanup() {
  [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  ip netns del "$srv" 2>/dev/null || true; ip netns del "$atk" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
ip netns add "$srv"; ip netns add "$atk"
ip link add name veth0 netns "$srv" type veth peer name veth0 netns "$atk"
ip -n "$srv" addr add 192.0.2.1/24 dev veth0; ip -n "$atk" addr add 192.0.2.2/24 dev veth0
for ns in "$srv" "$atk"; do ip -n "$ns" link set lo up; ip -n "$ns" link set veth0 up; done
# Replies to spoofed sources need a route; send them back to the attacker's side.
ip -n "$srv" route add 0.0.0.0/1 dev veth0
ip -n "$srv" route add 128.0.0.0/1 dev veth0

ip netns exec "$srv" "$bin" run --stats-file "$tmp/stats" 2>"$tmp/log" &
pid=$!
for _ in $(seq 100); do [ -s "$tmp/stats" ] && break; sleep 0.1; done
rss() { awk -v k="$1" '$1 == k":" {print $2}' "/proc/$pid/status"; }
echo "machine: $(nproc) cpus, $(lscpu | sed -n 's/Model name: *//p'), kernel $(uname -r)"
echo "idle: VmRSS $(rss VmRSS) kB"
start=$(date +%s.%N)
ip netns exec "$atk" timeout 60 hping3 -S --rand-source -p 81 -c "$packets" --faster 192.0.2.1 >/dev/null 2>&1 || true
end=$(date +%s.%N)
sleep 2
echo "flood: $packets SYNs from random sources in $(echo "$end - $start" | bc) s"
echo "after the flood: VmRSS $(rss VmRSS) kB, peak VmHWM $(rss VmHWM) kB"
"$bin" status --stats-file "$tmp/stats" | grep -E "^(packets|probes|tracked|evicted|bans_issued|bans_suppressed|bans_applied|bans_active|queue_dropped|queue_user_dropped) "
