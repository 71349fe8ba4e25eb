#!/usr/bin/env bash
# The kernel matrix: scanban's kernel-facing checks on Debian's 6.1 and 6.12 kernels under
# qemu (TCG), next to the host's. Each kernel boots an initramfs holding busybox, the static
# scanban, the bounded packet generator (bench/c/pktgen.c, static), iproute2's ip with its
# libraries, and the kernel's netfilter modules; scripts/kernel-matrix/guest-init.sh runs the
# checks in namespaces inside the guest and prints "KM: PASS/FAIL ..." lines on the serial
# console, turned here into an exit code. To add a kernel: add its Debian package to KERNELS.
# Usage: sudo scripts/kernel-matrix.sh        (downloads what it needs with apt on Debian)
set -euo pipefail
cd "$(dirname "$0")/.."
KERNELS=${KERNELS:-"linux-image-6.1.0-56-cloud-amd64 linux-image-6.12.117+deb12-cloud-amd64"}
work=${KM_WORK:-/var/tmp/scanban-kernel-matrix}
mkdir -p "$work"
for tool in qemu-system-x86_64:qemu-system-x86 busybox:busybox-static; do
  command -v "${tool%%:*}" >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${tool#*:}" >/dev/null; }
done
[ -e /bin/busybox ] && file -L /bin/busybox | grep -q static || \
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static >/dev/null

rustup target add x86_64-unknown-linux-musl >/dev/null 2>&1
cargo build -q --release --target x86_64-unknown-linux-musl
gcc -O2 -static -o "$work/pktgen" bench/c/pktgen.c

# The common userland: busybox, scanban, pktgen, ip and its libraries.
base=$work/base
rm -rf "$base"; mkdir -p "$base"/{bin,sbin,proc,sys,tmp,run,dev,etc,lib64,usr/bin}
cp "$(command -v busybox)" "$base/bin/busybox"
cp target/x86_64-unknown-linux-musl/release/scanban "$work/pktgen" "$base/bin/"
cp "$(command -v ip)" "$base/usr/bin/ip"
for lib in $(ldd "$(command -v ip)" | awk '/=>/ {print $3} /ld-linux/ {print $1}'); do
  mkdir -p "$base$(dirname "$lib")"; cp -L "$lib" "$base$lib"
done
cp scripts/kernel-matrix/guest-init.sh "$base/init"; chmod +x "$base/init"

failed=0
for pkg in $KERNELS; do
  dir=$work/$pkg
  if [ ! -d "$dir/boot" ]; then
    (cd "$work" && apt-get download -qq "$pkg" 2>/dev/null && mkdir -p "$dir" && dpkg -x "$pkg"_*.deb "$dir")
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
  start=$(date +%s.%N)
  timeout 600 qemu-system-x86_64 -accel tcg -cpu max -m 768 -nographic -no-reboot \
    -kernel "$dir/boot/vmlinuz-$version" -initrd "$work/initrd-$version.gz" \
    -append "console=ttyS0 quiet panic=-1" > "$work/console-$version.log" 2>&1 || true
  took=$(echo "$(date +%s.%N) - $start" | bc)
  tr -d '\r' < "$work/console-$version.log" | grep "^KM:" | sed "s/^KM:/[$version]/"
  result=$(tr -d '\r' < "$work/console-$version.log" | sed -n 's/^KM: RESULT pass=\([0-9]*\) fail=\([0-9]*\).*/\1 \2/p')
  if [ -z "$result" ] || [ "${result#* }" != 0 ]; then
    echo "kernel $version: FAILED (${result:-no result}), boot and checks $(printf %.0f "$took") s"
    failed=1
  else
    echo "kernel $version: ${result% *} checks passed, boot and checks $(printf %.0f "$took") s"
  fi
done
exit $failed
