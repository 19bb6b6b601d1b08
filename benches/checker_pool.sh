#!/usr/bin/env bash
# Checker-pool benchmark: can one Meridian node keep 5,000 endpoints on a 1 s
# health-check interval, and what does it cost in CPU?
#
#   bash benches/checker_pool.sh          # from the repository root, or anywhere
#
# It builds the release binary, starts nginx as the endpoints' load balancer,
# serves a generated config of SERVICES x ZONES endpoints (each its own
# 127.1.x.y address) with HTTP checks, then again with TCP checks, and prints
# what benches/checker_pool.rs measured from outside: probes per second from
# /metrics, Meridian's CPU from /proc, RSS, and how many endpoints /v1/zones
# calls up. Nothing here is a test: it prints figures and fails only when it
# cannot measure.
#
# Knobs (environment): SERVICES=1000 ZONES=5 WARMUP=10 WINDOW=30
# KINDS="http tcp"  KEEP=1 (keep configs and logs in the work directory)
# MERIDIAN=path/to/meridian (measure another build, e.g. to compare a change).
# Needs: cargo, Debian/Ubuntu's nginx and iproute2 (installed when missing).

set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)

SERVICES=${SERVICES:-1000}
ZONES=${ZONES:-5}
WARMUP=${WARMUP:-10}
WINDOW=${WINDOW:-30}
KINDS=${KINDS:-http tcp}
ENDPOINTS=$((SERVICES * ZONES))

# --- what we start, and how it goes away --------------------------------------

BENCH_NAME=bench
# shellcheck source=benches/lib.sh
. "$root/benches/lib.sh"

# --- tools ----------------------------------------------------------------------

# nginx rather than a target of our own making: the endpoints should answer
# like a real load balancer, cheaply, from a process whose CPU is not ours.
missing=()
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v ss >/dev/null || missing+=(iproute2)
install_missing ${missing[@]+"${missing[@]}"}
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

# Each probe in flight holds a socket (up to server.probe_concurrency, 512 by
# default) and a login shell's soft limit is often 1024: raise it, so a limit
# we set does not pass for a limit of the pool.
hard=$(ulimit -Hn)
if [ "$hard" = unlimited ] || [ "$hard" -gt 65536 ]; then hard=65536; fi
ulimit -n "$hard" 2>/dev/null || true

# A port below the ephemeral range (32768+), so no probe's own source port
# can ever hold it, and free on every address.
free_port() {
    local port
    for _ in $(seq 200); do
        port=$((20000 + RANDOM % 10000))
        if [ -z "$(ss -Htuan "sport = :$port")" ]; then
            echo "$port"
            return
        fi
    done
    echo "no free port found in 20000-29999" >&2
    return 1
}

echo "building ..." >&2
if [ -z "${MERIDIAN:-}" ]; then
    cargo build --release --locked --quiet
    MERIDIAN=target/release/meridian
fi
# The measuring program is run directly, not through `cargo bench`, so that
# it is our own child and a signal stops it by PID like everything else.
driver=$(cargo bench --locked --quiet --no-run --bench checker_pool --message-format=json |
    grep '"kind":\["bench"\]' | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -1)
[ -x "$driver" ] || { echo "cannot build benches/checker_pool.rs" >&2; exit 1; }

# --- the machine ------------------------------------------------------------------

echo "== checker-pool benchmark, $(date -u '+%Y-%m-%d %H:%M UTC') =="
echo "machine:  $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $(uname -sr)"
if [ "$MERIDIAN" = target/release/meridian ]; then
    build="$(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD 2>/dev/null || echo '+changes')"
else
    build=$MERIDIAN
fi
echo "software: meridian $build, $("$NGINX" -v 2>&1 | sed 's/^nginx version: //'), $(rustc -V)"
echo "files:    ulimit -n $(ulimit -n); load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "setup:    $SERVICES services x $ZONES zones = $ENDPOINTS endpoints, one 127.1.x.y address each, interval 1s, timeout 1s;"
echo "          warm-up ${WARMUP}s, window ${WINDOW}s; probe_concurrency default"

# --- the target: nginx ------------------------------------------------------------

