#!/usr/bin/env bash
# The OpenWrt Makefile, parsed and run by GNU make off-buildroot: stand-ins of rules.mk,
# include/package.mk and the packages feed's lang/rust/rust-package.mk (the part of their
# interface the Makefile uses) in a feed laid out as the real one (net/scanban next to
# lang/rust), a stand-in `cargo` that records how it was called, and the package's install
# rule run into a staging folder with a real scanban binary.
#
# Usage: packaging/openwrt/test-makefile.sh BINARY [PACKAGES_FEED]
#   PACKAGES_FEED: a checkout of the OpenWrt packages feed; its real lang/rust is used instead
#   of the stand-in (a developer's check; CI has no such checkout).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
bin=$(realpath "$1")
real_feed=${2:-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "test-makefile: FAIL: $*" >&2; exit 1; }

top=$tmp/openwrt
feed=$tmp/feed
mkdir -p "$top/include" "$top/dl" "$feed/net" "$feed/lang/rust" "$tmp/path"
cp -r "$here" "$feed/net/scanban"

# rules.mk: the variables a package Makefile and rust-values.mk read, for an aarch64 target.
cat > "$top/rules.mk" <<'EOF'
INCLUDE_DIR:=$(TOPDIR)/include
DL_DIR:=$(TOPDIR)/dl
ARCH:=aarch64
HOST_ARCH:=x86_64
GNU_HOST_NAME:=x86_64-pc-linux-gnu
REAL_GNU_TARGET_NAME:=aarch64-openwrt-linux-musl
CONFIG_USE_MUSL:=y
TARGET_CC_NOCACHE:=aarch64-openwrt-linux-musl-gcc
HOSTCC_NOCACHE:=gcc
TARGET_LINKER:=bfd
INSTALL_DIR:=install -d -m0755
INSTALL_BIN:=install -m0755
INSTALL_DATA:=install -m0644
INSTALL_CONF:=install -m0600
toupper=$(shell echo '$(1)' | tr a-z A-Z)
EOF
# include/package.mk: BuildPackage checks the fields package.mk requires, then `compile` runs
# Build/Compile and `install` runs Package/<name>/install into $(STAGE).
cat > "$top/include/package.mk" <<'EOF'
PKG_BUILD_DIR:=$(BUILD_DIR)/$(PKG_NAME)-$(PKG_VERSION)
PKG_INSTALL_DIR:=$(PKG_BUILD_DIR)/ipkg-install
define BuildPackage
  $(eval $(Package/$(1)))
  $(foreach f,TITLE CATEGORY SECTION DEPENDS URL,$(if $($(f)),,$(error Package/$(1) lacks $(f))))
  $(foreach f,PKG_NAME PKG_VERSION PKG_RELEASE PKG_LICENSE PKG_LICENSE_FILES PKG_MAINTAINER,$(if $($(f)),,$(error $(f) is not set)))
  $(if $(Package/$(1)/install),,$(error no Package/$(1)/install))
dumpinfo:
	@echo 'DEPENDS: $(DEPENDS)'
	@echo 'USERID: $(USERID)'
	@echo 'LICENSE: $(PKG_LICENSE)'
	@echo 'LICENSE_FILES: $(PKG_LICENSE_FILES)'
	@echo 'MAINTAINER: $(PKG_MAINTAINER)'
	@echo 'CONFFILES: $(strip $(Package/$(1)/conffiles))'
compile:
	$(Build/Compile)
install:
	$(call Package/$(1)/install,$(STAGE))
endef
EOF
# lang/rust/rust-package.mk: the feed's interface (Build/Compile/Cargo with the feed's profile
# variables, RustBinPackage, RUST_ARCH_DEPENDS), unless the real feed is given.
if [ -n "$real_feed" ]; then
  cp "$real_feed/lang/rust/rust-package.mk" "$real_feed/lang/rust/rust-values.mk" "$feed/lang/rust/"
  echo "using the packages feed's own lang/rust from $real_feed"
else
  cat > "$feed/lang/rust/rust-package.mk" <<'EOF'
RUST_ARCH_DEPENDS:=@(aarch64||arm||x86_64)
CARGO_PKG_VARS=CARGO_PROFILE_RELEASE_PANIC=unwind CARGO_PROFILE_RELEASE_OVERFLOW_CHECKS=true \
	RUSTFLAGS="-Ctarget-feature=-crt-static"
