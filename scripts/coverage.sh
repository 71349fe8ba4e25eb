#!/usr/bin/env bash
# The coverage matrix: every scanning technique run for real, in throwaway network namespaces,
# against the zero-config daemon built from this tree; writes docs/COVERAGE.md.
#
# For each row: a fresh server namespace (192.0.2.1, 2001:db8::1; open ports tcp/8080 and
# udp/5353) running `scanban run` with no configuration, a fresh attacker namespace
# (198.51.100.2, 2001:db8:1::2, on-link routes, no default route) where the technique runs and
# where tcpdump records what was sent and what came back. A row reports: banned or not, the
# probes the server answered before the ban (answers seen by the attacker), the probe count at
# which the detector crosses the threshold for this probe sequence (`scanban replay` of the same
# capture), whether an open port was revealed after it, the ports nmap could still classify
# (open, closed or unfiltered: anything but filtered), and the time from the first probe to the
# last answer. Live nmap rows run at `-T5 --min-rate 20000` (the Speed measurement); -T0..-T2
# replay the -T4 capture with its timestamps stretched to nmap's pacing, since real time would
# take hours.
#
# Usage (as root): scripts/coverage.sh [OUT.md]   (default docs/COVERAGE.md; a few minutes)
# Environment: SCANBAN_BIN (default: cargo build --release), COVERAGE_ONLY="sS sA ..." (rows),
# COVERAGE_KEEP=1 (keep the captures).
# Exit status 1 if a row expected "banned" below is not banned (scripts/test.sh runs this).
set -euo pipefail
cd "$(dirname "$0")/.."

# ---- What each row is expected to do on this tree. When a change makes a row banned, flip
# ---- it to "banned" here: from then on a regression fails CI.
declare -A EXPECT=(
  [sS]=banned [sT]=banned [sU]=banned [sN]=banned [sF]=banned [sX]=banned
  [sA]=banned [sW]=banned [sM]=banned [sY]=banned [sZ]=banned [sO]=banned
  [frag]=banned [v6]=banned [decoy]=banned [sport53]=banned
  [T5]=banned [T4]=banned [T3]=banned [T2]=banned [T1]=banned [T0]=banned
  [pktgen]=banned [dist24]=banned [dist48]=banned [forward]=banned [forwardN]=banned
  [ext6]=banned [forward6ext]=banned
)
# Why a row is not banned on the tree of today (printed only for rows that are not banned).
declare -A WHY=()
declare -A NAME=(
  [sS]="SYN" [sT]="connect" [sU]="UDP" [sA]="ACK" [sW]="Window" [sM]="Maimon" [sN]="NULL"
  [sF]="FIN" [sX]="Xmas" [sY]="SCTP INIT" [sZ]="SCTP COOKIE-ECHO" [sO]="IP protocol"
  [frag]="SYN, fragmented" [v6]="SYN over IPv6" [decoy]="SYN with decoys"
  [sport53]="SYN from source port 53" [T5]="-T5" [T4]="-T4" [T3]="-T3" [T2]="-T2" [T1]="-T1"
  [T0]="-T0" [pktgen]="100,000 SYN/s" [dist24]="distributed over a /24"
  [dist48]="distributed over a /48" [forward]="router: LAN host behind it"
  [forwardN]="router: NULL scan of a LAN host"
  [ext6]="IPv6 extension headers"
  [forward6ext]="router: IPv6 NULL probes behind extension headers"
)

if [ "$(id -u)" -ne 0 ]; then
  echo "scripts/coverage.sh: run as root: it builds network namespaces" >&2
  exit 1
fi
for cmd in ip nmap tcpdump python3 gcc; do
  command -v "$cmd" >/dev/null || { echo "scripts/coverage.sh: $cmd is missing" >&2; exit 1; }
done
out=${1:-docs/COVERAGE.md}
if [ -z "${SCANBAN_BIN:-}" ]; then
  cargo build -q --release
  SCANBAN_BIN=$PWD/target/release/scanban
