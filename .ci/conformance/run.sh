#!/usr/bin/env bash
# Conformance run: Zonemaster and DNSViz against Meridian serving the
# example domain, reached the way a resolver would reach it: from a root.
#
# Everything runs inside a network namespace that this script makes and
# deletes. Its only interface is its own loopback, carrying
#   10.53.0.1            a local root (knotd): ".", the test network's
#                        reverse zone and a local ASN zone (asn.test)
#   10.53.0.10, .11      the domain's parent (a second knotd), e.g. "example."
#   10.53.0.2, .3, .4    Meridian, one process per nameserver of the config,
#                        on port 53
# There is no other interface and no route, so no query can leave the
# namespace (checked below); Zonemaster and DNSViz are given the local root
# as their only root (--hints, -x .:...).
#
# The config Meridian serves is derived from zones/example.toml (derive.py):
# the same domain, records and services, with the nameservers' glue replaced
# by the namespace's addresses. zones/example.toml itself is not changed.
#
# Passes when Zonemaster reports nothing at WARNING, ERROR or CRITICAL and
# `dnsviz grok -l warning` reports no warning and no error; prints every
# finding either way. Exit status 0 on a pass; 1 on findings; 2 when the
# setup fails a check of its own (any other failure exits non-zero too).
#
# Usage, as root:   bash .ci/conformance/run.sh [CONFIG]
#   CONFIG                 default zones/example.toml
#   CONFORMANCE_KEEP=1     keep the work directory (logs, probe data)
#   MERIDIAN_BIN=path      use this binary instead of `cargo build --release`
#   CONFORMANCE_SIGNED=1   sign the domain ([dnssec] with a fresh key from
#                          `meridian dnssec keygen`), put its DS in the parent
#                          and give DNSViz the key as its trust anchor
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
CONFIG=$(realpath "${1:-$REPO/zones/example.toml}")
START=$SECONDS

ROOT_ADDR=10.53.0.1
PARENT_ADDRS=10.53.0.10,10.53.0.11
MERIDIAN_ADDRS=10.53.0.2,10.53.0.3,10.53.0.4,10.53.0.5,10.53.0.6,10.53.0.7,10.53.0.8,10.53.0.9

say() { printf '\n== %s\n' "$*"; }
die() { printf 'conformance: %s\n' "$*" >&2; exit 2; }

[ "$(id -u)" = 0 ] || die "needs root (network namespace, port 53)"

# --- install -------------------------------------------------------------
need=()
command -v zonemaster-cli >/dev/null || need+=(zonemaster-cli)
command -v dnsviz >/dev/null || need+=(dnsviz)
command -v knotd >/dev/null || need+=(knot)
command -v kdig >/dev/null || need+=(knot-dnsutils)
command -v ip >/dev/null || need+=(iproute2)
if [ "${#need[@]}" -gt 0 ]; then
  command -v apt-get >/dev/null || die "missing ${need[*]} and no apt-get"
  say "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  echo "($((SECONDS - START)) s)"
fi
# A package's service may have been started by the install; ours are
# separate processes inside the namespace, so it does not matter.

# --- build ---------------------------------------------------------------
if [ -z "${MERIDIAN_BIN:-}" ]; then
  say "building Meridian"
  build_start=$SECONDS
  (cd "$REPO" && cargo build --release --locked --quiet)
  echo "($((SECONDS - build_start)) s)"
  MERIDIAN_BIN="${CARGO_TARGET_DIR:-$REPO/target}/release/meridian"
fi
[ -x "$MERIDIAN_BIN" ] || die "no Meridian binary at $MERIDIAN_BIN"