define Build/Compile/Cargo
	+$(CARGO_PKG_VARS) cargo install -v --profile release --root $(PKG_INSTALL_DIR) \
		--path "$(PKG_BUILD_DIR)/$(strip $(1))" --locked $(2)
endef
define RustBinPackage
  ifndef Package/$(1)/install
    define Package/$(1)/install
	$$(INSTALL_DIR) $$(1)/usr/bin/
	$$(INSTALL_BIN) $$(PKG_INSTALL_DIR)/bin/* $$(1)/usr/bin/
    endef
  endif
endef
Build/Compile=$(call Build/Compile/Cargo)
EOF
fi
# cargo: records its arguments and the profile it was given, and "installs" the real binary.
cat > "$tmp/path/cargo" <<EOF
#!/bin/sh
printf '%s\n' "\$@" > "$tmp/cargo.args"
env | grep '^CARGO_PROFILE_RELEASE_' | sort > "$tmp/cargo.env"
while [ \$# -gt 0 ]; do [ "\$1" = --root ] && root=\$2; shift; done
mkdir -p "\$root/bin" && cp "$bin" "\$root/bin/scanban"
EOF
chmod +x "$tmp/path/cargo"

pkgmake() {
  PATH="$tmp/path:$PATH" make --no-print-directory -C "$feed/net/scanban" TOPDIR="$top" \
    BUILD_DIR="$tmp/build" STAGE="$tmp/stage" "$@"
}
echo "== make dumpinfo (the package's fields)"
pkgmake dumpinfo | tee "$tmp/info"
grep -q '^DEPENDS: .*+kmod-nft-queue$' "$tmp/info" || fail "DEPENDS"
for redundant in kmod-nft-core kmod-nfnetlink-queue; do
  ! grep -q "+$redundant" "$tmp/info" || fail "$redundant comes with kmod-nft-queue"
done
grep -Eq '^MAINTAINER: [^<]+ <[^@ ]+@[^> ]+>$' "$tmp/info" || fail "maintainer is not 'Name <email>'"
grep -qx 'CONFFILES: /etc/config/scanban' "$tmp/info" || fail "conffiles"
for f in $(sed -n 's/^LICENSE_FILES: //p' "$tmp/info"); do
  [ -s "$repo/$f" ] || fail "PKG_LICENSE_FILES names $f, which the repository lacks"
done
grep -n -i 'static binary\|statically' "$here/Makefile" && fail "the feed builds dynamic musl: no static claim"

echo "== make compile (cargo as the feed calls it)"
mkdir -p "$tmp/build/scanban-0.1.0"
pkgmake compile >/dev/null
echo "  cargo $(tr '\n' ' ' < "$tmp/cargo.args")"
grep -qx -- '--config' "$tmp/cargo.args" && grep -qx 'profile.release.panic="abort"' "$tmp/cargo.args" \
  || fail "cargo is not asked for panic = abort"
# cargo's precedence: --config on the command line beats the CARGO_PROFILE_* environment.
grep -qx 'CARGO_PROFILE_RELEASE_PANIC=unwind' "$tmp/cargo.env" || fail "the feed's profile changed: $(cat "$tmp/cargo.env")"

echo "== make install (the package's files)"
pkgmake install >/dev/null
(cd "$tmp/stage" && find . -type f -printf '  %m %p\n' | sort)
[ -x "$tmp/stage/usr/sbin/scanban" ] || fail "no /usr/sbin/scanban"
[ ! -e "$tmp/stage/usr/bin" ] || fail "RustBinPackage's default install ran too"
[ -x "$tmp/stage/etc/init.d/scanban" ] || fail "the init script is not executable"
cmp -s "$tmp/stage/etc/config/scanban" "$here/files/scanban.config" || fail "/etc/config/scanban"
"$tmp/stage/usr/sbin/scanban" --version >/dev/null
echo "== out of the feed: lang/rust taken from feeds/packages"
mkdir -p "$top/feeds/packages" "$top/package"
mv "$feed/lang" "$top/feeds/packages/lang"
pkgmake dumpinfo >/dev/null || fail "no rust-package.mk from feeds/packages"
mv "$top/feeds/packages/lang" "$feed/lang"
echo "openwrt Makefile: parses, asks cargo for panic = abort, installs the package's files"