fi
bin=$SCANBAN_BIN
tools="python3 $PWD/scripts/coverage-tools.py"
tmp=$(mktemp -d)
run=sb-cov-$$
srv=$run-srv; atk=$run-atk; lan=$run-lan
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
  for ns in "$srv" "$atk" "$lan"; do ip netns del "$ns" 2>/dev/null || true; done
}
# COVERAGE_KEEP=1 keeps the captures and nmap outputs (the directory is printed).
trap 'cleanup; if [ -n "${COVERAGE_KEEP:-}" ]; then echo "kept $tmp"; else rm -rf "$tmp"; fi' EXIT
trap 'exit 130' INT TERM
SRV4=192.0.2.1; SRV6=2001:db8::1; ATK4=198.51.100.2; ATK6=2001:db8:1::2
NMAP=(timeout 120 nmap -n -Pn --max-retries 0)
FAST=(-T5 --min-rate 20000)

wait_for() { # TRIES COMMAND...: poll every 0.1 s
  local n=$1; shift
  for _ in $(seq "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  return 1
}

# A server namespace ($1, its veth's peer in $atk), its open ports and the daemon.
topology() {
  ip netns add "$srv"; ip netns add "$atk"
  ip link add name veth0 netns "$srv" type veth peer name veth0 netns "$atk"
  ip -n "$srv" addr add $SRV4/24 dev veth0; ip -n "$srv" addr add $SRV6/64 dev veth0 nodad
  ip -n "$atk" addr add $ATK4/24 dev veth0; ip -n "$atk" addr add $ATK6/64 dev veth0 nodad
  for ns in "$srv" "$atk"; do ip -n "$ns" link set lo up; ip -n "$ns" link set veth0 up; done
  ip -n "$srv" route add 198.51.100.0/24 dev veth0; ip -n "$srv" route add 2001:db8:1::/48 dev veth0
  ip -n "$atk" route add 192.0.2.0/24 dev veth0; ip -n "$atk" route add 2001:db8::/64 dev veth0
  services "$srv"
  daemon "$srv"
}

# Open ports tcp/8080 and udp/5353 in namespace $1.
services() {
  ip netns exec "$1" timeout 900 python3 -m http.server 8080 --bind :: >/dev/null 2>&1 &
  pids+=($!)
  ip netns exec "$1" timeout 900 python3 -c '
import socket
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); s.bind(("::", 5353))
while True:
    d, a = s.recvfrom(2048); s.sendto(d, a)' >/dev/null 2>&1 &
  pids+=($!)
  wait_for 300 ip netns exec "$1" bash -c 'ss -ltn | grep -q :8080' \
    || { echo "coverage: the test server did not start" >&2; exit 1; }
}

# The zero-config daemon in namespace $1 (no config file: -c /dev/null).
daemon() {
  rm -f "$tmp/state" "$tmp/stats"
  ip netns exec "$1" timeout 900 "$bin" -c /dev/null run --stats-file "$tmp/stats" \
    --state-file "$tmp/state" --on-exit remove 2>>"$tmp/daemon.log" &
  pids+=($!)
  wait_for 300 ip netns exec "$1" nft list chain inet scanban sensor \
    || { echo "coverage: the daemon did not install its ruleset:" >&2; cat "$tmp/daemon.log" >&2; exit 1; }
}

capture_start() { # NAME: everything on the attacker's veth
  ip netns exec "$atk" timeout 900 tcpdump -i veth0 -n -s 200 -U --immediate-mode -B 65536 -w "$tmp/$1.pcap" \
    'ip or ip6' 2>"$tmp/$1.tcpdump" &
  cap=$!
  wait_for 300 grep -q listening "$tmp/$1.tcpdump" \
    || { echo "coverage: tcpdump did not start" >&2; exit 1; }
}
capture_stop() {
  sleep 0.5
  kill -INT "$cap" 2>/dev/null || true
  wait "$cap" 2>/dev/null || true
}

# banned NS PATTERN: does `scanban list` in NS show a ban matching the extended regex?
banned() {
  local list
  list=$(ip netns exec "$1" "$bin" -c /dev/null list 2>/dev/null || true)
  grep -Eq "$2" <<<"$list"
}

