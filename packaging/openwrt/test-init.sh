#!/usr/bin/env bash
# The OpenWrt init script and UCI config, off-router. Stand-ins of what the router provides
# (rc.common's procd actions, functions.sh's UCI helpers, procd.sh recording every call plus a
# model of how procd treats an updated instance, network.sh over a made-up netifd state) run
# files/scanban.init under sh for start, reload and stop, and scanban itself must accept every
# configuration the script generates.
#
# Usage: packaging/openwrt/test-init.sh HOST_BINARY [RUNNER:BINARY ...]
#   e.g. test-init.sh dist/scanban-x86_64-unknown-linux-musl \
#          qemu-aarch64-static:dist/scanban-aarch64-unknown-linux-musl
# Every RUNNER:BINARY pair (another architecture under qemu-user) runs the same generated
# configurations and must replay the captures in fixtures/pcap as the host binary does.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
bin=$(realpath "$1")
shift
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "test-init: FAIL: $*" >&2; exit 1; }

root=$tmp/root                 # stand-ins of the router's shell libraries
export UCI_DIR=$tmp/uci        # /etc/config
export NETIFD=$tmp/netifd      # interface -> gw, gw6, subnets, subnets6
export PROCD=$tmp/procd        # what procd was sent, and what it did
mkdir -p "$root/lib/functions" "$UCI_DIR" "$NETIFD" "$PROCD" "$tmp/var/etc"

# --- stand-ins -------------------------------------------------------------------------------
# /lib/functions.sh: the UCI helpers, reading $UCI_DIR/<package> in UCI's file syntax and
# calling config_cb/option_cb/list_cb as uci_load does.
cat > "$root/lib/functions.sh" <<'EOF'
reset_cb() { config_cb() { :; }; option_cb() { :; }; list_cb() { :; }; }
reset_cb
list_contains() { eval "_lc=\" \${$1} \""; case "$_lc" in *" $2 "*) return 0 ;; esac; return 1; }
get_bool() {
	case "$1" in 1|on|true|yes|enabled) echo 1 ;; 0|off|false|no|disabled) echo 0 ;; *) echo "$2" ;; esac
}
config_load() {
	local line section=
	while IFS= read -r line; do
		line="${line#"${line%%[![:space:]]*}"}"
		case "$line" in ''|'#'*) continue ;; esac
		eval "set -- $line"
		case "$1" in
		config) section=$3; config_cb "$2" "$3" ;;
		option) eval "UCI_${section}_$2=\$3"; option_cb "$2" "$3" ;;
		list) list_cb "$2" "$3" ;;
		esac
	done < "$UCI_DIR/$1"
}
config_get() { eval "$1=\${UCI_$2_$3:-\$4}"; }
config_get_bool() { local _v; config_get _v "$2" "$3" "$4"; eval "$1=$(get_bool "$_v" "$4")"; }
logger() { echo "logger $*" >> "$PROCD/events"; }
ubus() {
	[ "$1" = list ] || return 1
	for i in "$NETIFD"/*; do echo "network.interface.${i##*/}"; done
}
EOF
# /lib/functions/network.sh: netifd's answers from $NETIFD/<interface>/<field>.
cat > "$root/lib/functions/network.sh" <<'EOF'
network_flush_cache() { :; }
_netifd() { eval "$1=\$(cat \"\$NETIFD/$2/$3\" 2>/dev/null)"; eval "[ -n \"\$$1\" ]"; }
network_get_gateway() { _netifd "$1" "$2" gw; }
network_get_gateway6() { _netifd "$1" "$2" gw6; }
network_get_subnets() { _netifd "$1" "$2" subnets; }
network_get_subnets6() { _netifd "$1" "$2" subnets6; }
network_get_device() { _netifd "$1" "$2" device; }
EOF
# /lib/functions/procd.sh: records the message the script builds; procd_close_service adds
# the triggers (service_triggers) as procd.sh does and hands the message to the procd model.
# The model is procd's instance update: an instance whose command or files' contents changed
# is sent its reload_signal if it has one, else restarted; an instance no longer in the
# message is stopped.
cat > "$root/lib/functions/procd.sh" <<'EOF'
procd_open_service() { : > "$PROCD/msg"; echo "service $1" >> "$PROCD/msg"; }
procd_open_instance() { echo "instance ${1:-instance1}" >> "$PROCD/msg"; }
procd_set_param() { echo "param $*" >> "$PROCD/msg"; }
procd_close_instance() { echo "end-instance" >> "$PROCD/msg"; }
procd_add_reload_trigger() { echo "trigger config.change $* reload" >> "$PROCD/msg"; }
procd_add_raw_trigger() { echo "trigger $*" >> "$PROCD/msg"; }
procd_send_signal() { echo "send_signal $*" >> "$PROCD/events"; }
procd_kill() { echo "kill $*" >> "$PROCD/events"; procd_model_stop; }
procd_model_stop() {
	[ -f "$PROCD/running" ] && { echo "procd: stop instance" >> "$PROCD/events"; rm -f "$PROCD/running"; }
	return 0
}
procd_close_service() {
	service_triggers
	cp "$PROCD/msg" "$PROCD/last"
	grep -q '^instance ' "$PROCD/msg" || { procd_model_stop; return 0; }
	local sig files f
	sig=$(sed -n 's/^param reload_signal //p' "$PROCD/msg")
	files=$(sed -n 's/^param file //p' "$PROCD/msg")
	{ grep '^param command ' "$PROCD/msg"; for f in $files; do md5sum < "$f"; done; } > "$PROCD/new"
	if [ ! -f "$PROCD/running" ]; then
		echo "procd: start instance" >> "$PROCD/events"
	elif cmp -s "$PROCD/running" "$PROCD/new"; then
		echo "procd: unchanged" >> "$PROCD/events"
	elif [ -n "$sig" ]; then
		echo "procd: signal $sig" >> "$PROCD/events"
	else
		echo "procd: restart instance" >> "$PROCD/events"
	fi
	mv "$PROCD/new" "$PROCD/running"
}
EOF
# /etc/rc.common with USE_PROCD: start runs start_service inside a service message; reload
# runs reload_service if the script has one, else start; stop runs stop_service, then kill.
cat > "$tmp/rc.common" <<EOF
. "$root/lib/functions.sh"
. "$root/lib/functions/procd.sh"
initscript=\$1
action=\$2
start_service() { return 0; }
stop_service() { return 0; }
service_triggers() { return 0; }
. "\$initscript"
rc_procd() { procd_open_service scanban "\$initscript"; "\$@"; procd_close_service set; }
case "\$action" in
start) rc_procd start_service ;;
reload) if type reload_service >/dev/null 2>&1; then reload_service; else rc_procd start_service; fi ;;
stop) stop_service; procd_kill scanban ;;
esac
EOF
# The init script with its run-time paths moved into the temporary folder.
conf=$tmp/var/etc/scanban.conf
sed -e "s|/var/etc|$tmp/var/etc|g" -e "s|/lib/functions/network.sh|$root/lib/functions/network.sh|" \
  "$here/files/scanban.init" > "$tmp/scanban.init"

