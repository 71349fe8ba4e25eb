#!/usr/bin/env bash
# Installs scanban on a systemd server, or into DESTDIR for a package: the static binary, the
# hardened unit, a starting configuration (never overwriting one that exists) and the man page.
# Usage (as root): scripts/install.sh [BINARY]      (default: the x86_64 musl release build)
#        DESTDIR=/tmp/pkg scripts/install.sh   (staging for a distribution package)
# Then: systemctl daemon-reload && systemctl enable --now scanban
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/x86_64-unknown-linux-musl/release/scanban}
dest=${DESTDIR:-}
[ -x "$bin" ] || { echo "no binary at $bin: cargo build --release --target x86_64-unknown-linux-musl" >&2; exit 1; }
install -D -m 0755 "$bin" "$dest/usr/sbin/scanban"
install -D -m 0644 packaging/systemd/scanban.service "$dest/usr/lib/systemd/system/scanban.service"
install -D -m 0644 packaging/scanban.8 "$dest/usr/share/man/man8/scanban.8"
install -D -m 0644 packaging/systemd/scanban.sysusers "$dest/usr/lib/sysusers.d/scanban.conf"
# The unit runs the daemon as the system user scanban: make it now on a live install (a
# package does it in its post-install step, from the sysusers.d file).
if [ -z "$dest" ] && ! id scanban >/dev/null 2>&1; then
  if command -v systemd-sysusers >/dev/null; then
    systemd-sysusers /usr/lib/sysusers.d/scanban.conf
  else
    useradd --system --no-create-home --home-dir / --shell /usr/sbin/nologin scanban
  fi
fi
if [ -e "$dest/etc/scanban/scanban.conf" ]; then
  echo "kept the existing $dest/etc/scanban/scanban.conf"
else
  install -D -m 0644 packaging/systemd/scanban.conf "$dest/etc/scanban/scanban.conf"
fi
echo "installed under ${dest:-/}: usr/sbin/scanban, usr/lib/systemd/system/scanban.service, usr/lib/sysusers.d/scanban.conf, etc/scanban/scanban.conf, usr/share/man/man8/scanban.8"