# classified GNMAP...: ports nmap still classified (open, closed, unfiltered) over its runs.
classified() {
  [ $# -gt 0 ] || { echo "n/a"; return; }
  local n=0 f
  for f in "$@"; do
    [ -s "$f" ] || continue
    n=$((n + $(python3 - "$f" <<'EOF'
import re, sys
n = 0
for line in open(sys.argv[1]):
    m = re.search(r"Ports: (.*?)(\t|$)", line)
    if m:
        for p in m.group(1).split(", "):
            if p.count("/") > 1 and p.split("/")[1] in ("open", "closed", "unfiltered"):
                n += 1
    m = re.search(r"Ignored State: (\S+) \((\d+)\)", line)
    if m and m.group(1) in ("open", "closed", "unfiltered"):
        n += int(m.group(2))
print(n)
EOF
)))
  done
  echo "$n"
}

# threshold PCAP HOST...: after how many probes replay bans for this probe sequence.
threshold() {
  local pcap=$1; shift
  local hosts=()
  for h in "$@"; do hosts+=(--host "$h"); done
  "$bin" -c /dev/null replay "${hosts[@]}" "$pcap" 2>/dev/null \
    | sed -n 's/^would ban .* after \([0-9]*\) probes.*/\1/p' | head -1
}

rows=()
failed=()
# record ID TECHNIQUE BANNED ANSWERED THRESHOLD OPEN_AFTER CLASSIFIED TIME
record() {
  local id=$1 verdict=$3 why="" expect=${EXPECT[$1]}
  if [ "$verdict" = no ]; then
    why=${WHY[$id]:-"no reason known"}
    [ "$expect" = banned ] && { why="REGRESSION: expected banned. $why"; failed+=("$id"); }
  elif [ "$expect" != banned ]; then
    why="banned now: flip EXPECT[$id] to banned in scripts/coverage.sh"
  fi
  rows+=("| ${NAME[$id]} | $2 | $expect | $verdict | $4 | $5 | $6 | $7 | $8 | $why |")
  echo "   $id: banned=$verdict answered=$4 threshold=$5 open-after=$6 classified=$7 time=$8"
}

# target ANSWERED THRESHOLD OPEN_INDEX: "yes"/"no" for ≤ threshold + 4 and no late open port.
speed_cols() {
  local answered=$1 thr=$2 open=$3
  if [ -z "$thr" ]; then echo "n/a|n/a"; return; fi
  local late=no
  [ "$open" -gt "$thr" ] && late=yes
  echo "$thr ($( [ "$answered" -le $((thr + 4)) ] && echo "≤+4 met" || echo "≤+4 MISSED"))|$late"
}

# nmap_row ID TARGET PATTERN NMAP-ARGS...: one live nmap run.
nmap_row() {
  local id=$1 target=$2 pat=$3; shift 3
  topology
  capture_start "$id"
  ip netns exec "$atk" "${NMAP[@]}" "$@" -oG "$tmp/$id.gnmap" "$target" >/dev/null 2>&1 || true
  capture_stop
  finish_row "$id" "nmap $*" "$pat" "$tmp/$id.pcap" "$tmp/$id.gnmap"
  cleanup
}
# finish_row ID TECHNIQUE PATTERN PCAP GNMAP...
finish_row() {
  local id=$1 what=$2 pat=$3 pcap=$4; shift 4
  sleep 0.3
  local verdict=no
  banned "$srv" "$pat" && verdict=yes
  local probes answered first last open
  read -r probes answered first last open < <($tools answers "$pcap" $SRV4 $SRV6)
  local thr cols
  thr=$(threshold "$pcap" $SRV4 $SRV6)
  cols=$(speed_cols "$answered" "$thr" "$open")
  local t="-"
  [ "$verdict" = yes ] && t="$(python3 -c "print('%.0f ms' % ((float('$last') - float('$first')) * 1000))")"
  record "$id" "\`${what//|/\\|}\`" "$verdict" "$answered of $probes" "${cols%%|*}" "${cols#*|}" \
    "$(classified "$@")" "$t"
}

skip() { [ -n "${COVERAGE_ONLY:-}" ] && [[ " $COVERAGE_ONLY " != *" $1 "* ]]; }

ip4="198\.51\.100\.(2( |$)|0/)"; ip6="2001:db8:1::/(64|48)"
echo "== coverage matrix ($bin)"
for id in sS sT sU sA sW sM sN sF sX sY sZ sO; do
  skip "$id" || nmap_row "$id" $SRV4 "$ip4" "${FAST[@]}" "-$id" $( [ "$id" = sO ] || echo --top-ports 1000)
done
skip frag || nmap_row frag $SRV4 "$ip4" "${FAST[@]}" -sS -f --top-ports 1000
skip v6 || nmap_row v6 $SRV6 "$ip6" -6 "${FAST[@]}" -sS --top-ports 1000
skip decoy || nmap_row decoy $SRV4 "$ip4" "${FAST[@]}" -sS -D 198.51.100.7,198.51.100.8,ME --top-ports 1000
skip sport53 || nmap_row sport53 $SRV4 "$ip4" "${FAST[@]}" -sS -g 53 --top-ports 1000
skip T5 || nmap_row T5 $SRV4 "$ip4" -T5 -sS --top-ports 1000
# (the -T2/-T1/-T0 rows replay this row's capture)
{ skip T4 && skip T2 && skip T1 && skip T0; } || nmap_row T4 $SRV4 "$ip4" -T4 -sS --top-ports 1000
skip T3 || nmap_row T3 $SRV4 "$ip4" -T3 -sS --top-ports 1000

# -T2/-T1/-T0: the -T4 probe sequence, its timestamps stretched to nmap's scan delay.
for pair in T2:0.4 T1:15 T0:300; do
  id=${pair%%:*}; gap=${pair#*:}
  skip "$id" && continue
  if [ ! -s "$tmp/T4.pcap" ]; then
    record "$id" "replay" no "-" "-" "-" "-" "-"; continue
  fi
  $tools stretch "$tmp/T4.pcap" "$tmp/$id.pcap" "$gap" $SRV4 $SRV6
  line=$("$bin" -c /dev/null replay --host $SRV4 --host $SRV6 "$tmp/$id.pcap" | grep '^would ban' | head -1 || true)
  n=$(echo "$line" | sed -n 's/.* after \([0-9]*\) probes.*/\1/p')
  verdict=no; t="-"; [ -n "$n" ] && { verdict=yes; t="$(python3 -c "print('%g s' % (($n - 1) * $gap))")"; }
  record "$id" "\`nmap -T4 -sS --top-ports 1000\`, replayed with one probe every $gap s" \
    "$verdict" "n/a (replay)" "${n:-none}" "n/a" "n/a" "$t"
done

# 100,000 SYN/s from bench/c/pktgen.c: one source, ports 1..1000 in turn, 1 s.
if ! skip pktgen; then
  gcc -O2 -o "$tmp/pktgen" bench/c/pktgen.c
  topology
  mac=$(ip -n "$srv" -br link show veth0 | awk '{print $3}')
  capture_start pktgen
  ip netns exec "$atk" timeout 30 "$tmp/pktgen" veth0 "$mac" $SRV4 $ATK4 1 1000 1 syn 100000 100000 5 \
    > "$tmp/pktgen.out" 2>&1 || true
  capture_stop
  finish_row pktgen "pktgen: 100,000 SYN/s, ports 1-1000 ($(sed -n 's/.*= \([0-9]*\) pps.*/\1/p' "$tmp/pktgen.out") pps achieved)" "$ip4" "$tmp/pktgen.pcap"
  cleanup
fi

# Distributed: 50 addresses of one /24 (or 50 /64s of one /48), 2 ports each, 100 in all.
dist_row() {
  local id=$1 v=$2
  topology
  capture_start "$id"
  local gn=()
  for i in $(seq 0 49); do
    local src p=$((2 * i + 1))
    if [ "$v" = 4 ]; then
      src=198.51.100.$((10 + i)); ip -n "$atk" addr add "$src/24" dev veth0
    else
      src=2001:db8:1:$((i + 1))::2; ip -n "$atk" addr add "$src/64" dev veth0 nodad
    fi
    gn+=("$tmp/$id.$i.gnmap")
    # shellcheck disable=SC2046 # -6 or nothing
    ip netns exec "$atk" "${NMAP[@]}" $( [ "$v" = 6 ] && echo -6) -T5 -sS -e veth0 -S "$src" \
      -p "$p,$((p + 1))" -oG "$tmp/$id.$i.gnmap" "$( [ "$v" = 4 ] && echo $SRV4 || echo $SRV6)" \
      >/dev/null 2>&1 || true
  done
  capture_stop
  local pat="198\.51\.100\.0/24"; [ "$v" = 6 ] && pat="2001:db8:1::/48"
  finish_row "$id" "50 sources of one /$( [ "$v" = 4 ] && echo 24 || echo 48), nmap -sS -S SRC -p 2 ports each" "$pat" "$tmp/$id.pcap" "${gn[@]}"
  cleanup
}
skip dist24 || dist_row dist24 4
skip dist48 || dist_row dist48 6

# Forward: scanner 198.51.100.2 -> router (the daemon; 198.51.100.1, 192.0.2.254) -> LAN host
# 192.0.2.1 with the same open ports. The router forwards, so the zero-config daemon's
# `protect auto` also senses the LAN host's answers (chain forward_sensor), and NULL/FIN/Xmas
# probes themselves (conntrack ties no answer to them).
# forward_row ROW NMAP_SCAN DESCRIPTION
forward_row() {
  skip "$1" && return
  ip netns add "$srv"; ip netns add "$atk"; ip netns add "$lan"
  ip link add name wan netns "$srv" type veth peer name veth0 netns "$atk"
  ip link add name lan netns "$srv" type veth peer name veth0 netns "$lan"
  ip -n "$srv" addr add 198.51.100.1/24 dev wan; ip -n "$srv" addr add 192.0.2.254/24 dev lan
  ip -n "$atk" addr add $ATK4/24 dev veth0; ip -n "$lan" addr add $SRV4/24 dev veth0
  for ns in "$srv" "$atk" "$lan"; do ip -n "$ns" link set lo up; done
  ip -n "$srv" link set wan up; ip -n "$srv" link set lan up
  ip -n "$atk" link set veth0 up; ip -n "$lan" link set veth0 up
  ip -n "$atk" route add 192.0.2.0/24 via 198.51.100.1
  ip -n "$lan" route add 198.51.100.0/24 via 192.0.2.254
  ip netns exec "$srv" sysctl -qw net.ipv4.ip_forward=1
  services "$lan"
  daemon "$srv"
  capture_start "$1"
  ip netns exec "$atk" "${NMAP[@]}" "${FAST[@]}" "$2" --top-ports 1000 -oG "$tmp/$1.gnmap" $SRV4 \
    >/dev/null 2>&1 || true
  capture_stop
  finish_row "$1" "$3" "$ip4" "$tmp/$1.pcap" "$tmp/$1.gnmap"
  cleanup
}
forward_row forward -sS "nmap -sS --top-ports 1000 of a LAN host through the router"
forward_row forwardN -sN "nmap -sN --top-ports 1000 of a LAN host through the router"

# IPv6 SYNs behind a 256-byte Destination Options header, crafted with a raw socket.
if ! skip ext6; then
  topology
  capture_start ext6
  ip netns exec "$atk" $tools ext6-syn $ATK6 $SRV6 1 100 256 >"$tmp/ext6.out" 2>&1 || cat "$tmp/ext6.out" >&2
  capture_stop
  finish_row ext6 "100 SYNs (ports 1-100) behind a 256-byte Destination Options header" "$ip6" "$tmp/ext6.pcap"
  cleanup
fi

# IPv6 NULL probes behind a 256-byte Destination Options header, through the router to the LAN
# host 2001:db8::1: the TCP header lies past the copy range, so the forward sensor's twin rule
# hands the port over in the mark. The scanner 2001:db8:1::2 is on the router's own WAN /64, so
# it is banned by its address.
if ! skip forward6ext; then
  ip netns add "$srv"; ip netns add "$atk"; ip netns add "$lan"
  ip link add name wan netns "$srv" type veth peer name veth0 netns "$atk"
  ip link add name lan netns "$srv" type veth peer name veth0 netns "$lan"
  ip -n "$srv" addr add 2001:db8:1::1/64 dev wan nodad; ip -n "$srv" addr add 2001:db8::254/64 dev lan nodad
  ip -n "$atk" addr add $ATK6/64 dev veth0 nodad; ip -n "$lan" addr add $SRV6/64 dev veth0 nodad
  for ns in "$srv" "$atk" "$lan"; do ip -n "$ns" link set lo up; done
  ip -n "$srv" link set wan up; ip -n "$srv" link set lan up
  ip -n "$atk" link set veth0 up; ip -n "$lan" link set veth0 up
  ip -n "$atk" route add 2001:db8::/64 via 2001:db8:1::1
  ip -n "$lan" route add 2001:db8:1::/64 via 2001:db8::254
  ip netns exec "$srv" sysctl -qw net.ipv6.conf.all.forwarding=1
  services "$lan"
  daemon "$srv"
  # Neighbour discovery settles before probes that are sent once.
  wait_for 100 ip netns exec "$atk" python3 -c "import socket; socket.create_connection(('$SRV6', 8080), 1).close()" \
    || echo "coverage: the LAN host did not answer over IPv6" >&2
  capture_start forward6ext
  ip netns exec "$atk" $tools ext6-syn $ATK6 $SRV6 1 100 256 0 >"$tmp/forward6ext.out" 2>&1 \
    || cat "$tmp/forward6ext.out" >&2
  capture_stop
  finish_row forward6ext "100 NULL probes (ports 1-100) behind a 256-byte Destination Options header, to a LAN host through the router" \
    "2001:db8:1::(2( |$)|/(64|48))" "$tmp/forward6ext.pcap"
  cleanup
fi

[ ${#rows[@]} -gt 0 ] || { echo "no rows run" >&2; exit 1; }
{
  cat <<EOF
# Coverage matrix

What scanban, built from this tree with no configuration, does against each scanning technique
run for real. Generated by \`scripts/coverage.sh\` (as root; CI runs it through
\`scripts/test.sh\`): each row is a fresh pair of network namespaces, the server 192.0.2.1 /
2001:db8::1 with the open ports tcp/8080 and udp/5353, the attacker 198.51.100.2 /
2001:db8:1::2 (distributed rows: 50 addresses of 198.51.100.0/24, or 50 /64s of
2001:db8:1::/48; the forward rows: the daemon on a router between the attacker and a LAN host).
Live nmap rows use \`-n -Pn --max-retries 0\` and, unless the row is about pacing,
\`-T5 --min-rate 20000\`: the fast end, where the ban races the scan.

Columns: **expected** is the table at the top of the script (a row expected banned that is not
fails CI); **answered** is the server's answers the attacker received before the ban, of the
probes it sent; **threshold** is the probe at which the detector crosses the threshold for that
probe sequence (\`scanban replay\` of the attacker's capture) and whether the answers stayed
within it + 4 (the Speed target); **open after** says whether an open port was revealed by an
answer past the threshold; **classified** is the ports nmap could still call open, closed or
unfiltered; **time to ban** is from the first probe to the last answer.

Run $(date -u +%Y-%m-%d) on kernel $(uname -r), $(nmap --version | head -1 | sed 's/ (.*//'),
commit $(git describe --always --dirty 2>/dev/null || echo unknown).

| technique | run | expected | banned | answered | threshold | open after | classified | time to ban | why not banned |
|---|---|---|---|---|---|---|---|---|---|
EOF
  printf '%s\n' "${rows[@]}"
  cat <<'EOF'

Notes on reading it:
- -T2, -T1 and -T0 are the -T4 capture replayed (`scanban replay`, the detector being sans-IO)
  with its probes 0.4 s, 15 s and 5 min apart, nmap's scan delays at those levels; their
  threshold column is the probe at which replay bans, "none" if it never does.
- "answered" counts every packet the server sent back, the open port's SYN-ACK included;
  "threshold" counts the probes to closed ports replay queues, so a row can answer one more than
  its threshold and still be within it. UDP, SCTP and IP-protocol rows answer fewer probes than
  they send because the kernel rate-limits its ICMP errors.
- The fragmented row has no threshold: replay does not reassemble fragments (the daemon sees
  them reassembled by conntrack, and bans).
- The forward row's answers come from the LAN host, through the router; the router has no
  socket for the LAN host's ports and counts its answers instead (RST of a closed port, ICMP
  unreachable: `protect auto` is `both` on a host that forwards), then drops the scanner at
  prerouting. The NULL-scan row's probes get no answer conntrack ties to them: the router
  counts the probes themselves (TCP without SYN, RST or ACK, which no connection sends).
- The Speed target of issue 16 is "answered ≤ threshold + 4, and no open port revealed past the
  threshold"; rows that are not banned miss it by construction.
EOF
} > "$out"
echo "== wrote $out (${#rows[@]} rows)"
if [ ${#failed[@]} -gt 0 ]; then
  echo "coverage: expected banned but not banned: ${failed[*]}" >&2
  exit 1
fi