port=$(free_port)
mkdir -p "$work/nginx/logs"
# 0.0.0.0 because no single address covers 127.1.0.0/16; the allow/deny keeps
# it a loopback-only server. worker_processes 1: one core stays Meridian's.
cat >"$work/nginx/nginx.conf" <<EOF
worker_processes 1;
worker_rlimit_nofile 16384;
pid $work/nginx/nginx.pid;
error_log $work/nginx/logs/error.log warn;
events { worker_connections 8192; }
http {
    access_log off;
    client_body_temp_path $work/nginx/body;
    proxy_temp_path $work/nginx/proxy;
    fastcgi_temp_path $work/nginx/fastcgi;
    uwsgi_temp_path $work/nginx/uwsgi;
    scgi_temp_path $work/nginx/scgi;
    server {
        listen $port backlog=4096;
        allow 127.0.0.0/8;
        deny all;
        default_type text/plain;
        location = /healthz { return 200 'ok'; }
        location / { return 404; }
    }
}
EOF
"$NGINX" -p "$work/nginx" -e "$work/nginx/logs/error.log" -c "$work/nginx/nginx.conf" -g 'daemon off;' &
nginx_pid=$!
pids+=("$nginx_pid")

# Ready when the last endpoint's address answers /healthz with 200.
healthz_status() { # the status line nginx gives GET /healthz on $1:$2
    exec 3<>"/dev/tcp/$1/$2" || return 1
    printf 'GET /healthz HTTP/1.0\r\n\r\n' >&3
    head -1 <&3
}
last_addr="127.1.$(((ENDPOINTS - 1) / 250)).$(((ENDPOINTS - 1) % 250 + 1))"
status=""
for _ in $(seq 100); do
    status=$(healthz_status "$last_addr" "$port" 2>/dev/null || true)
    [[ $status == *" 200 "* ]] && break
    kill -0 "$nginx_pid" 2>/dev/null || { cat "$work/nginx/logs/error.log" >&2; exit 1; }
    sleep 0.1
done
[[ $status == *" 200 "* ]] || { echo "nginx does not answer on $last_addr:$port" >&2; exit 1; }
# Its worker's CPU is reported beside Meridian's, for scale.
workers=$(xargs 2>/dev/null <"/proc/$nginx_pid/task/$nginx_pid/children" || true)
nginx_pids=$(echo "$nginx_pid $workers" | xargs | tr ' ' ,)
echo "target:   nginx pid $nginx_pid (worker ${workers:-?}) on 0.0.0.0:$port, loopback clients only"
echo

# --- Meridian, once per check kind ----------------------------------------------

rows="$work/rows.tsv"
: >"$rows"
for kind in $KINDS; do
    config="$work/$kind.toml"
    "$driver" config --kind "$kind" --port "$port" --services "$SERVICES" --zones "$ZONES" --out "$config"
    "$MERIDIAN" check --config "$config" >/dev/null

    dns_port=$(free_port)
    admin_port=$(free_port)
    log="$work/meridian-$kind.log"
    NO_COLOR=1 "$MERIDIAN" serve --config "$config" --listen "127.0.0.1:$dns_port" \
        --admin "127.0.0.1:$admin_port" >"$log" 2>&1 &
    meridian_pid=$!
    pids+=("$meridian_pid")

    # In the background and waited for, so that a TERM is acted on at once.
    "$driver" measure --label "$kind" --pid "$meridian_pid" --admin "127.0.0.1:$admin_port" \
        --endpoints "$ENDPOINTS" --warmup "$WARMUP" --window "$WINDOW" \
        --clk-tck "$(getconf CLK_TCK)" --target-pids "$nginx_pids" --row-out "$rows" &
    measure_pid=$!
    pids+=("$measure_pid")
    if ! wait "$measure_pid"; then
        # Startup transitions fill the log; what matters is at its end.
        echo "measuring failed; the end of Meridian's log ($log):" >&2
        grep -v 'health transition' "$log" | tail -5 >&2
        exit 1
    fi
    forget_pid "$measure_pid" # reaped by the wait: never signal that PID again

    # Warnings and errors would say what the counters cannot (e.g. EMFILE).
    problems=$(grep -cE '\b(WARN|ERROR)\b' "$log" || true)
    echo "  log                    $problems warning/error lines$( [ "$problems" = 0 ] || echo ":")"
    grep -E '\b(WARN|ERROR)\b' "$log" | head -3 | sed 's/^/    /' || true

    # 5,000 tasks to cancel: how long a stop takes is worth knowing too.
    started=$EPOCHREALTIME
    stop_pid "$meridian_pid"
    awk -v a="$started" -v b="$EPOCHREALTIME" \
        'BEGIN { printf "  shutdown               %.2f s after SIGTERM\n", b - a }'
    echo
    sleep 2 # let the closed connections' TIME_WAITs settle before the next run
done

echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
"$driver" table --in "$rows"
