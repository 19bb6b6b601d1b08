#!/usr/bin/env bash
# ECS scopes: how wide a scope gdnsd and Meridian return for the same
# clients over the same GeoIP data, and whether any scope is harmful.
#
#   bash benches/scopes.sh        # from the repository root, or anywhere
#
# What it does:
#  1. installs gdnsd and python3 from Debian if missing; builds Meridian
#     (cargo build --release) unless MERIDIAN is set;
#  2. generates a city-level GeoIP database from the shipped one
#     (cargo bench --bench scope_data: neighbouring networks at different
#     cities that mostly rank the zones alike), and prints the size and
#     build time of the scope markings for the shipped and generated data;
#  3. for each database (the shipped geo/default.mmdb, then the generated
#     one): serves zones/example.toml with it from Meridian (and from
#     BEFORE, another Meridian build, when set) and from gdnsd configured
#     alike (benches/load/mirror.py), all on 127.0.0.1, and runs
#     benches/load/scopes.py: 500 IPv4 /24 and 250 IPv6 /56 clients, the
#     median scope per family, the share of IPv4 scopes at /16 or shorter
#     and at /24, and a harmful-scope check (exit status 1 on any).
#
# Knobs: MERIDIAN=path (skip the build) BEFORE=path (also measure that build)
# PORT_BASE=15370 (uses PORT_BASE..PORT_BASE+5) KEEP=1 (keep the work directory).
# Traffic goes to 127.0.0.1 only. Everything started here is stopped by PID.

set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)
here="$root/benches/load"
BENCH_NAME=scopes
# shellcheck source=benches/lib.sh
. "$root/benches/lib.sh"

die() {
    echo "scopes.sh: $*" >&2
    exit 1
}

missing=()
command -v gdnsd >/dev/null || [ -x /usr/sbin/gdnsd ] || missing+=(gdnsd)
command -v dig >/dev/null || missing+=(bind9-dnsutils)
python3 -c 'import tomllib' 2>/dev/null || missing+=(python3)
install_missing ${missing[@]+"${missing[@]}"}
PATH="$PATH:/usr/sbin:/sbin"

if [ -z "${MERIDIAN:-}" ]; then
    echo "building meridian (cargo build --release) ..." >&2
    cargo build --release --quiet || die "cargo build --release failed"
    MERIDIAN="$root/target/release/meridian"
fi
[ -x "$MERIDIAN" ] || die "MERIDIAN=$MERIDIAN is not an executable"
[ -z "${BEFORE:-}" ] || [ -x "$BEFORE" ] || die "BEFORE=$BEFORE is not an executable"

PORT_BASE=${PORT_BASE:-15370}
echo "generating city-level GeoIP data (cargo bench --bench scope_data) ..." >&2
cargo bench --quiet --bench scope_data -- --write "$work/city.mmdb" | tee "$work/markings.txt"

ask() { # port name
    dig @127.0.0.1 -p "$1" +time=1 +tries=1 +short "$2" A 2>/dev/null | grep -v '^;;' || true
}

wait_ready() { # pid port log
    local i
    for i in $(seq 150); do
        kill -0 "$1" 2>/dev/null || { cat "$3" >&2; die "a server exited at start ($3)"; }
        [ -n "$(ask "$2" mail.gslb.example)" ] && return
        sleep 0.2
    done
    cat "$3" >&2
    die "no answer on port $2 within 30 s"
}

run() { # label mmdb
    local label=$1 mmdb=$2 dir="$work/$1" servers=() p=$PORT_BASE
    mkdir -p "$dir"
    sed "s|^files = .*|files = [\"$mmdb\"]|" "$root/zones/example.toml" >"$dir/example.toml"
    python3 "$here/mirror.py" --config "$dir/example.toml" --out "$dir" \
        --gdnsd-listen "127.0.0.1:$p" --knot-listen "127.0.0.1:$((p + 5))" --threads 1 >&2
    gdnsd -c "$dir/gdnsd" start >"$dir/gdnsd.log" 2>&1 &
    pids+=("$!")
    wait_ready "$!" "$p" "$dir/gdnsd.log"
    servers+=(--server "gdnsd=$p")
    local name binary
    for name in before meridian; do
        case $name in
        before) binary=${BEFORE:-} ;;
        meridian) binary=$MERIDIAN ;;
        esac
        [ -n "$binary" ] || continue
        p=$((p + 2))
        RUST_LOG=warn "$binary" serve --config "$dir/example.toml" \
            --listen "127.0.0.1:$p" --admin "127.0.0.1:$((p + 1))" >"$dir/$name.log" 2>&1 &
        pids+=("$!")
        wait_ready "$!" "$p" "$dir/$name.log"
        servers+=(--server "$name=$p")
    done
    echo "== $label"
    python3 "$here/scopes.py" --geo "$dir/gdnsd/geo.mmdb" "${servers[@]}" || status=1
    for pid in ${pids[@]+"${pids[@]}"}; do stop_pid "$pid"; done
}

status=0
run shipped "$root/geo/default.mmdb"
run generated "$work/city.mmdb"
[ "$status" = 0 ] || die "a harmful ECS scope (above)"