# --- work directory, namespace, cleanup -----------------------------------
WORK=$(mktemp -d /tmp/meridian-conformance.XXXXXX)
NETNS="meridian-conf-$$"
PIDS=()
cleanup() {
  local status=$? pid
  set +e
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null
  done
  for pid in "${PIDS[@]}"; do
    wait "$pid" 2>/dev/null
  done
  # Anything still inside the namespace was started by this script.
  if ip netns pids "$NETNS" >/dev/null 2>&1; then
    for pid in $(ip netns pids "$NETNS"); do
      kill -9 "$pid" 2>/dev/null
    done
    ip netns del "$NETNS" 2>/dev/null
  fi
  if [ "${CONFORMANCE_KEEP:-0}" = 1 ]; then
    echo "conformance: work directory kept: $WORK"
  else
    rm -rf "$WORK"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

inns() { ip netns exec "$NETNS" "$@"; }
# Runs a command in the background and waits for it: bash runs traps only
# between foreground commands, but at once during `wait`, so INT or TERM
# stops a long tool run promptly (cleanup kills what is left in the namespace).
waitfor() { "$@" & wait $!; }

say "deriving the test config from $CONFIG"
/usr/bin/python3 "$HERE/derive.py" "$CONFIG" "$WORK" "$ROOT_ADDR" "$PARENT_ADDRS" "$MERIDIAN_ADDRS"
# shellcheck source=/dev/null
. "$WORK/env.sh"
GROK_ANCHOR=()
if [ "${CONFORMANCE_SIGNED:-0}" = 1 ]; then
  # The parent is unsigned, so the chain of trust starts at the domain's
  # own key: DNSViz gets it as a trust anchor, Zonemaster checks the DS in
  # the parent against the DNSKEY set.
  mkdir -p "$WORK/keys"
  "$MERIDIAN_BIN" dnssec keygen --domain "$DOMAIN" --out-dir "$WORK/keys" >/dev/null
  printf '\n[dnssec]\nkey_file = "%s"\n' "$(ls "$WORK"/keys/*.pem)" >>"$WORK/meridian.toml"
  "$MERIDIAN_BIN" dnssec ds --config "$WORK/meridian.toml" |
    awk '{ $1 = $1 " 3600"; print }' >>"$WORK/parent/parent.zone"
  cp "$WORK"/keys/*.key "$WORK/trust-anchor"
  # grok -t needs pygraphviz's `release` module, which Debian 12's
  # pygraphviz 1.7 lacks; without the anchor grok still checks every RRSIG
  # and NSEC proof against the DNSKEY set, and the DS in the parent.
  if /usr/bin/python3 -c 'from pygraphviz import release' 2>/dev/null; then
    GROK_ANCHOR=(-t "$WORK/trust-anchor")
  else
    echo "dnsviz grok without -t: this pygraphviz has no \`release\` module, which grok -t needs"
  fi
  echo "signed: $(grep -c DS "$WORK/parent/parent.zone") DS record(s) in $PARENT"
fi
"$MERIDIAN_BIN" check --config "$WORK/meridian.toml" >/dev/null \
  || { "$MERIDIAN_BIN" check --config "$WORK/meridian.toml"; die "derived config does not check"; }
echo "domain $DOMAIN, parent $PARENT, nameservers: ${NS_NAMES[*]} at ${NS_ADDRS[*]}"

say "network namespace $NETNS"
ip netns add "$NETNS"
inns ip link set lo up
for addr in "$ROOT_ADDR" ${PARENT_ADDRS//,/ } "${NS_ADDRS[@]}"; do
  inns ip addr add "$addr/32" dev lo
done
# No route out: only lo exists, and a route lookup for any outside address
# (here a documentation address) fails.
links=$(inns ip -o link show | awk -F': ' '{print $2}' | paste -sd, -)
[ "$links" = lo ] || die "namespace has interfaces besides lo: $links"
if inns ip route get 192.0.2.1 >/dev/null 2>&1; then
  die "namespace has a route out"
fi
if inns ip -6 route get 2001:db8::1 >/dev/null 2>&1; then
  die "namespace has an IPv6 route out"
fi
echo "interfaces: $links only; no IPv4 or IPv6 route out"

# --- servers -------------------------------------------------------------
# Started with `ip netns exec` itself (not through a shell function), which
# execs the server, so $! is the server's own PID.
for side in root parent; do
  mkdir -p "$WORK/$side/run" "$WORK/$side/db"
  ip netns exec "$NETNS" knotd -c "$WORK/$side/knot.conf" >"$WORK/$side/knotd.log" 2>&1 &
  PIDS+=($!)
done
for i in "${!NS_ADDRS[@]}"; do
  ip netns exec "$NETNS" "$MERIDIAN_BIN" serve --config "$WORK/meridian.toml" --listen "${NS_ADDRS[$i]}:53" \
    >"$WORK/meridian-$i.log" 2>&1 &
  PIDS+=($!)
done

# Ready when each server answers its zone's SOA over UDP and TCP.
wait_soa() { # addr zone
  local _
  for _ in $(seq 50); do
    if inns kdig @"$1" "$2" SOA +norec +timeout=1 +retry=0 2>/dev/null | grep -q 'status: NOERROR' &&
       inns kdig @"$1" "$2" SOA +norec +tcp +timeout=1 +retry=0 2>/dev/null | grep -q 'status: NOERROR'; then
      return 0
    fi
    sleep 0.2
  done
  return 1
}
ready() {
  wait_soa "$ROOT_ADDR" . || return 1
  local a
  for a in ${PARENT_ADDRS//,/ }; do wait_soa "$a" "$PARENT" || return 1; done
  for a in "${NS_ADDRS[@]}"; do wait_soa "$a" "$DOMAIN" || return 1; done
}
if ! ready; then
  for f in "$WORK"/*/knotd.log "$WORK"/meridian-*.log; do echo "--- $f"; tail -20 "$f"; done
  die "servers did not come up"
fi
echo "local root, parent and ${#NS_ADDRS[@]} Meridian nodes answer"
echo "delegation of $DOMAIN from $PARENT:"
inns kdig @"${PARENT_ADDRS%%,*}" "$DOMAIN" NS +norec +noall +authority +additional | sed 's/^/  /'

PASSED=() FAILED=()
verdict() { # check-name status
  if [ "$2" = 0 ]; then PASSED+=("$1"); else FAILED+=("$1"); fi
}

# --- Zonemaster ----------------------------------------------------------
# Every message down to DEBUG is kept: each query Zonemaster sends is one,
# and they are checked below. NOTICE and above are printed; WARNING, ERROR
# and CRITICAL fail. IPv6 is left enabled: the derived config gives each
# nameserver one IPv4 address and the hints are IPv4, so there is nothing
# to try over IPv6 (the result is the same with --no-ipv6).
say "zonemaster-cli $(zonemaster-cli --version | awk '/CLI version/ {print $3}') on ${DOMAIN%.}, from the local root"
zm_start=$SECONDS
set +e
waitfor inns timeout 150 zonemaster-cli "${DOMAIN%.}" \
  --hints "$WORK/root.hints" --profile "$WORK/zonemaster.json" \
  --level DEBUG --json-stream --json-translate --no-progress \
  >"$WORK/zonemaster.jsonl" 2>"$WORK/zonemaster.err"
zm_status=$?
set -e
echo "(zonemaster-cli exit $zm_status, $((SECONDS - zm_start)) s)"
if [ "$zm_status" != 0 ]; then
  sed 's/^/  stderr: /' "$WORK/zonemaster.err" | tail -20
  echo "zonemaster: FAIL, zonemaster-cli exited $zm_status"
fi
/usr/bin/python3 "$HERE/report.py" zonemaster "$WORK/zonemaster.jsonl" && [ "$zm_status" = 0 ]
verdict zonemaster $?

# --- DNSViz --------------------------------------------------------------
# probe -A: authoritative analysis; -a .: of every ancestor too, so the
# local root and parent are checked along with the delegation; -x: the
# local root is the only root; -E: EDNS compatibility queries too (unknown
# version, option and flag; TCP; 0x20 case); -4: there is no IPv6 here.
# The apex and every name the config defines are analysed.
# grok -P: the namespace's addresses are private, which DNSViz otherwise
# reports (NS_NAME_PRIVATE_IP, GLUE_PRIVATE_IP): the test network, not
# Meridian. grok -l warning decides; a plain grok gives the summary.
say "dnsviz probe -A -E | dnsviz grok -l warning, from the local root"
dv_start=$SECONDS
set +e
waitfor inns timeout 120 dnsviz probe -A -E -4 -a . -x ".:${ROOT_NS%.}=$ROOT_ADDR" \
  -o "$WORK/probe.json" "$DOMAIN" "${NAMES[@]}" 2>"$WORK/probe.err"
probe_status=$?
dnsviz grok -P "${GROK_ANCHOR[@]}" -l warning -r "$WORK/probe.json" -o "$WORK/grok-warnings.json" 2>"$WORK/grok.err"
grok_status=$?
dnsviz grok -P "${GROK_ANCHOR[@]}" -r "$WORK/probe.json" -o "$WORK/grok.json" 2>>"$WORK/grok.err"
grok_status=$((grok_status | $?))
set -e
echo "(probe exit $probe_status, grok exit $grok_status, $((SECONDS - dv_start)) s)"
# The probe says on stderr which names it analyses, and that it sees no
# global connectivity (true: there is none in the namespace).
sed 's/^/  probe: /' "$WORK/probe.err"
if [ "$probe_status" != 0 ] || [ "$grok_status" != 0 ]; then
  sed 's/^/  grok: /' "$WORK/grok.err" | tail -20
  echo "dnsviz: FAIL, probe exited $probe_status, grok $grok_status"
  verdict dnsviz 1
else
  /usr/bin/python3 "$HERE/report.py" dnsviz "$WORK/grok-warnings.json" "$WORK/grok.json"
  verdict dnsviz $?
fi

# --- where the queries went ---------------------------------------------
# The tools' own record of the servers they queried (every query of
# Zonemaster's; the servers in DNSViz's probe data, whose resolver lookups
# are not recorded there), and the namespace's IP counters: OutNoRoutes
# counts packets that found no route (nothing can leave lo), lo's tx is
# every packet sent inside the namespace.
say "network"
net_status=0
/usr/bin/python3 "$HERE/report.py" targets "$ROOT_ADDR,$PARENT_ADDRS,$(IFS=,; echo "${NS_ADDRS[*]}")" \
  "$WORK/zonemaster.jsonl" "$WORK/probe.json" || net_status=1
# shellcheck disable=SC2016 # awk programs
no_routes=$(inns awk '$1 == "Ip:" && $2 !~ /^[0-9]/ { for (i = 2; i <= NF; i++) h[i] = $i; next }
  $1 == "Ip:" { for (i = 2; i <= NF; i++) if (h[i] == "OutNoRoutes") print $i }' /proc/net/snmp)
# shellcheck disable=SC2016
no_routes6=$(inns awk '$1 == "Ip6OutNoRoutes" { print $2 }' /proc/net/snmp6)
lo_tx=$(inns cat /sys/class/net/lo/statistics/tx_packets)
echo "  namespace: $lo_tx packets sent on lo (its only interface); no route found: IPv4 $no_routes, IPv6 $no_routes6"
# One IPv4 no-route is expected: dnsviz probe -A checks for "global IPv4
# connectivity" by connect()ing a UDP socket to a real root server's
# address, which only looks up a route (and finds none); nothing is sent.
# Any more means a tool tried to reach past the local root.
if [ "$no_routes" -gt 1 ] || [ "$no_routes6" -gt 0 ]; then
  echo "network: FAIL, a tool tried to reach addresses outside the namespace"
  net_status=1
fi
verdict network "$net_status"

say "conformance: $([ "${#FAILED[@]}" = 0 ] && echo PASS || echo "FAIL (${FAILED[*]})") in $((SECONDS - START)) s"
echo "conformance: ${#PASSED[@]} passed, ${#FAILED[@]} failed"
[ "${#FAILED[@]}" = 0 ]
