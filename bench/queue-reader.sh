#!/usr/bin/env bash
# Packets/s the example queue reader (netlink/examples/queue_reader.rs) gives a verdict to, in a
# bounded UDP flood between two throwaway namespaces. Two modes:
#   live:  the reader runs while hping3 floods for FLOOD_SECS seconds;
#   drain: the reader binds, sleeps while the flood fills the queue (max-len 65536), then
#          empties it alone; its rate is then the reader's own.
# Accept verdicts send each UDP datagram on to the closed port, so the kernel also builds an ICMP
# unreachable per packet inside the verdict syscall; drop verdicts show the queue path alone.
# On a 2-vCPU machine hping3 (~150k pps) limits the live figures, not the reader.
# Usage: sudo bench/queue-reader.sh [FLOOD_SECS]   (default 3)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-3}
cargo build -q --release -p nfnl --example queue_reader
reader=target/release/examples/queue_reader
# The peer: a minimal C reader on Debian's libnetfilter_queue (bench/c/nfq_reader.c).
if [ ! -f /usr/include/libnetfilter_queue/libnetfilter_queue.h ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libnetfilter-queue-dev >/dev/null
fi
mkdir -p target/bench
gcc -O2 -Wall -o target/bench/nfq_reader bench/c/nfq_reader.c -lnetfilter_queue
peer=target/bench/nfq_reader
srv=sb-bench-$$-srv; atk=sb-bench-$$-atk
cleanup() { ip netns del "$srv" 2>/dev/null || true; ip netns del "$atk" 2>/dev/null || true; }
trap cleanup EXIT
ip netns add "$srv"; ip netns add "$atk"
ip link add name veth0 netns "$srv" type veth peer name veth0 netns "$atk"
ip -n "$srv" addr add 192.0.2.1/24 dev veth0; ip -n "$atk" addr add 192.0.2.2/24 dev veth0
for ns in "$srv" "$atk"; do ip -n "$ns" link set lo up; ip -n "$ns" link set veth0 up; done
ip netns exec "$srv" iptables-nft -A INPUT -p udp --dport 9 -j NFQUEUE --queue-num 0
ip netns exec "$srv" iptables-nft -A INPUT -p udp --dport 10 -j DROP

flood() { # port -> prints packets sent
  ip netns exec "$atk" timeout -s INT "$secs" hping3 --udp -p "$1" -d 18 --flood 192.0.2.1 2>&1 \
    | sed -n 's/^\([0-9]*\) packets transmitted.*/\1/p' || true
}
ceiling() {
  local sent
  sent=$(flood 10)
  echo "ceiling (iptables-nft DROP, no queue): $sent packets sent in ${secs}s = $((sent / secs)) pps offered"
}

run() { # label, reader command...
  local mode=$1; shift
  ip netns exec "$srv" "$@" 2> "/tmp/qr-$$.log" &
  local pid=$!
  sleep 0.5
  local sent; sent=$(flood 9)
  wait "$pid" || true
  printf '%-34s sent %7s; %s\n' "$mode" "$sent" "$(grep -o '[0-9]* packets in.*' "/tmp/qr-$$.log")"
}
echo "machine: $(nproc) cpus, $(lscpu | sed -n 's/Model name: *//p'), kernel $(uname -r)"
ceiling
ours() { echo "$reader --quiet --idle 2 --max-len 65536"; }
wait_s=$((secs + 1))
run "live accept batch: scanban" $(ours)
run "live accept batch: C" "$peer" 0 accept batch 2 0 65536
for v in accept drop; do
  flag=""; [ "$v" = drop ] && flag=--drop
  run "drain $v batch: scanban" $(ours) --start-after "$wait_s" $flag
  run "drain $v batch: C" "$peer" 0 "$v" batch 2 "$wait_s" 65536
  run "drain $v per-packet: scanban" $(ours) --start-after "$wait_s" --per-packet $flag
  run "drain $v per-packet: C" "$peer" 0 "$v" single 2 "$wait_s" 65536
done
rm -f "/tmp/qr-$$.log"
