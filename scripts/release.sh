#!/usr/bin/env bash
# Release binaries: stripped static scanban for x86_64 (servers), aarch64 and armv7 (routers),
# copied to dist/ with their sizes and SHA-256 sums (dist/SHA256SUMS).
#
# All three are musl builds linked by the toolchain's own rust-lld against Rust's self-contained
# musl (.cargo/config.toml): no cross C toolchain.
# Usage: scripts/release.sh            (needs rustup)
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p dist
rm -f dist/scanban-* dist/SHA256SUMS

build() { # target [extra env...]
  local target=$1; shift
  env "$@" cargo build -q --release --target "$target"
  local out="dist/scanban-${target}"
  cp "target/$target/release/scanban" "$out"
  file "$out" | grep -Eq "statically linked|static-pie linked" || { echo "$out is not static: $(file "$out")" >&2; exit 1; }
}

rustup target add x86_64-unknown-linux-musl aarch64-unknown-linux-musl >/dev/null 2>&1
build x86_64-unknown-linux-musl
build aarch64-unknown-linux-musl
# armv7: the Rust of this checkout where rustup has that target's std; where it has not (the
# package mirror of our build machines answers 404 for 1.95.0's), a pinned toolchain that has it.
armv7=armv7-unknown-linux-musleabihf
if rustup target add "$armv7" >/dev/null 2>&1; then
  build "$armv7"
else
  pinned=1.93.0
  echo "note: no $armv7 std for the default toolchain here; building armv7 with Rust $pinned" >&2
  rustup toolchain install "$pinned" --profile minimal --target "$armv7" >/dev/null 2>&1
  build "$armv7" RUSTUP_TOOLCHAIN="$pinned"
fi

(cd dist && sha256sum scanban-* > SHA256SUMS)
printf '%-48s %10s  %s\n' binary bytes sha256
while read -r sum name; do
  printf '%-48s %10s  %s\n' "dist/$name" "$(stat -c %s "dist/$name")" "$sum"
done < dist/SHA256SUMS
# The size budget for routers: the x86_64 build at most 1 MB.
size=$(stat -c %s dist/scanban-x86_64-unknown-linux-musl)
if [ "$size" -gt 1048576 ]; then
  echo "scanban (x86_64) is over the 1 MB size budget: $size bytes" >&2
  exit 1
fi
