#!/usr/bin/env bash
# Every benchmark behind docs/BENCHMARKS.md, one after the other, each against its peer in the
# same run. Output also goes to target/bench/run-all.log. Takes about 13 minutes on 2 vCPUs.
# Needs root (throwaway network namespaces), gcc, hping3, nmap, nft, iptables-nft; the queue
# benchmark installs libnetfilter-queue-dev for its C peer if missing.
# Usage (as root): bench/run-all.sh
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p target/bench
exec > >(tee target/bench/run-all.log) 2>&1
section() { echo; echo "=== $* ($(date -u +%T))"; }
section "1. queue throughput: scanban's reader vs libnetfilter_queue"
bash bench/queue-reader.sh
section "2. ban latency (from arrival and from receive): scanban run vs nft add element per ban"
bash bench/ban-latency.sh
section "3. ban-list scaling: scanban's set vs one rule per address"
bash bench/ban-scaling.sh
section "4. bulk inserts: nft::Batch and scanban ban --file vs nft"
bash bench/nft-insert.sh 5
section "5. memory under a spoofed flood, and a scan hidden in it"
bash bench/daemon-memory.sh
section "6. detector cost per observation, static binary size"
cargo bench -q -p detector --bench observe 2>&1 | grep -v '^$'
rustup target add x86_64-unknown-linux-musl >/dev/null 2>&1 || true
cargo build -q --release --target x86_64-unknown-linux-musl
echo "static x86_64 musl binary: $(stat -c %s target/x86_64-unknown-linux-musl/release/scanban) bytes"
section "7. what kernel receive timestamps cost"
bash bench/timestamps.sh
section "8. fleet: 100k decisions into the remote-ban sets vs nft -f, a bouncer's RSS"
bash bench/remote-load.sh 5
section "9. fleet end to end with the real LAPI: A's ban on B, 100k imported decisions, a bouncer's memory"
bash bench/fleet.sh 10 100000
section "done"
