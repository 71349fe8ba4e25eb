#!/usr/bin/env bash
# Throughput of traffic that is NOT banned while N addresses are: N elements in scanban's set
# (one prerouting rule, a hash lookup) against N `ip saddr X drop` rules (the article's design:
# one rule per banned address, walked linearly by every packet). Same flood in the same run:
# bench/c/pktgen.c, UDP from 192.0.2.2 as fast as it goes for SECS seconds; the server counts
# what reaches its input hook. Banned keys are IPv4 addresses that never appear on the wire
# (198.18.0.0/15, the benchmarking range); they live only in the sets and rules.
# Usage (as root): bench/ban-scaling.sh [SECS]   (default 2)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
secs=${1:-2}
cargo build -q --release
bin=$PWD/target/release/scanban
build_pktgen
tmp=$(mktemp -d)
on_exit+=('rm -rf "$tmp"')
bench_netns scale
bench_machine

addrs() { for i in $(seq 0 $(($1 - 1))); do echo "198.$((18 + i / 65536)).$(((i / 256) % 256)).$((i % 256))"; done; }

measure() { # label -> packets/s reaching input
  printf 'table inet count {\n chain input {\n  type filter hook input priority 0;\n  udp dport 9 counter drop\n }\n}\n' \
    | ip netns exec "$srv" nft -f -
  local out n
  out=$(ip netns exec "$atk" "$pktgen" veth0 "$srv_mac" 192.0.2.1 192.0.2.2 1 1 9 udp 100000000 0 "$secs")
  n=$(ip netns exec "$srv" nft list chain inet count input | sed -n 's/.*counter packets \([0-9]*\).*/\1/p')
  ip netns exec "$srv" nft delete table inet count
  printf '%-52s %8d packets/s   (generator: %s)\n' "$1" $((n / secs)) "$out"
}

for n in 0 1000 10000 100000; do
  ip netns exec "$srv" nft flush ruleset
  addrs "$n" > "$tmp/list"
  if [ "$n" -gt 0 ]; then
    ip netns exec "$srv" "$bin" ban --file "$tmp/list" --for 1h --set-size 200000 >/dev/null
  else
    ip netns exec "$srv" "$bin" ban 198.18.0.1 --for 1h >/dev/null
    ip netns exec "$srv" "$bin" unban 198.18.0.1 >/dev/null
  fi
  measure "scanban set, $n bans"
done
for n in 1000 10000 100000; do
  ip netns exec "$srv" nft flush ruleset
  printf 'table ip perip {\n chain pre {\n  type filter hook prerouting priority -450;\n }\n}\n' \
    | ip netns exec "$srv" nft -f -
  t0=$(date +%s.%N)
  # 10,000 rules per nft -f: nft's own netlink buffer refuses one transaction of 100,000.
  addrs "$n" | split -l 10000 - "$tmp/rules."
  for f in "$tmp"/rules.*; do
    sed 's/^/add rule ip perip pre ip saddr /; s/$/ drop/' "$f" > "$tmp/rules.nft"
    ip netns exec "$srv" nft -f "$tmp/rules.nft"
    rm -f "$f"
  done
  load=$(echo "$(date +%s.%N) - $t0" | bc)
  measure "one rule per address, $n rules (load $(printf %.1f "$load") s)"
done
