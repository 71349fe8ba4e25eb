#!/usr/bin/env bash
# Checks the OpenWrt init script's UCI -> scanban.conf mapping off-router: stand-ins for the
# rc.common/functions.sh helpers it uses read files/scanban.config, the script's write_config
# runs, and scanban itself must accept the result (exit 2 would name a bad setting).
# Usage: packaging/openwrt/test-init.sh PATH/TO/scanban
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# UCI stand-ins: section `main` of files/scanban.config, options and lists.
uci_value() { sed -n "s/^[[:space:]]*option $1 '\(.*\)'/\1/p" "$here/files/scanban.config" | tail -1; }
config_load() { :; }
config_get() { eval "$1=\$(uci_value $3)"; }
config_get_bool() { local v; v=$(uci_value "$3"); case "${v:-$4}" in 1|on|true|yes) eval "$1=1";; *) eval "$1=0";; esac; }
config_list_foreach() {
  local v
  sed -n "s/^[[:space:]]*list $2 '\(.*\)'/\1/p" "$here/files/scanban.config" | while read -r v; do "$3" "$v"; done
}
# The script's functions, with its paths moved into the temporary folder.
eval "$(sed -e '1d' -e "s|/var/etc|$tmp/etc|g; s|/var/run/scanban|$tmp/run|g" "$here/files/scanban.init")"
write_config
echo "generated $CONF:"; sed 's/^/  /' "$CONF"
grep -qx "ban-time 1h" "$CONF"
grep -qx "allow 192.168.1.0/24" "$CONF"
grep -qx "allow fd00::/8" "$CONF"
grep -qx "capacity 16384" "$CONF"
grep -qx "user scanban" "$CONF"
# scanban parses it: `status` reads the configuration first (exit 2 if invalid), then fails
# with 1 because no daemon runs.
set +e
"$bin" --config "$CONF" status --stats-file "$tmp/none" >/dev/null 2>"$tmp/err"
rc=$?
set -e
if [ "$rc" -eq 2 ]; then
  echo "scanban refused the generated configuration: $(cat "$tmp/err")" >&2
  exit 1
fi
echo "openwrt init: the UCI config maps to a configuration scanban accepts"
