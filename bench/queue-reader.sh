#!/usr/bin/env bash
# Packets/s that get a verdict through NFQUEUE: scanban's reader (netlink/examples/
# queue_reader.rs) against a minimal C reader on Debian's libnetfilter_queue (bench/c/
# nfq_reader.c), fed by the same generator (bench/c/pktgen.c: UDP to port 9, sendmmsg on
# AF_PACKET) in the same run, in two throwaway namespaces.
#   ceiling: the same flood into a plain DROP rule, no queue (what the kernel alone absorbs);
#   drain:   the reader binds and sleeps while the generator queues exactly QUEUED packets,
#            then empties the queue alone: the reader's own rate (from its first to last packet);
#   live:    zero-loss rate: the generator sends at a fixed rate for 1 s, from 100k packets/s up
#            in 50k steps; the figure is the highest rate at which the reader gave a verdict to
#            every packet sent (the queue fails open, so a loss shows as a shortfall of verdicts).
# 1 queue, and 2 queues (NFQUEUE --queue-balance 0:1, one reader process per queue).
# Accept verdicts send each datagram on to the closed port, so the kernel also builds an ICMP
# unreachable per packet inside the verdict syscall; drop verdicts show the queue path alone.
# Usage (as root): bench/queue-reader.sh [QUEUED]   (default 60000)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
queued=${1:-60000}
maxlen=65536
cargo build -q --release -p nfnl --example queue_reader
reader=$PWD/target/release/examples/queue_reader
if [ ! -f /usr/include/libnetfilter_queue/libnetfilter_queue.h ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libnetfilter-queue-dev >/dev/null
fi
mkdir -p target/bench
gcc -O2 -Wall -o target/bench/nfq_reader bench/c/nfq_reader.c -lnetfilter_queue
peer=$PWD/target/bench/nfq_reader
build_pktgen
tmp=$(mktemp -d)
on_exit+=('rm -rf "$tmp"')
bench_netns qr
bench_machine

gen() { # dport count pps secs -> "sent N packets in S s = R pps"
  ip netns exec "$atk" "$pktgen" veth0 "$srv_mac" 192.0.2.1 192.0.2.2 1 1 "$1" udp "$2" "$3" "$4"
}
queues() { # 1|2: the NFQUEUE rule for UDP port 9
  ip netns exec "$srv" iptables-nft -F INPUT
  if [ "$1" = 1 ]; then
    ip netns exec "$srv" iptables-nft -A INPUT -p udp --dport 9 -j NFQUEUE --queue-num 0
  else
    ip netns exec "$srv" iptables-nft -A INPUT -p udp --dport 9 -j NFQUEUE --queue-balance 0:1
  fi
  ip netns exec "$srv" iptables-nft -A INPUT -p udp --dport 10 -j DROP
}
# start_readers WHO NQ VERDICT MODE START_AFTER: one reader per queue, logs in $tmp/r<q>.log
start_readers() {
  local who=$1 nq=$2 v=$3 mode=$4 after=$5 q
  pids=()
  for q in $(seq 0 $((nq - 1))); do
    if [ "$who" = scanban ]; then
      local flags=(--quiet --idle 1 --max-len "$maxlen" --queue "$q" --start-after "$after")
      [ "$v" = drop ] && flags+=(--drop)
      [ "$mode" = single ] && flags+=(--per-packet)
      ip netns exec "$srv" "$reader" "${flags[@]}" 2>"$tmp/r$q.log" &
    else
      ip netns exec "$srv" "$peer" "$q" "$v" "$mode" 1 "$after" "$maxlen" 2>"$tmp/r$q.log" &
    fi
    pids+=($!)
  done
  sleep 0.3
}
# wait_readers: sets $n (verdicts, all queues) and $rate (n over the longest reader's span)
wait_readers() {
  local p
  for p in "${pids[@]}"; do wait "$p" || true; done
  read -r n rate < <(cat "$tmp"/r*.log \
    | sed -n 's/.*\b\([0-9][0-9]*\) packets in \([0-9.]*\) s.*/\1 \2/p' \
    | awk '{n += $1; if ($2 > s) s = $2} END {printf "%d %.0f\n", n, (s > 0 ? n / s : 0)}')
  rm -f "$tmp"/r*.log
}

sent=$(gen 10 2000000 0 1 | awk '{print $2}')
ip netns exec "$srv" iptables-nft -A INPUT -p udp --dport 10 -j DROP
got=$(gen 10 2000000 0 2)
dropped=$(ip netns exec "$srv" iptables-nft -L INPUT -v -x -n | awk '$3 == "DROP" {print $1}')
echo "ceiling: $got; the DROP rule counted $dropped (warm-up $sent)"

printf '%-7s %-2s %-6s %-6s %-8s %10s %10s\n' mode q verdict kind reader packets pkt/s
for nq in 1 2; do
  queues "$nq"
  for v in drop accept; do
    for mode in batch single; do
      for who in scanban C; do
        start_readers "$who" "$nq" "$v" "$mode" 1
        gen 9 "$queued" 0 5 >/dev/null
        wait_readers
        printf '%-7s %-2s %-6s %-6s %-8s %10s %10s\n' drain "$nq" "$v" "$mode" "$who" "$n" "$rate"
      done
    done
  done
  for v in drop accept; do
    for who in scanban C; do
      best=0
      for rate in $(seq 100000 50000 600000); do
        start_readers "$who" "$nq" "$v" batch 0
        out=$(gen 9 "$rate" "$rate" 2)
        s=$(echo "$out" | awk '{print $2}'); achieved=$(echo "$out" | awk '{print $(NF-1)}')
        wait_readers
        if [ "$n" -lt "$s" ]; then
          echo "    live $nq q $v $who: at $achieved pkt/s offered, $((s - n)) of $s packets missed their verdict"
          break
        fi
        best=$achieved
        # The generator itself tops out: no point asking for more.
        [ "$achieved" -lt $((rate * 95 / 100)) ] && break
      done
      printf '%-7s %-2s %-6s %-6s %-8s %10s %10s\n' live "$nq" "$v" batch "$who" "-" "$best"
    done
  done
done
