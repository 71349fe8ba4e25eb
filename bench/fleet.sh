#!/usr/bin/env bash
# The fleet with the real CrowdSec LAPI (Debian's crowdsec 1.4.6, `crowdsec -no-cs`) and the real
# `scanban run` (release build, x86_64 musl like the shipped binary), in throwaway namespaces on
# one bridge: lapi 192.0.2.1, host A 192.0.2.10 (managed mode, machine credentials and a bouncer
# key), host B 192.0.2.20 (`--mode bouncer`, default `lapi-poll` 1s), an attacker in
# 198.51.100.0/24 (a fresh address each run), and host C 192.0.2.30 for the load.
#  1. Latency A→B: from the attacker's probe that crosses A's threshold to the moment B's kernel
#     holds the attacker in `remote4` (`nft monitor` in B), then a probe to B checked dropped.
#     RUNS runs, median and max, with A's own part (probe → A's `banned4`).
#  2. Startup load: 100,000 decisions put in the LAPI with `cscli decisions import` (random
#     public IPv4 and IPv6 addresses: set ELEMENTS only, no packet is ever sent to them), then a
#     fresh bouncer on C started; the time to the "LAPI decisions (startup)" line, with its own
#     split (answer read and parsed / applied), the LAPI's own time to answer (curl, same
#     request), and `nft -f` of the very elements C then holds into the same sets of a fresh
#     table, in the same run.
#  3. RSS of that bouncer holding them: VmRSS and VmHWM of the scanban process.
#  4. That bouncer restarted: its sets still hold the decisions, so the startup answer is
#     compared with what they hold and only the difference written; the time, VmRSS and VmHWM.
# Usage (as root): bench/fleet.sh [RUNS] [DECISIONS]   (defaults 10 and 100000)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-10}
count=${2:-100000}
for t in crowdsec cscli nft nmap curl; do
  command -v "$t" >/dev/null || { echo "fleet.sh needs $t" >&2; exit 1; }
done
# SCANBAN_BIN=PATH measures that binary instead (a build of another commit, for before/after).
triple=x86_64-unknown-linux-musl
if [ -z "${SCANBAN_BIN:-}" ]; then
  cargo build -q --release --target "$triple"
fi
bin=${SCANBAN_BIN:-$PWD/target/$triple/release/scanban}
tmp=$(mktemp -d /tmp/scanban-fleet-bench.XXXXXX)
base=sb-fleetb-$$
hosts=(lapi a b c atk)
pids=()

cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  for h in "${hosts[@]}"; do ip netns del "$base-$h" 2>/dev/null || true; done
  ip netns del "$base-hub" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

ns() { echo "$base-$1"; }
in_ns() { local n; n=$(ns "$1"); shift; ip netns exec "$n" "$@"; }
now_us() { local t=$EPOCHREALTIME; echo "${t/./}"; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# Prefixes each line read with the time it was read (µs since the epoch).
stamp() { local l; while IFS= read -r l; do echo "$(now_us) $l"; done; }
# Waits up to $1 seconds for the command after it to succeed.
wait_until() {
  local limit=$1; shift
  local end=$((SECONDS + limit))
  until "$@" 2>/dev/null; do
    ((SECONDS < end)) || { echo "timed out: $*" >&2; return 1; }
    sleep 0.05
  done
}

echo "machine: $(nproc) cpus, $(lscpu | sed -n 's/Model name: *//p'), kernel $(uname -r)," \
  "$(date -u '+%F %T') UTC, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "scanban ${SCANBAN_BIN:-$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src || echo '+changes')}, $(stat -c %s "$bin") bytes; $(crowdsec -version 2>&1 | sed -n 's/.*version: //p' | head -1)"

# The segment: a hub namespace with a bridge, one namespace per host.
ip netns add "$base-hub"
ip -n "$base-hub" link add br0 type bridge
ip -n "$base-hub" link set br0 up
declare -A addr=([lapi]=192.0.2.1/24 [a]=192.0.2.10/24 [b]=192.0.2.20/24 [c]=192.0.2.30/24
  [atk]=198.51.100.10/24)
i=0
for h in "${hosts[@]}"; do
  n=$(ns "$h")
  ip netns add "$n"
  ip link add name "p$i" netns "$base-hub" type veth peer name eth0 netns "$n"
  ip -n "$base-hub" link set "p$i" master br0
  ip -n "$base-hub" link set "p$i" up
  ip -n "$n" link set lo up
  ip -n "$n" addr add "${addr[$h]}" dev eth0
  ip -n "$n" link set eth0 up
  for r in 192.0.2.0/24 198.51.100.0/24; do ip -n "$n" route add "$r" dev eth0 2>/dev/null || true; done
  i=$((i + 1))
