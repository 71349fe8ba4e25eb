#!/usr/bin/env bash
# What kernel receive timestamps cost. `scanban run` sets SO_TIMESTAMPNS on its queue sockets so
# that queued packets carry NFQA_TIMESTAMP (their arrival, for the arrival-to-ban latency); while
# any socket on the host has it set, the kernel reads the wall clock once for every packet it
# receives, in every namespace. Two figures, each measured with stamping off and on, back to back,
# ROUNDS times in the same run (every run is shown, then the medians and the median on/off ratio):
#   ceiling: UDP flood into a plain DROP rule, no queue, 2 s (the kernel's receive path alone;
#            "on": a reader with `--timestamps` idles on another queue meanwhile);
#   drain:   scanban's queue reader (netlink/examples/queue_reader.rs, drop verdicts) empties a
#            queue of QUEUED packets alone, with and without `--timestamps` (which sets the option
#            on its own queue socket, as the daemon does); its summary says how many packets
#            carried a stamp, which also proves "off" was off (any other program with a
#            SO_TIMESTAMP* socket turns stamping on for everyone).
# Also the price of one wall-clock read (bench/c/clock_read.c: clock_gettime(CLOCK_REALTIME)
# through the vDSO, the userspace twin of the kernel's ktime_get_real(), best of 5 x 10M reads):
# the kernel's extra work per received packet, a figure the machine's noise does not drown.
# Usage (as root): bench/timestamps.sh [ROUNDS] [QUEUED]   (defaults 15 and 60000)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
rounds=${1:-15}
queued=${2:-60000}
cargo build -q --release -p nfnl --example queue_reader
reader=$PWD/target/release/examples/queue_reader
build_pktgen
gcc -O2 -Wall -o target/bench/clock_read bench/c/clock_read.c
tmp=$(mktemp -d)
on_exit+=('[ -n "${holder:-}" ] && kill "$holder" 2>/dev/null' 'rm -rf "$tmp"')
bench_netns ts
bench_machine
echo "one wall-clock read: $(target/bench/clock_read) ns" \
  "(clocksource $(cat /sys/devices/system/clocksource/clocksource0/current_clocksource))"

gen() { # dport count pps secs -> "sent N packets in S s = R pps"
  ip netns exec "$atk" "$pktgen" veth0 "$srv_mac" 192.0.2.1 192.0.2.2 1 1 "$1" udp "$2" "$3" "$4"
}
ip netns exec "$srv" iptables-nft -A INPUT -p udp --dport 9 -j NFQUEUE --queue-num 0
ip netns exec "$srv" iptables-nft -A INPUT -p udp --dport 10 -j DROP
drop_count() {
  ip netns exec "$srv" iptables-nft -L INPUT -v -x -n | awk '$3 == "DROP" {print $1}'
}
stamps_on() { # a reader idling on an unused queue with --timestamps: a socket like the daemon's
  ip netns exec "$srv" "$reader" --quiet --queue 7 --idle 60 --timestamps 2>/dev/null &
  holder=$!
  sleep 0.5 # the kernel turns stamping on from a work queue
}
stamps_off() { kill "$holder"; wait "$holder" 2>/dev/null || true; holder=; sleep 0.2; }
ceiling() { # -> pkt/s the DROP rule counted over the generator's 2 s
  local before after secs
  before=$(drop_count)
  secs=$(gen 10 3000000 0 2 | awk '{print $5}')
  after=$(drop_count)
  awk -v n=$((after - before)) -v s="$secs" 'BEGIN {printf "%.0f\n", n / s}'
}
drain() { # [--timestamps] -> "pkt/s stamped"
  ip netns exec "$srv" "$reader" --quiet --drop --idle 1 --max-len 65536 --start-after 1 "$@" \
    2>"$tmp/r.log" &
  local r=$!
  sleep 0.3
  gen 9 "$queued" 0 5 >/dev/null
  wait "$r" || true
  sed -n 's/.*(\([0-9]*\) packets\/s, \([0-9]*\) with a kernel timestamp).*/\1 \2/p' "$tmp/r.log"
}
median() { sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }

gen 10 500000 0 1 >/dev/null # warm-up
# Each round measures off and on back to back (the order alternates, so a drift in the load of a
# shared machine does not favour one side); the figure is the median of the rounds' on/off ratios.
for i in $(seq "$rounds"); do
  if [ $((i % 2)) = 1 ]; then
    c_off=$(ceiling); stamps_on; c_on=$(ceiling); stamps_off
    read -r d_off s_off < <(drain); read -r d_on s_on < <(drain --timestamps)
  else
    stamps_on; c_on=$(ceiling); stamps_off; c_off=$(ceiling)
    read -r d_on s_on < <(drain --timestamps); read -r d_off s_off < <(drain)
  fi
  echo "round $i: ceiling off $c_off on $c_on pkt/s; drain off $d_off ($s_off stamped) on $d_on ($s_on stamped) pkt/s"
  echo "$c_off $c_on $d_off $d_on" >>"$tmp/rounds"
done
col() { awk -v c="$1" '{print $c}' "$tmp/rounds" | median; }
ratio() { awk -v a="$1" -v b="$2" '{printf "%.3f\n", $b / $a}' "$tmp/rounds" | median; }
echo "medians of $rounds rounds: ceiling off $(col 1) on $(col 2) pkt/s (on/off $(ratio 1 2));" \
  "drain off $(col 3) on $(col 4) pkt/s (on/off $(ratio 3 4))"
