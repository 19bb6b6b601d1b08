#!/usr/bin/env bash
# Reload cost at scale: a generated config of SERVICES services (default
# 10,000) x 3 zones, checks off (kind = "none"; deterministic, no seed
# needed), served by the release binary on 127.0.0.1. Prints the time to
# the first answer, the resident set after start-up, each of RELOADS
# (default 20) `POST /v1/reload` round trips (the reply comes once the new
# snapshot is live), the resident set after them, and the peak (VmHWM).
# Every reload rewrites one TXT record, and the script checks that the
# new value is served, so each one really swapped a snapshot in. With
# CHANGE=one (the default) that record is all that changes: no service
# entry does. CHANGE=service changes one service too (svc0's first
# address moves), CHANGE=all every service (each gets a
# `ttl` that alternates between reloads), so none can be reused from the
# previous read or the previous snapshot. The node's CPU time (user + system) per reload is printed
# beside the wall times: on a shared machine it shows the work done.
# LATENCY=N (default 0) first pushes a latency table of N prefixes through
# `POST /v1/latency`, as an operator's beacon feed would: half IPv4 /24s,
# half IPv6 /48s, one zone each, in batches of 10,000; the resident set is
# printed again once they are in, and the reloads then run with it held.
# UNDER_LOAD=1 then measures dnsperf's ceiling against the node (10 s,
# queries over every service), loads it at 80% of that with dnsperf while
# 10 more reloads run one after another, and reports how long those
# reloads took and dnsperf's lost queries and response codes: every query
# must be answered NOERROR.
# RELOAD_BY=sighup times each reload from the SIGHUP sent to the node to
# the first DNS answer carrying the new TXT (asked every 2 ms on
# 127.0.0.1, at most 5 s), rather than the `POST /v1/reload` round trip
# (RELOAD_BY=api, the default): the operator's signal, end to end. The
# asking is a third process: under load it competes with dnsperf and the
# node for the two cores. With a poll every half millisecond, reloads
# under load measured a median of 145 ms (one service changed) and 196 ms
# (all changed), against the API's 96 and 134 ms a few minutes later.
# So under load the API's figure is the closer one for the node itself.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SERVICES=${SERVICES:-10000}
RELOADS=${RELOADS:-20}
DNS_PORT=${DNS_PORT:-15390}
ADMIN_PORT=${ADMIN_PORT:-15391}
MERIDIAN=${MERIDIAN:-}
if [ -z "$MERIDIAN" ]; then
    cargo build --release --bin meridian >&2
    MERIDIAN=target/release/meridian
fi
work=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