done

# The LAPI alone, as testbed::lapi runs it: /etc/crowdsec copied, paths pointed at the copy, no
# Central API, no Prometheus listener, listening on the LAPI host's address.
lapi_dir=$tmp/lapi
mkdir -p "$lapi_dir/data"
cp -a /etc/crowdsec "$lapi_dir/etc"
awk -v etc="$lapi_dir/etc/" -v data="$lapi_dir/data/" -v dir="$lapi_dir/" '
  { line = $0; gsub("/etc/crowdsec/", etc, line); gsub("/var/lib/crowdsec/data/", data, line)
    match($0, /^ */); indent = RLENGTH; t = substr($0, indent + 1)
    if (online && indent <= 4 && t != "") online = 0
    if (indent == 0 && t != "") prom = (t ~ /^prometheus:/)
    if (t ~ /^online_client:/) online = 1
    if (online) print "#" line
    else if (t ~ /^daemonize:/) print "  daemonize: false"
    else if (t ~ /^log_dir:/) print "  log_dir: " dir
    else if (t ~ /^listen_uri:/) print "    listen_uri: 192.0.2.1:8080"
    else if (prom && t ~ /^enabled:/) print "  enabled: false"
    else print line }' /etc/crowdsec/config.yaml > "$lapi_dir/etc/config.yaml"
cscli_() { in_ns lapi cscli -c "$lapi_dir/etc/config.yaml" "$@"; }
ip netns exec "$(ns lapi)" crowdsec -c "$lapi_dir/etc/config.yaml" -no-cs >"$lapi_dir/stdout" 2>&1 &
pids+=($!)
wait_until 30 in_ns lapi bash -c 'exec 3<>/dev/tcp/192.0.2.1/8080' 2>/dev/null
cscli_ machines add bench-cli --auto --force -f "$lapi_dir/etc/local_api_credentials.yaml" >/dev/null 2>&1
cscli_ machines add host-a --password bench-password-a -f "$tmp/a-machine.yaml" >/dev/null 2>&1
for h in a b c; do
  cscli_ bouncers add "bench-$h" -o raw 2>/dev/null | tr -d '\n' > "$tmp/$h.key"
