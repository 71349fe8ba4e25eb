#!/usr/bin/env bash
# Throughput of traffic that is NOT banned while N addresses are: N elements in scanban's set
# (one prerouting rule, a hash lookup) against N `ip saddr X drop` rules (the article's design:
# one rule per banned address, walked linearly by every packet). Same flood in the same run:
# hping3 UDP from 192.0.2.2 for SECS seconds; the server counts what reaches its input hook.
# Usage: sudo bench/ban-scaling.sh [SECS]   (default 3)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-3}
cargo build -q --release
bin=$PWD/target/release/scanban
srv=sb-scale-$$-srv; atk=sb-scale-$$-atk
tmp=$(mktemp -d)
cleanup() { ip netns del "$srv" 2>/dev/null || true; ip netns del "$atk" 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
ip netns add "$srv"; ip netns add "$atk"
ip link add name veth0 netns "$srv" type veth peer name veth0 netns "$atk"
ip -n "$srv" addr add 192.0.2.1/24 dev veth0; ip -n "$atk" addr add 192.0.2.2/24 dev veth0
for ns in "$srv" "$atk"; do ip -n "$ns" link set lo up; ip -n "$ns" link set veth0 up; done

# Banned addresses: keys only (198.18.0.0/15 is never routed anywhere here).
addrs() { for i in $(seq 0 $(($1 - 1))); do echo "198.$((18 + i / 65536)).$(((i / 256) % 256)).$((i % 256))"; done; }

measure() { # label -> packets/s reaching input
  printf 'table inet count {\n chain input {\n  type filter hook input priority 0;\n  udp dport 9 counter drop\n }\n}\n' \
    | ip netns exec "$srv" nft -f -
  ip netns exec "$atk" timeout -s INT "$secs" hping3 --udp -p 9 -d 18 --flood 192.0.2.1 >/dev/null 2>&1 || true
  local n
  n=$(ip netns exec "$srv" nft list chain inet count input | sed -n 's/.*counter packets \([0-9]*\).*/\1/p')
  ip netns exec "$srv" nft delete table inet count
  printf '%-44s %8d packets/s\n' "$1" $((n / secs))
}

echo "machine: $(nproc) cpus, $(lscpu | sed -n 's/Model name: *//p'), kernel $(uname -r)"
for n in 0 1000 10000 100000; do
  ip netns exec "$srv" nft flush ruleset
  # scanban's sets and drop rules (installed by `scanban ban`), then N bans, 10,000 per nft -f
  # (nft's own netlink buffer refuses one transaction of 100,000).
  ip netns exec "$srv" "$bin" ban 198.51.100.1 --for 1h --set-size 200000 >/dev/null
  ip netns exec "$srv" "$bin" unban 198.51.100.1 >/dev/null
  addrs "$n" | split -l 10000 - "$tmp/chunk."
  for f in "$tmp"/chunk.*; do
    [ -e "$f" ] || continue
    { echo "add element inet scanban banned4 {"; sed 's/$/ timeout 1h,/' "$f"; echo "}"; } > "$tmp/els.nft"
    ip netns exec "$srv" nft -f "$tmp/els.nft"
    rm -f "$f"
  done
  measure "scanban set, $n bans"
done
for n in 1000 10000 100000; do
  ip netns exec "$srv" nft flush ruleset
  printf 'table ip perip {\n chain pre {\n  type filter hook prerouting priority -450;\n }\n}\n' \
    | ip netns exec "$srv" nft -f -
  t0=$(date +%s.%N)
  addrs "$n" | split -l 10000 - "$tmp/rules."
  for f in "$tmp"/rules.*; do
    sed 's/^/add rule ip perip pre ip saddr /; s/$/ drop/' "$f" > "$tmp/rules.nft"
    ip netns exec "$srv" nft -f "$tmp/rules.nft"
    rm -f "$f"
  done
  load=$(echo "$(date +%s.%N) - $t0" | bc)
  measure "one rule per address, $n rules (load $(printf %.1f "$load") s)"
done
