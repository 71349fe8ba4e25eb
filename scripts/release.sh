#!/usr/bin/env bash
# Release binaries: stripped static scanban for x86_64 (servers), aarch64 and armv7 (routers),
# copied to dist/ with their sizes and SHA-256 sums (dist/SHA256SUMS).
#
# x86_64 and aarch64 are musl builds linked by the toolchain's own rust-lld against Rust's
# self-contained musl (.cargo/config.toml): no cross C toolchain. armv7 wants
# armv7-unknown-linux-musleabihf the same way; where rustup cannot download that target's std
# (the package mirror of the development machines answers 404 for it), the script falls back
# to armv7-unknown-linux-gnueabihf linked statically against glibc with Debian's
# gcc-arm-linux-gnueabihf, and says so. Both run on any armv7 Linux, OpenWrt included.
# Usage: scripts/release.sh            (needs rustup; installs the cross gcc with apt if missing)
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
if rustup target add armv7-unknown-linux-musleabihf >/dev/null 2>&1; then
  build armv7-unknown-linux-musleabihf
else
  echo "note: rustup cannot install armv7-unknown-linux-musleabihf here; building armv7 against static glibc" >&2
  rustup target add armv7-unknown-linux-gnueabihf >/dev/null
  if ! command -v arm-linux-gnueabihf-gcc >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc-arm-linux-gnueabihf >/dev/null
  fi
  build armv7-unknown-linux-gnueabihf \
    CARGO_TARGET_ARMV7_UNKNOWN_LINUX_GNUEABIHF_LINKER=arm-linux-gnueabihf-gcc \
    CARGO_TARGET_ARMV7_UNKNOWN_LINUX_GNUEABIHF_RUSTFLAGS="-C target-feature=+crt-static"
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