done
chmod 600 "$tmp"/*.key "$tmp/a-machine.yaml"

# start_scanban HOST ARGS...: `scanban run` in HOST, its stderr stamped line by line into
# $tmp/HOST.log; its pid (ip netns exec execs scanban) in $scanban_pid.
start_scanban() {
  local h=$1; shift
  ip netns exec "$(ns "$h")" "$bin" run --stats-file "$tmp/$h.stats" "$@" 2> >(stamp > "$tmp/$h.log") &
  scanban_pid=$!
  pids+=("$scanban_pid")
  wait_until 20 grep -q ready "$tmp/$h.log"
}

echo
echo "== 1. latency: the probe crossing A's threshold → B drops the attacker ($runs runs)"
# Kernel-side witnesses: set elements added in A and in B, stamped as `nft monitor` reads them.
for h in a b; do
  ip netns exec "$(ns $h)" nft monitor 2>/dev/null > >(stamp > "$tmp/$h.monitor") &
  pids+=($!)
done
start_scanban a --lapi-credentials "$tmp/a-machine.yaml" --lapi-bouncer-key "$tmp/a.key"
a_pid=$scanban_pid
start_scanban b --mode bouncer --lapi-url http://192.0.2.1:8080 --lapi-bouncer-key "$tmp/b.key"
b_pid=$scanban_pid
# B has read the (empty) startup answer.
wait_until 20 grep -Eq '^lapi_polls [1-9]' "$tmp/b.stats"

# One attacker address per run; probes are SYNs to distinct ports of A, one every 20 ms, each
# stamped before it is sent, until A bans the address (at most 60).
: > "$tmp/latency"
prev=198.51.100.10
# The secondary address stays when the primary goes.
in_ns atk sysctl -qw net.ipv4.conf.eth0.promote_secondaries=1
for run in $(seq "$runs"); do
  src=198.51.100.$((10 + run))
  # The new address first: removing the last one would take the route to A and B with it.
  in_ns atk ip addr add "$src/24" dev eth0
  in_ns atk ip addr del "$prev/24" dev eth0
  prev=$src
  in_ns atk ip route replace 192.0.2.0/24 dev eth0
  # Not yet known anywhere: B answers the attacker (refuses the connection).
  out=$(in_ns atk timeout 2 bash -c 'exec 3<>/dev/tcp/192.0.2.20/9' 2>&1 || true)
  [[ $out == *refused* ]] || { echo "run $run: B does not answer $src before the scan: $out; $(in_ns atk ip addr; in_ns atk ip route)" >&2; exit 1; }
  in_ns atk bash -s "$src" "$tmp/probes.$run" "$tmp/a.monitor" <<'PROBES'
src=$1 out=$2 monitor=$3
for port in $(seq 1000 1059); do
  t=$EPOCHREALTIME; echo "${t/./} $port" >> "$out"
  (timeout 2 bash -c "exec 3<>/dev/tcp/192.0.2.10/$port" 2>/dev/null &)
  sleep 0.02
  if grep -q "banned4 .*$src " "$monitor"; then break; fi
done
PROBES
  wait_until 5 grep -q "banned4 .*$src " "$tmp/a.monitor" || { tail "$tmp/a.log" "$tmp/a.monitor" "$tmp/probes.$run" >&2; exit 1; }
  wait_until 10 grep -q "remote4 .*$src " "$tmp/b.monitor"
  t_a=$(awk -v s="$src " '/banned4 / && index($0, s) {print $1; exit}' "$tmp/a.monitor")
  t_b=$(awk -v s="$src " '/remote4 / && index($0, s) {print $1; exit}' "$tmp/b.monitor")
  # The crossing probe: the last one sent before A's kernel held the ban.
  t_p=$(awk -v a="$t_a" '$1 <= a {t = $1} END {print t}' "$tmp/probes.$run")
  sent=$(awk -v a="$t_a" '$1 <= a' "$tmp/probes.$run" | wc -l)
  # B now drops the attacker: the connection attempt goes unanswered.
  in_ns atk timeout 1 bash -c 'exec 3<>/dev/tcp/192.0.2.20/9' 2>/dev/null && rc=0 || rc=$?
  dropped=$([ "$rc" -eq 124 ] && echo dropped || echo ANSWERED)
  echo "$run $src $(((t_b - t_p) / 1000)) $(((t_a - t_p) / 1000)) $(((t_b - t_a) / 1000)) $sent $dropped" |
    tee -a "$tmp/latency" | awk '{printf "run %s %s: probe→B %s ms (probe→A %s ms, A→B %s ms), crossing probe #%s, B %s\n", $1, $2, $3, $4, $5, $6, $7}'
  sleep 0.$((RANDOM % 10)) # a different poll phase each run
done
echo "probe → B drops, $runs runs: median $(cut -d' ' -f3 "$tmp/latency" | median) ms, max $(cut -d' ' -f3 "$tmp/latency" | sort -n | tail -1) ms"
echo "  of which probe → A's ban: median $(cut -d' ' -f4 "$tmp/latency" | median) ms; A's ban → B's kernel: median $(cut -d' ' -f5 "$tmp/latency" | median) ms, max $(cut -d' ' -f5 "$tmp/latency" | sort -n | tail -1) ms"
echo "  B dropped the attacker afterwards in $(grep -c ' dropped$' "$tmp/latency") of $runs runs"
b_mem=$(awk '$1 == "VmRSS:" {r = $2} $1 == "VmHWM:" {h = $2} END {print "VmRSS " r " kB, VmHWM " h " kB"}' "/proc/$b_pid/status")
# A and B stop: their polls every second would compete with the import for the LAPI's SQLite
# database ("database is locked").
kill "$a_pid" "$b_pid"
wait "$a_pid" "$b_pid" 2>/dev/null || true

echo
echo "== 2. startup load: $count decisions from cscli decisions import into a fresh bouncer (C)"
python3 - "$count" > "$tmp/decisions.csv" <<'GEN'
import ipaddress, random, sys
# Random public addresses (no reserved, private, documentation or multicast space); a set of
# elements only, no packet is sent to any of them. 90 % IPv4, 10 % IPv6 in 2000::/3.
random.seed(17)
n, seen = int(sys.argv[1]), set()
print("duration,scope,value,type,origin,reason")
while len(seen) < n:
    if random.random() < 0.9:
        a = ipaddress.IPv4Address(random.getrandbits(32))
    else:
        a = ipaddress.IPv6Address((0x2 << 125) | random.getrandbits(125))
    if not a.is_global or a.is_multicast or a in seen:
        continue
    seen.add(a)
    print(f"{random.randint(1, 19)}h,ip,{a},ban,bench-list,bench/random")
GEN
# Imported 20,000 at a time: one import of 100,000 ends in SQLite's "database is locked".
t0=$(now_us)
tail -n +2 "$tmp/decisions.csv" | split -l 20000 - "$tmp/part."
for part in "$tmp"/part.*; do
  { head -1 "$tmp/decisions.csv"; cat "$part"; } > "$part.csv"
  cscli_ decisions import -i "$part.csv" >/dev/null 2>"$tmp/import.err" || { cat "$tmp/import.err"; exit 1; }
done
echo "cscli decisions import of $count decisions: $((($(now_us) - t0) / 1000)) ms"
cscli_ decisions list -a -o raw --limit 0 2>/dev/null | tail -n +2 | wc -l | xargs echo "  decisions the LAPI lists:" || true
# The LAPI's own time for the very request a bouncer makes at startup, as curl sees it.
for _ in 1 2 3; do
  in_ns c curl -s -o "$tmp/startup.json" -H "X-Api-Key: $(cat "$tmp/c.key")" \
    -w '%{time_starttransfer} %{time_total} %{size_download}\n' \
    'http://192.0.2.1:8080/v1/decisions/stream?startup=true'
done > "$tmp/curl"
read -r ttfb total size < <(sort -n -k2 "$tmp/curl" | sed -n 2p)
echo "LAPI's answer to /v1/decisions/stream?startup=true (curl, median of 3): first byte $(awk -v t="$ttfb" 'BEGIN {printf "%d", t * 1000}') ms, whole $size bytes $(awk -v t="$total" 'BEGIN {printf "%d", t * 1000}') ms"
# Starts bouncer C and waits for its startup answer: sets $c_pid, $t0 and $line (the log line).
start_c() {
  t0=$(now_us)
  start_scanban c --mode bouncer --lapi-url http://192.0.2.1:8080 --lapi-bouncer-key "$tmp/c.key"
  c_pid=$scanban_pid
  wait_until 120 grep -q 'LAPI decisions (startup)' "$tmp/c.log"
  line=$(grep -m1 'LAPI decisions (startup)' "$tmp/c.log")
}
c_holds() {
  local v4 v6
  v4=$(in_ns c nft list set inet scanban remote4 | grep -o 'expires' | wc -l)
  v6=$(in_ns c nft list set inet scanban remote6 | grep -o 'expires' | wc -l)
  echo "  the kernel holds $v4 + $v6 = $((v4 + v6)) elements"
}
start_c
t_ready=$(awk '/ready/ {print $1; exit}' "$tmp/c.log")
echo "bouncer start → ready: $(((t_ready - t0) / 1000)) ms; start → startup answer applied: $(((${line%% *} - t0) / 1000)) ms"
echo "  ${line#* }"
c_holds

# The peer: nft -f of the very elements C holds into the same sets of a fresh table, timed
# inside a namespace of its own (C's table untouched).
for s in remote4 remote6 remote4_net remote6_net; do
  in_ns c nft list set inet scanban "$s"
done | sed -E 's/ expires [0-9hmsd.]+//g' > "$tmp/elements.nft"
in_ns c "$bin" ruleset --mode bouncer > "$tmp/ruleset.nft"
ip netns add "$base-nft" && hosts+=(nft)
in_ns nft bash -s 3 "$tmp" <<'INNER'
set -euo pipefail
runs=$1 tmp=$2
now_us() { local t=$EPOCHREALTIME; echo "${t/./}"; }
for _ in $(seq "$runs"); do
  nft flush ruleset
  nft -f "$tmp/ruleset.nft"
  t0=$(now_us)
  nft -f "$tmp/elements.nft"
  echo $((($(now_us) - t0) / 1000))
done | sort -n | sed -n 2p | xargs -I{} echo "nft -f, the same elements into the same sets (median of 3): {} ms"
INNER

echo
echo "== 3. memory of the bouncer holding them (scanban pid $c_pid)"
sleep 2 # a poll or two after the load
grep -E '^(VmRSS|VmHWM)' "/proc/$c_pid/status" | tr -s ' ' | sed 's/^/  /'
echo "  (host B, bouncer holding the ten attackers of part 1: $b_mem)"

echo
echo "== 4. a restart of that bouncer: its sets hold the 100,000; only the difference is written"
kill "$c_pid"
wait "$c_pid" 2>/dev/null || true
mv "$tmp/c.log" "$tmp/c.first.log"
start_c
echo "bouncer restarted → startup answer applied: $(((${line%% *} - t0) / 1000)) ms"
echo "  ${line#* }"
c_holds
sleep 2
grep -E '^(VmRSS|VmHWM)' "/proc/$c_pid/status" | tr -s ' ' | sed 's/^/  /'
