#!/usr/bin/env bash
# Time to insert 1, 10,000 and 100,000 set elements (IPv6 keys, 1 h timeout): nft::Batch (one
# transaction, built and sent in process) against spawning `nft add element` per ban and
# `nft -f` of a file with all of them, in one throwaway namespace, same run. Then the product
# path: `scanban ban --file` of 100,000 /64 prefixes (process start, parsing, table setup and the
# transaction) against `nft -f` of the same prefixes into the same kind of set. Medians of RUNS.
# Usage (as root): bench/nft-insert.sh [RUNS]   (default 11)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-11}
cargo build -q --release -p nft --example insert_timing
cargo build -q --release
bin=$PWD/target/release/scanban
ns=sb-nftins-$$
ip netns add "$ns"
trap 'ip netns del "$ns"' EXIT
echo "machine: $(nproc) cpus, $(lscpu | sed -n 's/Model name: *//p'), kernel $(uname -r), $(nft --version)"
ip netns exec "$ns" target/release/examples/insert_timing "$runs"

# The nft side runs entirely inside the namespace (no `ip netns exec` per call in the timing).
ip netns exec "$ns" bash -s "$runs" "$bin" <<'INNER'
set -euo pipefail
runs=$1 bin=$2
setup='add table inet timing
add set inet timing s { type ipv6_addr; flags timeout; size 200000; }'
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
now_us() { echo $(( $(date +%s%N) / 1000 )); }
fresh() { nft flush ruleset; echo "$setup" | nft -f -; }

# One `nft add element` per ban, the way a script or the article's tool would do it.
for i in $(seq "$runs"); do
  fresh
  t0=$(now_us)
  nft add element inet timing s '{ 2001:db8::1 timeout 1h }'
  echo $(( $(now_us) - t0 ))
done | median | xargs -I{} echo "nft add element (spawn), 1 element: median {} us"

# 10,000 and 100,000 elements through one nft -f file.
for n in 10000 100000; do
  file=$(mktemp)
  {
    echo "add element inet timing s {"
    for i in $(seq 0 $((n - 1))); do printf '2001:db8::%x:%x timeout 1h,\n' $((i >> 16)) $((i & 0xffff)); done
    echo "}"
  } > "$file"
  for i in $(seq "$runs"); do
    fresh
    t0=$(now_us)
    nft -f "$file"
    echo $(( $(now_us) - t0 ))
  done | median | xargs -I{} echo "nft -f, $n elements: median {} us"
  rm -f "$file"
done

# The product path: 100,000 /64 bans from a file.
list=$(mktemp); file=$(mktemp)
for i in $(seq 0 99999); do printf '2001:db8:%x:%x::/64\n' $((i >> 16)) $((i & 0xffff)); done > "$list"
{ echo "add element inet timing p {"; sed 's/$/ timeout 1h,/' "$list"; echo "}"; } > "$file"
for i in $(seq "$runs"); do
  nft flush ruleset
  t0=$(now_us)
  "$bin" ban --file "$list" --for 1h --set-size 200000 >/dev/null
  echo $(( $(now_us) - t0 ))
done | median | xargs -I{} echo "scanban ban --file, 100000 /64 prefixes: median {} us"
echo "  elements in banned6: $(nft list set inet scanban banned6 | grep -o '2001:db8:' | wc -l)"
for i in $(seq "$runs"); do
  nft flush ruleset
  echo 'add table inet timing
add set inet timing p { type ipv6_addr; flags interval, timeout; }' | nft -f -
  t0=$(now_us)
  nft -f "$file"
  echo $(( $(now_us) - t0 ))
done | median | xargs -I{} echo "nft -f, the same 100000 prefixes (interval set): median {} us"
rm -f "$list" "$file"
INNER