# A router: lan and guest are local networks, wan and wan6 hold the default routes.
netifd() { mkdir -p "$NETIFD/$1"; echo "$3" > "$NETIFD/$1/$2"; }
netifd loopback subnets 127.0.0.1/8
netifd lan subnets 192.168.1.1/24
netifd lan subnets6 "fd12:3456:789a::1/64 2001:db8:1:10::1/64"
netifd guest subnets 192.168.2.1/24
netifd lan device br-lan
netifd guest device br-guest
netifd wan device eth1
netifd wan gw 198.51.100.1
netifd wan subnets 198.51.100.20/24
netifd wan6 gw6 fe80::1
netifd wan6 subnets6 2001:db8:ffff::20/64

# OpenWrt's shell is busybox ash; where busybox is missing, dash is the nearest.
if command -v busybox >/dev/null && busybox ash -c : 2>/dev/null; then init_sh="busybox ash"; else init_sh=sh; fi
echo "init script run by: $init_sh"
action() { # start|reload|stop: runs it, prints what procd did
  : > "$PROCD/events"
  $init_sh "$tmp/rc.common" "$tmp/scanban.init" "$1"
  sed "s/^/  [$1] /" "$PROCD/events"
}
event() { grep -qx "$1" "$PROCD/events" || fail "expected '$1' after the last action; got: $(cat "$PROCD/events")"; }
param() { grep -qx "param $1" "$PROCD/last" || fail "procd instance lacks 'param $1': $(cat "$PROCD/last")"; }
has() { grep -qx -- "$1" "$conf" || fail "$conf lacks '$1':$(printf '\n'; cat "$conf")"; }
hasnt() { ! grep -qx -- "$1" "$conf" || fail "$conf has '$1'"; }
uci_set() { # option value: sets or adds an option of section main
  if grep -q "^[[:space:]]*#\?option $1 " "$UCI_DIR/scanban"; then
    sed -i "s|^\([[:space:]]*\)#\?option $1 .*|\1option $1 '$2'|" "$UCI_DIR/scanban"
  else
    echo "	option $1 '$2'" >> "$UCI_DIR/scanban"
  fi
}
accepts() { # runner... binary conf: scanban reads the configuration (exit 2 would refuse it)
  local rc=0
  "$@" status >/dev/null 2>"$tmp/err" || rc=$?
  [ "$rc" -ne 2 ] || fail "scanban ($*) refused the configuration: $(cat "$tmp/err")"
}

