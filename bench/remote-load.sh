#!/usr/bin/env bash
# The fleet's startup load: a LAPI startup answer of 100,000 decisions (random IPv4 and IPv6
# addresses and some ranges of both families, /8../32 and /16../128; deterministic) through
# `RemoteBans::apply` into the remote-ban sets (empty, so filled in transactions of 8,192),
# against `nft -f` of the very elements the kernel then holds into the same sets (the table
# `scanban ruleset --mode bouncer` prints), in the same run. Then the RSS the sink's
# book adds holding them, and the RSS of `scanban run --mode bouncer` idle: their sum is what a
# bouncer holding 100k decisions takes, the decision stream's own buffers aside. Both loads run
# twice: with no listener of nf_tables events, and with an `nft monitor` in another namespace.
# The load runs in the ignored test `bench_startup_load_of_100k_decisions` (src/fleet/remote/
# tests.rs), built for musl like the release binary (its allocator returns freed batches).
# Medians of RUNS. Usage (as root): bench/remote-load.sh [RUNS]   (default 5)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
runs=${1:-5}
triple=x86_64-unknown-linux-musl
cargo build -q --release --target "$triple"
bin=$PWD/target/$triple/release/scanban
tmp=$(mktemp -d)
on_exit+=('[ -n "${pid:-}" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null' 'rm -rf "$tmp"')
bench_netns remote
bench_machine
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

ip netns exec "$srv" "$bin" ruleset --mode bouncer > "$tmp/ruleset.nft"

# Both loads, RUNS times each: the sink's and nft's.
measure() {
for _ in $(seq "$runs"); do
  SCANBAN_BENCH_NFT_FILE=$tmp/elements.nft cargo test -q --release --target "$triple" --bin scanban \
    bench_startup_load_of_100k_decisions -- --ignored --nocapture --test-threads=1 2>/dev/null \
    | grep -E '^(RemoteBans|VmRSS|kernel holds)'
done > "$tmp/sink.log"
grep -m3 . "$tmp/sink.log"
echo "RemoteBans::apply, 100000 decisions: median $(sed -n 's/.*decisions: \([0-9]*\) us.*/\1/p' "$tmp/sink.log" | median) us"
echo "RSS the book adds: median $(sed -n 's/.*book adds \([0-9]*\) kB/\1/p' "$tmp/sink.log" | median) kB"

# nft -f of the same elements, timed inside the namespace (no `ip netns exec` in the timing).
ip netns exec "$srv" bash -s "$runs" "$tmp" <<'INNER'
set -euo pipefail
runs=$1 tmp=$2
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
now_us() { echo $(( $(date +%s%N) / 1000 )); }
for _ in $(seq "$runs"); do
  nft flush ruleset
  nft -f "$tmp/ruleset.nft"
  t0=$(now_us)
  nft -f "$tmp/elements.nft"
  echo $(( $(now_us) - t0 ))
done | median | xargs -I{} echo "nft -f, the same elements into the same sets: median {} us"
echo "  elements nft loaded: $(for s in remote4 remote6 remote4_net remote6_net; do nft list set inet scanban $s; done | grep -o 'timeout [0-9hms]*' | wc -l)"
nft flush ruleset
INNER
}

echo "== no process listens to nf_tables events"
measure
# The kernel keeps one bit per netlink group for the whole machine, not per namespace: with a
# listener anywhere, every commit builds a notification for each element it adds.
echo "== an \`nft monitor\` runs in another namespace"
ip netns exec "$atk" nft monitor >/dev/null 2>&1 &
monitor=$!
on_exit+=('kill "$monitor" 2>/dev/null')
sleep 0.5
measure
kill "$monitor"

# The daemon a bouncer runs, idle (its book is empty until the decision stream feeds it).
ip netns exec "$srv" "$bin" run --mode bouncer --stats-file "$tmp/stats" 2>"$tmp/log" &
pid=$!
for _ in $(seq 100); do [ -s "$tmp/stats" ] && break; sleep 0.1; done
sleep 1
echo "scanban run --mode bouncer, idle: VmRSS $(awk '$1 == "VmRSS:" {print $2}' "/proc/$pid/status") kB"
