# Sourced by the bench scripts: two throwaway namespaces ("$srv" and "$atk") joined by a veth,
# IPv4 192.0.2.1/.2 and IPv6 2001:db8::1/::2, removed on exit with whatever the script
# registered in $on_exit. Also builds the tools the scripts share.
# shellcheck shell=bash

bench_machine() {
  echo "machine: $(nproc) cpus, $(lscpu | sed -n 's/Model name: *//p'), kernel $(uname -r)," \
    "$(date -u '+%F %T') UTC, load average $(cut -d' ' -f1-3 /proc/loadavg)"
}

on_exit=()
bench_cleanup() {
  local c
  for c in "${on_exit[@]}"; do eval "$c" || true; done
  ip netns del "$srv" 2>/dev/null || true
  ip netns del "$atk" 2>/dev/null || true
}

# bench_netns TAG: creates sb-TAG-PID-srv and -atk; sets $srv, $atk and $srv_mac.
bench_netns() {
  srv=sb-$1-$$-srv; atk=sb-$1-$$-atk
  trap bench_cleanup EXIT
  ip netns add "$srv"; ip netns add "$atk"
  ip link add name veth0 netns "$srv" type veth peer name veth0 netns "$atk"
  ip -n "$srv" addr add 192.0.2.1/24 dev veth0; ip -n "$atk" addr add 192.0.2.2/24 dev veth0
  ip -n "$srv" addr add 2001:db8::1/64 dev veth0 nodad
  ip -n "$atk" addr add 2001:db8::2/64 dev veth0 nodad
  local ns
  for ns in "$srv" "$atk"; do ip -n "$ns" link set lo up; ip -n "$ns" link set veth0 up; done
  srv_mac=$(ip netns exec "$srv" cat /sys/class/net/veth0/address)
}

# The bounded AF_PACKET generator (bench/c/pktgen.c) as $pktgen.
build_pktgen() {
  mkdir -p target/bench
  gcc -O2 -Wall -o target/bench/pktgen bench/c/pktgen.c
  pktgen=$PWD/target/bench/pktgen
}

# A counter of packets reaching the server's input hook, for the rates below.
# stat NAME FIELD: a field of `scanban status`.
stat_of() { awk -v k="$2" '$1 == k {print $2}' "$1"; }
