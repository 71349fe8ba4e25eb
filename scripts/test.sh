#!/usr/bin/env bash
# The one test command (README "Test"): installs what the tests need on a fresh Debian machine,
# then runs formatting, lints, every test including the kernel tests (as root, in throwaway
# network namespaces), the codec tests on big-endian powerpc and on aarch64 under qemu, and the
# static release binaries for x86_64, aarch64 and armv7 with their SBOMs (scripts/release.sh), the
# coverage matrix (scripts/coverage.sh: real scans in namespaces), and the audit checks
# (scripts/audit.sh --check: cargo-deny, the generated lists in docs/SECURITY.md).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "scripts/test.sh: run as root: the kernel tests build network namespaces" >&2
  exit 1
fi

# command -> Debian package
need=()
for pair in ip:iproute2 ss:iproute2 nft:nftables iptables-nft:iptables nmap:nmap hping3:hping3 \
            tcpdump:tcpdump python3:python3 curl:curl file:file bc:bc musl-gcc:musl-tools gcc:gcc xz:xz-utils \
            powerpc-linux-gnu-gcc:gcc-powerpc-linux-gnu qemu-ppc-static:qemu-user-static \
            busybox:busybox make:make openssl:openssl; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "== apt-get install ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
# crowdsec: Debian's CrowdSec Local API, which the fleet tests run inside their own namespaces
# (testbed::lapi). Its post-install step registers with CrowdSec's Central API and fails offline
# unless online_api_credentials.yaml already holds something; a half-configured package is
# finished with `dpkg --configure -a` once the file is there. No crowdsec service may run on the
# host: invoke-rc.d is told not to start one (policy-rc.d) and one that started anyway is
# stopped and disabled.
if ! command -v crowdsec >/dev/null 2>&1 || ! command -v cscli >/dev/null 2>&1 ||
   [ "$(dpkg-query -W -f='${Status}' crowdsec 2>/dev/null)" != "install ok installed" ]; then
  echo "== apt-get install crowdsec (the LAPI of the fleet tests)"
  offline_credentials() {
    mkdir -p /etc/crowdsec
    [ -s /etc/crowdsec/online_api_credentials.yaml ] ||
      printf 'url: http://127.0.0.1:1/\nlogin: offline\npassword: offline\n' \
        > /etc/crowdsec/online_api_credentials.yaml
  }
  offline_credentials
  policy_made=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    policy_made=1
  fi
  apt-get update -qq
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq crowdsec >/dev/null; then
    offline_credentials
    DEBIAN_FRONTEND=noninteractive dpkg --configure -a
  fi
  [ -z "$policy_made" ] || rm -f /usr/sbin/policy-rc.d
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl disable --now crowdsec >/dev/null 2>&1 || true
  fi
  command -v cscli >/dev/null && [ -f /etc/crowdsec/config.yaml ] ||
    { echo "crowdsec did not install" >&2; exit 1; }
fi
rustup component add rustfmt clippy >/dev/null 2>&1 || true
rustup target add x86_64-unknown-linux-musl aarch64-unknown-linux-musl powerpc-unknown-linux-gnu \
  >/dev/null 2>&1

# A kernel test that cannot run is a failure here, not a skip.
export SCANBAN_REQUIRE_KERNEL_TESTS=1

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
cargo clippy --all-targets --features tls -- -D warnings
echo "== audit: the repository stands alone, docs/SECURITY.md's lists are current, cargo-deny"
bash scripts/audit.sh --check
log=$(mktemp)
trap 'rm -f "$log" "$log.coverage.md"' EXIT
echo "== cargo test (unit, fixtures, kernel)"
cargo test --workspace 2>&1 | tee -a "$log"
echo "== cargo test --features tls: the LAPI client again, with HTTPS to a real LAPI serving TLS"
cargo test --features tls --bin scanban fleet::lapi 2>&1 | tee -a "$log"

