#!/usr/bin/env bash
# The 60-second demo: two throwaway namespaces, scanban in one, nmap in the other, and the ban.
# Nothing leaves this machine: documentation addresses, no default route, all removed at the end.
# Usage (as root): scripts/demo.sh   (on Debian it installs what is missing: iproute2, nftables,
# nmap; then it builds scanban with cargo)
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "scripts/demo.sh: run as root: the demo builds network namespaces and firewall rules" >&2
  exit 1
fi
# command -> Debian package
need=()
for pair in ip:iproute2 nft:nftables nmap:nmap; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "== apt-get install ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
for cmd in ip nft nmap cargo; do
  command -v "$cmd" >/dev/null 2>&1 || { echo "scripts/demo.sh: $cmd is still missing" >&2; exit 1; }
done
echo "== cargo build --release"
cargo build -q --release
bin=$PWD/target/release/scanban
srv=sb-demo-$$-server; atk=sb-demo-$$-attacker
cleanup() {
  [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  ip netns del "$srv" 2>/dev/null || true; ip netns del "$atk" 2>/dev/null || true
  rm -rf "${tmp:-}"
}
trap cleanup EXIT
tmp=$(mktemp -d)
ip netns add "$srv"; ip netns add "$atk"
ip link add name veth0 netns "$srv" type veth peer name veth0 netns "$atk"
ip -n "$srv" addr add 192.0.2.1/24 dev veth0; ip -n "$atk" addr add 192.0.2.2/24 dev veth0
for ns in "$srv" "$atk"; do ip -n "$ns" link set lo up; ip -n "$ns" link set veth0 up; done

echo "== scanban run (server 192.0.2.1)"
# SCANBAN_DEMO_WRAP: a command the daemon runs under (scripts/audit.sh --syscalls uses strace).
# shellcheck disable=SC2086 # the wrapper is a command line, split on purpose
ip netns exec "$srv" ${SCANBAN_DEMO_WRAP:-} "$bin" run --stats-file "$tmp/stats" \
  2> >(sed 's/^/   scanban: /' >&2) &
pid=$!
for _ in $(seq 50); do ip netns exec "$srv" nft list chain inet scanban sensor >/dev/null 2>&1 && break; sleep 0.1; done

echo "== nmap -sS --top-ports 1000 192.0.2.1 (attacker 192.0.2.2)"
ip netns exec "$atk" timeout 60 nmap -n -Pn -sS --max-retries 0 --max-rtt-timeout 100ms --min-rate 1000 \
  --top-ports 1000 192.0.2.1 | sed -n '/Not shown/,/^$/p'

echo "== scanban list"
ip netns exec "$srv" "$bin" list
echo "== the kernel's view: nft list set inet scanban banned4"
ip netns exec "$srv" nft list set inet scanban banned4 | sed -n '/elements/p'
