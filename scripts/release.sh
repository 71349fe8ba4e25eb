#!/usr/bin/env bash
# Release binaries: stripped static scanban for x86_64 (servers), aarch64 and armv7 (routers),
# and scanban-tls for x86_64 (the `tls` feature: https to a remote CrowdSec LAPI),
# copied to dist/ with their sizes and SHA-256 sums (dist/SHA256SUMS), each with a CycloneDX
# SBOM beside it (dist/scanban-TARGET.cdx.json, scripts/sbom.py).
#
# All three are musl builds linked by the toolchain's own rust-lld against Rust's self-contained
# musl (.cargo/config.toml): no cross C toolchain.
# Usage: scripts/release.sh            (needs rustup)
#        scripts/release.sh --twice    also builds the same commit again in a fresh clone at
#                                      another path and fails unless every sum is the same
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p dist
rm -f dist/scanban-* dist/SHA256SUMS

# Reproducible whatever the checkout's path or CARGO_HOME: no absolute path of this machine in
# the binary. Rust 1.93 (the pinned armv7 toolchain) records a workspace crate's source path
# made absolute in its metadata, and code of that crate instantiated in the binary (a panic
# location in netlink/src/socket.rs) carried it: two checkouts gave two armv7 binaries that
# differed by exactly that path. Remapping both prefixes makes every toolchain write the same.
cargo_home=${CARGO_HOME:-$HOME/.cargo}
remap="--remap-path-prefix=$PWD= --remap-path-prefix=$cargo_home=/cargo"
# Size (the 1 MB budget): rust-lld folds identical functions (--icf=all: Rust promises no
# distinct addresses for distinct functions) and merges strings (-O2), and the binaries carry no
# unwind tables (scripts/discard-unwind.ld: with panic = "abort" nothing unwinds; a panic still
# prints its message, and its optional RUST_BACKTRACE backtrace is empty). 98,840 bytes less on
# x86_64 on 2026-11-30 (1,090,272 -> 991,432).
shrink="-C link-arg=--icf=all -C link-arg=-O2 -C link-arg=--no-eh-frame-hdr -C link-arg=-T$PWD/scripts/discard-unwind.ld"

build() { # target [extra env...]; with variant=NAME set, the cargo feature NAME is built too
  local target=$1; shift
  local flags_var
  flags_var="CARGO_TARGET_$(tr 'a-z-' 'A-Z_' <<<"$target")_RUSTFLAGS"
  local out="dist/scanban-${target}" dir=target extra=()
  if [ -n "${variant:-}" ]; then
    # Its own target dir, so the default build's artefacts stay as they are.
    out="dist/scanban-${variant}-${target}" dir="target/$variant" extra=(--features "$variant" --target-dir "$dir")
  fi
  env "$flags_var=$remap $shrink" "$@" cargo build -q --release --target "$target" "${extra[@]}"
  cp "$dir/$target/release/scanban" "$out"
  file "$out" | grep -Eq "statically linked|static-pie linked" || { echo "$out is not static: $(file "$out")" >&2; exit 1; }
  if grep -q -a -F -e "$PWD/" -e "$cargo_home/" "$out"; then
    echo "$out holds a path of this machine (not reproducible elsewhere):" >&2
    strings -a "$out" | grep -F -e "$PWD/" -e "$cargo_home/" | head -5 >&2
    exit 1
  fi
  SCANBAN_FEATURES="${variant:-}" python3 scripts/sbom.py "$target" "$out" > "$out.cdx.json"
}

rustup target add x86_64-unknown-linux-musl aarch64-unknown-linux-musl >/dev/null 2>&1
build x86_64-unknown-linux-musl
# HTTPS to a remote LAPI (rustls with the RustCrypto provider) does not fit the 1 MB budget: a
# variant of its own, x86_64 only (docs/DEPENDENCIES.md).
variant=tls build x86_64-unknown-linux-musl
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
if [ "${1:-}" = --twice ]; then
  # The check behind "reproducible": another checkout, another path, another target dir.
  again=$(mktemp -d /tmp/scanban-release-again.XXXXXX)
  trap 'rm -rf "$again"' EXIT
  git clone -q . "$again/src"
  git -C "$again/src" checkout -q "$(git rev-parse HEAD)"
  if ! git diff --quiet HEAD -- . ':!dist'; then
    echo "note: uncommitted changes are not in the second build; commit first for a fair test" >&2
  fi
  (cd "$again/src" && bash scripts/release.sh >/dev/null)
  if diff dist/SHA256SUMS "$again/src/dist/SHA256SUMS"; then
    echo "reproducible: a second build at $again/src gave the same sums"
  else
    echo "not reproducible: the sums above differ between $PWD and $again/src" >&2
    exit 1
  fi
fi
# The size budget for routers: the x86_64 build at most 1 MB.
size=$(stat -c %s dist/scanban-x86_64-unknown-linux-musl)
if [ "$size" -gt 1048576 ]; then
  echo "scanban (x86_64) is over the 1 MB size budget: $size bytes" >&2
  exit 1
fi