# The codec and detector tests (unit tests, captured fixtures, corpus replays) on the routers'
# architectures: big-endian powerpc and aarch64, under qemu-user.
cross_tests=(-p nfnl -p nft -p detector --lib --test fixtures --test golden --test corpus
             --test dump_corpus)
echo "== big-endian codec tests (powerpc-unknown-linux-gnu under qemu-ppc-static)"
CARGO_TARGET_POWERPC_UNKNOWN_LINUX_GNU_LINKER=powerpc-linux-gnu-gcc \
CARGO_TARGET_POWERPC_UNKNOWN_LINUX_GNU_RUNNER="qemu-ppc-static -L /usr/powerpc-linux-gnu" \
  cargo test --target powerpc-unknown-linux-gnu "${cross_tests[@]}" 2>&1 | tee -a "$log"
echo "== aarch64 codec tests (aarch64-unknown-linux-musl under qemu-aarch64-static)"
CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_RUNNER=qemu-aarch64-static \
  cargo test --target aarch64-unknown-linux-musl "${cross_tests[@]}" 2>&1 | tee -a "$log"

echo "== static release binaries for x86_64, aarch64, armv7 (scripts/release.sh, 1 MB budget)"
bash scripts/release.sh
qemu-aarch64-static dist/scanban-aarch64-unknown-linux-musl --version
qemu-arm-static dist/scanban-armv7-unknown-linux-musleabihf --version

echo "== coverage matrix: every scanning technique for real against the release binary (scripts/coverage.sh)"
# Fails if a row its table expects banned is not; the matrix goes to a scratch file (the committed
# docs/COVERAGE.md is regenerated by hand with scripts/coverage.sh).
SCANBAN_BIN=$PWD/dist/scanban-x86_64-unknown-linux-musl bash scripts/coverage.sh "$log.coverage.md"

echo "== packaging: OpenWrt init script and Makefile, staged install, systemd unit syntax"
# The routers' binaries run the UCI-generated configurations under qemu-user.
bash packaging/openwrt/test-init.sh dist/scanban-x86_64-unknown-linux-musl \
  qemu-aarch64-static:dist/scanban-aarch64-unknown-linux-musl \
  qemu-arm-static:dist/scanban-armv7-unknown-linux-musleabihf
bash packaging/openwrt/test-makefile.sh dist/scanban-x86_64-unknown-linux-musl
stage=$(mktemp -d)
DESTDIR=$stage bash scripts/install.sh dist/scanban-x86_64-unknown-linux-musl
set +e
"$stage/usr/sbin/scanban" --config "$stage/etc/scanban/scanban.conf" status \
  --stats-file "$stage/none" >/dev/null 2>&1
rc=$?
set -e
[ "$rc" -ne 2 ] || { echo "the installed configuration is refused" >&2; exit 1; }
if command -v systemd-analyze >/dev/null; then
  sed "s|/usr/sbin/scanban|$stage/usr/sbin/scanban|" packaging/systemd/scanban.service \
    > "$stage/scanban.service"
  # The man page is not installed on this machine; every other finding fails the check.
  if systemd-analyze verify "$stage/scanban.service" 2>&1 | grep -v "man scanban" | grep .; then
    echo "systemd-analyze verify found problems in the unit" >&2
    exit 1
  fi
fi
rm -rf "$stage"

echo "== kernel matrix: Debian 6.1 and 6.12 kernels under qemu (scripts/kernel-matrix.sh)"
bash scripts/kernel-matrix.sh

left=$(ip netns list | grep -c '^sb-' || true)
if [ "$left" -ne 0 ]; then
  echo "tests leaked $left network namespace(s):" >&2
  ip netns list >&2
  exit 1
fi
passed=$(sed -n 's/^test result: .* \([0-9]*\) passed; \([0-9]*\) failed.*/\1/p' "$log" | paste -sd+ | bc)
failed=$(sed -n 's/^test result: .* \([0-9]*\) passed; \([0-9]*\) failed.*/\2/p' "$log" | paste -sd+ | bc)
echo "== all checks passed"
echo "tests: $passed passed, $failed failed"