CHANGE=${CHANGE:-one}
generate() { # version
    python3 - "$SERVICES" "$1" "$CHANGE" <<'PY'
import sys
services, version, change = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ttl = f'ttl = {30 + int(version) % 2}\n' if change == "all" else ''
out = ['[domain]\nname = "gslb.test."\n[[domain.nameservers]]\nname = "ns1"\naddresses = ["192.0.2.53"]\n',
       f'[[records]]\nname = "version"\ntype = "TXT"\ndata = "v{version}"\n']
for zone, lat, lon in [("us-east", 38.9, -77.4), ("eu-west", 53.3, -6.3), ("ap-south", 1.3, 103.8)]:
    out.append(f'[[zones]]\nname = "{zone}"\nlatitude = {lat}\nlongitude = {lon}\n')
for s in range(services):
    a, b = s // 250, s % 250 + 1
    # CHANGE=service: svc0's first address moves with every version.
    first = f'10.9.{int(version) // 250 % 250}.{int(version) % 250 + 1}' \
        if change == "service" and s == 0 else f'10.1.{a}.{b}'
    out.append(f'[[services]]\nname = "svc{s}"\n{ttl}[services.check]\nkind = "none"\n'
               f'[[services.endpoints]]\nzone = "us-east"\naddresses = ["{first}"]\n'
               f'[[services.endpoints]]\nzone = "eu-west"\naddresses = ["10.2.{a}.{b}"]\n'
               f'[[services.endpoints]]\nzone = "ap-south"\naddresses = ["10.3.{a}.{b}"]\n')
sys.stdout.write("".join(out))
PY
}
RELOAD_BY=${RELOAD_BY:-api}
case $RELOAD_BY in
api) how='POST /v1/reload to new snapshot live' ;;
sighup) how='SIGHUP to the new TXT first answered' ;;
*) echo "RELOAD_BY must be api or sighup" >&2; exit 1 ;;
esac
# Milliseconds from asking the node to reload to version VERSION live.
reload_ms() { # version
    if [ "$RELOAD_BY" = api ]; then
        t=$(curl -s -o "$work/reply" -w '%{time_total}' -X POST "http://127.0.0.1:$ADMIN_PORT/v1/reload")
        echo "$t * 1000" | bc -l
        return
    fi
    python3 - "$pid" "$DNS_PORT" "v$1" <<'PY'
import os, signal, socket, struct, sys, time
pid, port, want = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3].encode()
name = b"".join(bytes([len(l)]) + l for l in b"version.gslb.test".split(b".")) + b"\0"
query = lambda i: struct.pack(">HHHHHH", i, 0, 1, 0, 0, 0) + name + struct.pack(">HH", 16, 1)
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.connect(("127.0.0.1", port))
sock.settimeout(0.002)
start = time.monotonic()
os.kill(pid, signal.SIGHUP)
i = 0
while time.monotonic() - start < 5:
    i = (i + 1) & 0xFFFF
    sock.send(query(i))
    try:
        while True:
            reply = sock.recv(512)
            # The TXT's one string ends the reply: length byte, then it.
            if reply[:2] == struct.pack(">H", i) and reply.endswith(bytes([len(want)]) + want):
                print((time.monotonic() - start) * 1000)
                sys.exit(0)
    except socket.timeout:
        pass
sys.exit("no answer with " + want.decode() + " within 5 s of the SIGHUP")
PY
}
rss() { awk -v k="$1:" '$1 == k {printf "%.0f", $2 / 1024}' "/proc/$pid/status"; }
served() { dig +short +time=1 +tries=1 @127.0.0.1 -p "$DNS_PORT" version.gslb.test TXT 2>/dev/null | tr -d '"'; }

generate 0 >"$work/meridian.toml"
start=$(date +%s.%N)
RUST_LOG=${RUST_LOG:-warn} "$MERIDIAN" serve --config "$work/meridian.toml" \
    --listen "127.0.0.1:$DNS_PORT" --admin "127.0.0.1:$ADMIN_PORT" >"$work/log" 2>&1 &
pid=$!
for _ in $(seq 600); do
    [ "$(served)" = v0 ] && break
    kill -0 "$pid" 2>/dev/null || { cat "$work/log" >&2; exit 1; }
    sleep 0.01
done
first=$(echo "$(date +%s.%N) - $start" | bc -l)
printf 'services %d: first answer after %.2f s; RSS after start %s MiB\n' "$SERVICES" "$first" "$(rss VmRSS)"
LATENCY=${LATENCY:-0}
if [ "$LATENCY" -gt 0 ]; then
    python3 - "$LATENCY" "$ADMIN_PORT" <<'PY'
import json, sys, urllib.request
total, port = int(sys.argv[1]), sys.argv[2]
zones = ["us-east", "eu-west", "ap-south"]
def prefix(i):
    # Spread over the address space, as real clients are; /24s from
    # 1.0.0.0 up, /48s under 2400::/12. Private and documentation ranges
    # are only data here: nothing is sent to them.
    if i % 2 == 0:
        n = 0x01000000 + (i // 2) * 256
        return f"{n >> 24 & 255}.{n >> 16 & 255}.{n >> 8 & 255}.0/24"
    j = i // 2
    return f"24{j >> 32 & 0xff:02x}:{j >> 16 & 0xffff:x}:{j & 0xffff:x}::/48"
for start in range(0, total, 10000):
    batch = [{"prefix": prefix(i), "zone": zones[i % 3], "rtt_ms": float(10 + i % 90)}
             for i in range(start, min(total, start + 10000))]
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/latency",
                                 data=json.dumps(batch).encode(), method="POST",
                                 headers={"content-type": "application/json"})
    urllib.request.urlopen(req, timeout=60).read()