! grep -q '^reload_service' "$here/files/scanban.init" \
  || fail "a reload_service of its own bypasses procd's config comparison and enabled"

echo "== first install: the shipped config starts nothing"
cp "$here/files/scanban.config" "$UCI_DIR/scanban"
action start
! grep -q '^instance' "$PROCD/last" || fail "the shipped config starts an instance"
grep -q "^logger .*enabled '1'" "$PROCD/events" || fail "no log line says how to enable it"
[ ! -e "$conf" ] || fail "a disabled service wrote $conf"

echo "== enabled: one instance as procd wants it, LAN subnets allowed, WAN not"
uci_set enabled 1
action reload
event "procd: start instance"
param "command /usr/sbin/scanban run --config $conf"
param "file $conf"
param "reload_signal HUP"
param "stdout 1"
param "stderr 1"
param "respawn"
param "term_timeout 15"
grep -qx "trigger config.change scanban reload" "$PROCD/last" || fail "no UCI reload trigger"
grep -qx "trigger interface.\* 2000 /etc/init.d/scanban reload" "$PROCD/last" \
  || fail "no interface trigger"
echo "generated $conf:"; sed 's/^/  /' "$conf"
for net in 192.168.1.1/24 fd12:3456:789a::1/64 2001:db8:1:10::1/64 192.168.2.1/24; do
  has "allow $net"
done
[ "$(grep -c '^allow ' "$conf")" -eq 4 ] || fail "allowed more than lan and guest (wan, wan6, loopback?)"
hasnt "enabled 1"
! grep -q '^allow-lan' "$conf" || fail "allow_lan is the script's own option"
has "user scanban"
has "lan-interfaces br-guest,br-lan"
accepts "$bin" --config "$conf"

echo "== the state file: on flash in a directory of its own, written at most hourly"
has "state-file /usr/lib/scanban/state"
has "state-every 1h"
# In a directory named scanban: `user scanban` is given it (privilege.rs), and it is not
# /etc/scanban, where root's commands look for a configuration.
echo "== scanban status reads the stats where the daemon writes them"
has "stats-file /var/run/scanban/stats"
"$bin" --config "$conf" status >/dev/null 2>"$tmp/err" || true
grep -q "no stats at /var/run/scanban/stats" "$tmp/err" || fail "status looks elsewhere: $(cat "$tmp/err")"

echo "== reload: unchanged, changed (SIGHUP, no restart), an interface renumbered, disabled"
action reload
event "procd: unchanged"
uci_set threshold 30
action reload
event "procd: signal HUP"
has "threshold 30"
netifd lan subnets6 "fd12:3456:789a::1/64 2001:db8:2:10::1/64"
action reload
event "procd: signal HUP"
has "allow 2001:db8:2:10::1/64"
hasnt "allow 2001:db8:1:10::1/64"
uci_set allow_lan 0
action reload
event "procd: signal HUP"
! grep -q '^allow ' "$conf" || fail "allow_lan 0 still allows the LAN"
! grep -q send_signal "$PROCD/events" || fail "the script signals by itself"
uci_set enabled 0
action reload
event "procd: stop instance"
uci_set enabled 1
action start
event "procd: start instance"
action stop
event "kill scanban"
event "procd: stop instance"

