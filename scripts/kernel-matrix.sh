#!/usr/bin/env bash
# The kernel matrix: scanban's kernel-facing checks on Debian's 6.1 and 6.12 kernels under
# qemu (TCG), next to the host's. Each kernel boots an initramfs holding busybox, the static
# scanban, the bounded packet generator (bench/c/pktgen.c, static), iproute2's ip with its
# libraries, and the kernel's netfilter modules; scripts/kernel-matrix/guest-init.sh runs the
# checks in namespaces inside the guest and prints "KM: PASS/FAIL ..." lines on the serial
# console, turned here into an exit code. To add a kernel: name its Debian package in KERNELS.
# Usage (as root): scripts/kernel-matrix.sh        (downloads what it needs with apt on Debian)
set -euo pipefail
cd "$(dirname "$0")/.."
work=${KM_WORK:-/var/tmp/scanban-kernel-matrix}
mkdir -p "$work"
# The newest 6.1 and 6.12 cloud kernels the apt sources offer (Debian replaces point releases,
# so no version is pinned); KERNELS="pkg ..." picks others.
newest() { apt-cache search --names-only "$1" | awk '{print $1}' | grep -E "$1\$" | sort -V | tail -1; }
if [ -z "${KERNELS:-}" ]; then
  pick() { newest '^linux-image-6\.1\.0-[0-9]+-cloud-amd64'; newest '^linux-image-6\.12\.[0-9]+\+deb12-cloud-amd64'; }
  KERNELS=$(pick | xargs)
  if [ "$(echo "$KERNELS" | wc -w)" -lt 2 ]; then
    apt-get update -qq
    KERNELS=$(pick | xargs)
  fi
fi
echo "kernels: $KERNELS"
for tool in qemu-system-x86_64:qemu-system-x86 busybox:busybox-static; do
  command -v "${tool%%:*}" >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${tool#*:}" >/dev/null; }
done
[ -e /bin/busybox ] && file -L /bin/busybox | grep -q static || \
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static >/dev/null

rustup target add x86_64-unknown-linux-musl >/dev/null 2>&1
cargo build -q --release --target x86_64-unknown-linux-musl
gcc -O2 -static -o "$work/pktgen" bench/c/pktgen.c
# The kernel-level test programs, static: the nf_tables and queue tests of the crates.
mapfile -t tests < <(cargo test -q --release --target x86_64-unknown-linux-musl \
  -p nft --test kernel_nft -p nfnl --test kernel_queue --no-run --message-format=json 2>/dev/null \
  | sed -n 's/.*"executable":"\([^"]*kernel_[a-z]*-[0-9a-f]*\)".*/\1/p')

# The common userland: busybox, scanban, pktgen, the test programs, and the host's ip, nft,
# iptables-nft, bash, coreutils' timeout and hping3 (the tests' oracles, shell and tools) with
# their libraries.
base=$work/base
rm -rf "$base"; mkdir -p "$base"/{bin,sbin,proc,sys,tmp,run,dev,etc,lib64,usr/bin,tests}
cp "$(command -v busybox)" "$base/bin/busybox"
cp target/x86_64-unknown-linux-musl/release/scanban "$work/pktgen" "$base/bin/"
for t in "${tests[@]}"; do cp "$t" "$base/tests/$(basename "$t" | sed 's/-[0-9a-f]*$//')"; done
with_libs() { # host program -> same path in the guest, with what ldd lists
  local prog lib
  prog=$(readlink -f "$(command -v "$1")")
  mkdir -p "$base/usr/bin"; cp "$prog" "$base/usr/bin/$(basename "$prog")"
  for lib in $(ldd "$prog" | awk '/=>/ {print $3} /ld-linux/ {print $1}'); do
    mkdir -p "$base$(dirname "$lib")"; cp -L "$lib" "$base$lib"
  done
}
for p in ip nft bash xtables-nft-multi timeout hping3; do with_libs "$p"; done
ln -s xtables-nft-multi "$base/usr/bin/iptables-nft"
ln -s xtables-nft-multi "$base/usr/bin/ip6tables-nft"
# nft prints protocol and service names from these, as on the host.
cp /etc/protocols /etc/services "$base/etc/"
mkdir -p "$base/usr/lib/x86_64-linux-gnu"
cp -a /usr/lib/x86_64-linux-gnu/xtables "$base/usr/lib/x86_64-linux-gnu/"
for lib in $(ldd /usr/lib/x86_64-linux-gnu/xtables/*.so 2>/dev/null | awk '/=>/ {print $3}' | sort -u); do
  [ -e "$base$lib" ] || { mkdir -p "$base$(dirname "$lib")"; cp -L "$lib" "$base$lib"; }
done
cp scripts/kernel-matrix/guest-init.sh "$base/init"; chmod +x "$base/init"

failed=0
for pkg in $KERNELS; do
  dir=$work/$pkg
  if [ ! -d "$dir/boot" ]; then
    (cd "$work" && { apt-get download -qq "$pkg" 2>/dev/null || { apt-get update -qq && apt-get download -qq "$pkg" 2>/dev/null; }; } \
      && mkdir -p "$dir" && dpkg -x "$pkg"_*.deb "$dir")
  fi
  version=$(ls "$dir/lib/modules")
  root=$work/root-$version
  rm -rf "$root"; cp -a "$base" "$root"
  mkdir -p "$root/lib/modules/$version"
  # Only what netfilter, veth and their dependencies need (busybox depmod indexes them at boot).
  (cd "$dir/lib/modules/$version" && cp -a --parents kernel/net kernel/lib kernel/crypto \
     kernel/drivers/net/veth.ko* modules.builtin "$root/lib/modules/$version/")
  # Newer Debian kernels ship xz-compressed modules; busybox's modprobe wants them plain.
  find "$root/lib/modules" -name '*.ko.xz' -exec xz -d {} +
  (cd "$root" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1) > "$work/initrd-$version.gz"
  console=$work/console-$version.log
  # A guest that dies before its /init says a word ran none of the checks (the 6.12 kernel
  # oopsed on an int3 while booting under TCG, once in some 50 boots): it boots once more.
  for attempt in 1 2; do
    start=$(date +%s.%N)
    timeout 600 qemu-system-x86_64 -accel tcg -cpu max -smp 2 -m 1024 -nographic -no-reboot \
      -kernel "$dir/boot/vmlinuz-$version" -initrd "$work/initrd-$version.gz" \
      -append "console=ttyS0 quiet panic=-1" > "$console" 2>&1 || true
    took=$(echo "$(date +%s.%N) - $start" | bc)
    grep -aq "^KM: kernel" "$console" && break
    echo "kernel $version: the guest died before running any check (boot $attempt of 2):"
    tr -d '\r' < "$console" | grep -aoE "\[ *[0-9.]+\] (Oops|Kernel panic|BUG).*" | head -3 \
      | sed 's/^/  /' || true
  done
  tr -d '\r' < "$console" | grep -a "^KM:" | sed "s/^KM:/[$version]/" || true
  result=$(tr -d '\r' < "$console" | sed -n 's/^KM: RESULT pass=\([0-9]*\) fail=\([0-9]*\).*/\1 \2/p')
  if [ -z "$result" ] || [ "${result#* }" != 0 ]; then
    echo "kernel $version: FAILED (${result:-no result}), boot and checks $(printf %.0f "$took") s"
    [ -n "$result" ] || tr -d '\r' < "$console" | tail -15 | sed 's/^/  console: /'
    failed=1
  else
    echo "kernel $version: ${result% *} checks passed, boot and checks $(printf %.0f "$took") s"
  fi
done
exit $failed