PY
    sleep 1
    printf 'latency table of %d prefixes pushed: RSS %s MiB; peak so far (VmHWM) %s MiB\n' \
        "$LATENCY" "$(rss VmRSS)" "$(rss VmHWM)"
fi
cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
ticks=$(getconf CLK_TCK)
times=()
cpu_before=$(cpu)
for v in $(seq "$RELOADS"); do
    generate "$v" >"$work/meridian.toml"
    : >"$work/reply"
    times+=("$(reload_ms "$v")")
    [ "$(served)" = "v$v" ] || { echo "reload $v not live: $(cat "$work/reply")" >&2; exit 1; }
done
cpu_ms=$(echo "($(cpu) - $cpu_before) * 1000 / $ticks / $RELOADS" | bc -l)
sorted=$(printf '%s\n' "${times[@]}" | sort -g)
median=$(echo "$sorted" | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}')
printf "reload ($how), %d reloads, CHANGE=%s: median %.0f ms, min %.0f, max %.0f; node CPU %.0f ms per reload\n" \
    "$RELOADS" "$CHANGE" "$median" "$(echo "$sorted" | head -1)" "$(echo "$sorted" | tail -1)" "$cpu_ms"
sleep 1
printf 'RSS after %d reloads %s MiB; peak (VmHWM) %s MiB\n' "$RELOADS" "$(rss VmRSS)" "$(rss VmHWM)"

if [ -n "${UNDER_LOAD:-}" ]; then
    command -v dnsperf >/dev/null || { echo "UNDER_LOAD needs dnsperf (Debian package dnsperf)" >&2; exit 1; }
    for s in $(seq 0 $((SERVICES - 1))); do echo "svc$s.gslb.test A"; done >"$work/queries"
    perf() { dnsperf -s 127.0.0.1 -p "$DNS_PORT" -d "$work/queries" -c 4 -t 2 "$@"; }
    ceiling=$(perf -l 10 | awk '/Queries per second/ {printf "%d", $4}')
    rate=$((ceiling * 8 / 10))
    perf -l 30 -Q "$rate" >"$work/dnsperf" 2>&1 &
    loader=$!
    sleep 2
    loaded=()
    for v in $(seq 101 110); do
        generate "$v" >"$work/meridian.toml"
        loaded+=("$(reload_ms "$v")")
        [ "$(served)" = "v$v" ] || { echo "reload $v under load not live" >&2; exit 1; }
    done
    wait "$loader"
    sorted=$(printf '%s\n' "${loaded[@]}" | sort -g)
    printf "reloads under load ($how, the node at 80%% of its ceiling): median %.0f ms, min %.0f, max %.0f\n" \
        "$(echo "$sorted" | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}')" "$(echo "$sorted" | head -1)" "$(echo "$sorted" | tail -1)"
    sent=$(awk '/Queries sent/ {print $3}' "$work/dnsperf")
    lost=$(awk '/Queries lost/ {print $3}' "$work/dnsperf")
    codes=$(awk '/Response codes/ {sub(/.*Response codes: */, ""); print}' "$work/dnsperf")
    printf 'under load: ceiling %d qps; at %d qps for 30 s with 10 reloads: %s queries sent, %s lost; response codes: %s\n' \
        "$ceiling" "$rate" "$sent" "$lost" "$codes"
    case "$codes" in
        "NOERROR $sent (100"*) [ "$lost" = 0 ] || { cat "$work/dnsperf" >&2; exit 1; } ;;
        *) cat "$work/dnsperf" >&2; exit 1 ;;
    esac
fi
if [ -n "${KEEP_LOG:-}" ]; then cp "$work/log" "$KEEP_LOG"; fi