echo "== every setting of scanban --help maps from UCI"
# name -> whether it takes a value, from the binary itself: a new setting needs nothing here
# unless its value is of a new kind (then the sample table below fails loudly).
# A switch's help text follows its name after a run of spaces, a value's kind after one.
"$bin" --help | awk '/^  --[a-z]/ {
  rest = substr($0, length($1) + 3)
  if (rest ~ /^ [^ ]/) { split(rest, w, " "); print substr($1, 3), w[1] } else print substr($1, 3), "-"
}' > "$tmp/settings"
[ "$(wc -l < "$tmp/settings")" -ge 30 ] || fail "could not read the settings from --help"
{
  echo "config scanban 'main'"
  echo "	option enabled '1'"
  echo "	option allow_lan '0'"
  while read -r name value; do
    opt=$(echo "$name" | tr - _)
    case "$value" in
      -) v=1 ;;
      managed\|tail\|bouncer) v=managed ;;
      N\|N-M) v=0-1 ;;
      accept\|drop) v=drop ;;
      auto\|socket\|proc) v=proc ;;
      keep\|remove) v=remove ;;
      DURATION) v=2h ;;
      CIDR) echo "	list $opt '198.51.100.0/24'"; echo "	list $opt '2001:db8::/32'"; continue ;;
      PATH|PATH\|-) v=$tmp/files/$name ;;
      LEN) case $name in prefix-v4) v=24 ;; prefix-v6) v=48 ;; *) v=56 ;; esac ;;
      PERCENT) v=10 ;;
      PORT,...\|none) v=22,2222 ;;
      NAME) v=nobody ;;
      BIT) v=0x4 ;;
      auto\|input\|forward\|both) v=both ;;
      IFNAME,...\|none) v=br-lan,wlan0 ;;
      URL) v=http://192.0.2.1:8080 ;;
      BYTES|N|SCORE) v=100 ;;
      *) fail "no UCI sample for --$name $value: add one" ;;
    esac
    echo "	option $opt '$v'"
  done < "$tmp/settings"
} > "$UCI_DIR/scanban"
# ban-max must stay above ban-time: the sample 2h for both is fine.
action start
while read -r name value; do
  case "$value" in
    CIDR) has "$name 198.51.100.0/24"; has "$name 2001:db8::/32" ;;
    -) has "$name" ;;
    *) grep -q "^$name " "$conf" || fail "UCI option $(echo "$name" | tr - _) does not reach scanban" ;;
  esac
done < "$tmp/settings"
grep -qx "reset" "$conf" || fail "reset is not mapped"
# LAN interfaces the config names replace the ones read from netifd.
has "lan-interfaces br-lan,wlan0"
[ "$(grep -c '^lan-interfaces' "$conf")" -eq 1 ] || fail "lan-interfaces written twice"
accepts "$bin" --config "$conf"
cp "$conf" "$tmp/every.conf"
# A switch set to 0 writes nothing; an option scanban does not know reaches it and is refused.
sed -i "s/option \(dry_run\|reset\|verbose\) '1'/option \1 '0'/" "$UCI_DIR/scanban"
echo "	option no_such_setting '1'" >> "$UCI_DIR/scanban"
action reload
for s in dry-run reset verbose; do hasnt "$s"; done
rc=0; "$bin" --config "$conf" status >/dev/null 2>"$tmp/err" || rc=$?
[ "$rc" -eq 2 ] && grep -q "no-such-setting: unknown setting" "$tmp/err" \
  || fail "an unknown UCI option was not refused: rc $rc, $(cat "$tmp/err")"

# A list of ports in UCI's list form is one comma-separated setting, not the last item alone.
sed -i "/option spare_ports/d; /no_such_setting/d" "$UCI_DIR/scanban"
printf "\tlist spare_ports '22'\n\tlist spare_ports '2222'\n" >> "$UCI_DIR/scanban"
action reload >/dev/null
has "spare-ports 22,2222"
[ "$(grep -c '^spare-ports' "$conf")" -eq 1 ] || fail "spare-ports written more than once"
accepts "$bin" --config "$conf"

# The shipped configuration, enabled, for the binaries of the routers' architectures.
cp "$here/files/scanban.config" "$UCI_DIR/scanban"
uci_set enabled 1
action reload >/dev/null
cp "$conf" "$tmp/shipped.conf"
replays() { # runner... binary: every capture replayed under the shipped UCI configuration
  local p
  for p in "$repo"/fixtures/pcap/*.pcap; do
    echo "${p##*/}: $("$@" --config "$tmp/shipped.conf" replay "$p" 2>&1)"
  done
}
replays "$bin" > "$tmp/replay.host"
grep -q "would ban 192.0.2.2" "$tmp/replay.host" || fail "the host binary banned nothing: $(cat "$tmp/replay.host")"
for pair in "$@"; do
  runner=${pair%%:*}
  other=${pair#*:}
  echo "== $other under $runner: the generated configurations"
  $runner "$other" --version
  accepts $runner "$other" --config "$tmp/every.conf"
  accepts $runner "$other" --config "$tmp/shipped.conf"
  replays $runner "$other" > "$tmp/replay.other"
  diff -u "$tmp/replay.host" "$tmp/replay.other" || fail "$other replays differently from $bin"
  echo "  $(grep -c 'would ban' "$tmp/replay.other") capture(s) banned as on the host"
done
echo "openwrt init: first install, start/reload/stop under procd, every UCI option, the LAN allowlist and the state file check out"
