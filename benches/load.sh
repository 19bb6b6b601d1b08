#!/usr/bin/env bash
# Load benchmark: Meridian against gdnsd, Knot and a null responder, on the
# shipped example, measured with dnsperf on this machine's loopback.
#
#   bash benches/load.sh          # from the repository root, or anywhere
#
# What it does, in one run:
#  1. installs what is missing from Debian (dnsperf, gdnsd, knot, dig, gcc,
#     python3, valgrind), builds Meridian (cargo build --release) and the
#     null responder (benches/load/null_responder.c);
#  2. writes gdnsd and Knot configs that mirror zones/example.toml
#     (benches/load/mirror.py): gdnsd's geoip plugin in city-auto mode with
#     the example's three zone coordinates over the same GeoIP file and `up`
#     monitors (the example's checks are `none`); Knot serves the same
#     static records, and `www` as a static A (it does no geo routing);
#  3. generates the queries (benches/load/queries.py): static answers,
#     `www` A with ECS from one /24 (geo1), from 1,024 /24s (geo1k) and from
#     3,000 /24s (geo) spread over the US, Europe and Asia, a mix with 20%
#     NXDOMAIN sent over UDP and over TCP, and the random-subnet flood: `www`
#     A with ECS from 100,000 distinct /24s anywhere the GeoIP file locates,
#     each asked once per pass (more than the 16,384 networks Meridian's
#     routing memo keeps per thread, so every flood query misses the
#     networks' table, the memo's worst case);
#  4. starts the null responder, Knot, gdnsd and Meridian on 127.0.0.1, all
#     pinned to one core (one UDP thread each: Meridian runs one per CPU it
#     may use), dnsperf on the other core, and checks each answers correctly
#     (dig spot checks, then every query file against the expected answers:
#     the zone nearest each subnet); it stops loudly if one does not;
#  5. for ROUNDS rounds, for each scenario, for each server in turn:
#     - dnsperf unlimited: max qps;
#     - dnsperf at RATE qps (-Q): the server's CPU time (utime+stime from
#       /proc/PID/stat) per query answered, its sleeps (voluntary context
#       switches) per query, and per-query latency (dnsperf -v) for p50/p99;
#     - UDP only, "busy": the server is stopped (SIGSTOP) while a burst of
#       queries is queued in its socket, then continued; CPU time per query
#       draining the bursts, with no sleep between queries;
#     then, after the rounds, BUSY_PAIRS more busy runs per scenario with
#     the servers taking turns, for a ratio the machine's drift cancels in;
#     Meridian's resident set (VmRSS, VmHWM) is read before its first flood
#     run and after each round's: the memo is bounded, so it must not grow;
#  4b. compares the ECS scopes gdnsd and Meridian return for the same
#     clients (benches/load/scopes.py) and stops if either is harmful;
#  6. optionally (CALLGRIND=1) counts user-space instructions per answer for
#     Meridian and gdnsd under callgrind, startup excluded, for each of
#     CG_SCENARIOS: CG_RUNS passes over the file after one warm-up pass, and
#     for the flood one pass over its 100,000 /24s after a warm-up on geo's
#     (so none of the measured ones was asked before);
#  7. prints the table: medians of the rounds, ratios Meridian/gdnsd, and
#     the median and range of the busy pairs' ratios.
#
# With the defaults it takes about 12 minutes on the 2-core VM (12 min 1 s
# on 2026-12-05 18:32 UTC, the 210 busy runs in pairs about a minute of it;
# callgrind about 4, most of that the two flood passes at CG_RATE).
#
# Why CPU per query, and why two kinds: on a 2-core machine dnsperf itself
# tops out around 100-165k qps and every fast server reaches that ceiling,
# so max qps says little. The null responder (echoes each query with QR set,
# no DNS work) is the floor, the kernel's loopback cost; "over null" is a
# server's own work. At a fixed rate a server sleeps and is woken many
# times, and on this kind of virtual machine a wake-up costs the server
# several µs: a slower server finds more queries waiting per wake-up and so
# looks cheaper per query than it is. The "busy" figure has no wake-ups in
# it; callgrind's instruction count has no kernel and no noise in it.
#
# Knobs (environment): ROUNDS=3 DURATION=2 (seconds per dnsperf run)
# RATE=50000 SCENARIOS="static geo1 geo1k geo flood mix tcp"
# SERVERS="null knot gdnsd meridian" (Knot serves `www` statically, so it
# sits out geo1, geo1k and flood)
# CALLGRIND=1 CG_SCENARIOS="static geo1 geo1k geo flood" CG_RUNS=3 (passes
# over each file but the flood's under callgrind) CG_RATE=1000 (qps offered
# under callgrind) FLOOD=100000 (distinct /24s in the flood)
# BURST_BATCH=200 BURST_CYCLES=250 (queued queries per burst, bursts per run)
# BUSY_PAIRS=10 (burst runs per server and scenario after the rounds, the
# servers taking turns; 0 skips them)
# THREADS=1 (UDP threads of gdnsd and Knot)
# PORT_BASE=15350 (uses PORT_BASE..PORT_BASE+4) KEEP=1 (keep the work directory)
# SCOPES_ONLY=1 (stop after the ECS scope comparison, benches/load/scopes.py:
# the scope distribution of gdnsd and Meridian for the same 500 IPv4 and 250
# IPv6 clients, and a harmful-scope check; about a minute)
# MERIDIAN=path/to/meridian (measure another build; skips cargo build)
# LOAD_CPU=0 SERVER_CPU=1 (taskset cores) NICE=-10 (priority of the servers and
# dnsperf; 0 leaves it alone).
# Traffic goes to 127.0.0.1 only. Everything started here is stopped by PID.

set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)
here="$root/benches/load"

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-2}
RATE=${RATE:-50000}
SCENARIOS=${SCENARIOS:-static geo1 geo1k geo flood mix tcp}
SERVERS=${SERVERS:-null knot gdnsd meridian}
CALLGRIND=${CALLGRIND:-1}
CG_RUNS=${CG_RUNS:-3}
CG_SCENARIOS=${CG_SCENARIOS:-static geo1 geo1k geo flood}
CG_RATE=${CG_RATE:-1000}
FLOOD=${FLOOD:-100000}
PORT_BASE=${PORT_BASE:-15350}
THREADS=${THREADS:-1}
BURST_BATCH=${BURST_BATCH:-200}
BURST_CYCLES=${BURST_CYCLES:-250}
BUSY_PAIRS=${BUSY_PAIRS:-10}
CONFIG="$root/zones/example.toml"

die() {
    echo "load.sh: $*" >&2
    exit 1
}

# --- what we start, and how it goes away --------------------------------------

BENCH_NAME=load
# shellcheck source=benches/lib.sh
. "$root/benches/lib.sh"

# --- tools ----------------------------------------------------------------------

missing=()
command -v dnsperf >/dev/null || missing+=(dnsperf)
command -v gdnsd >/dev/null || [ -x /usr/sbin/gdnsd ] || missing+=(gdnsd)
command -v knotd >/dev/null || [ -x /usr/sbin/knotd ] || missing+=(knot)
command -v dig >/dev/null || missing+=(bind9-dnsutils)
command -v gcc >/dev/null || missing+=(gcc libc6-dev)
command -v taskset >/dev/null || missing+=(util-linux)
command -v ss >/dev/null || missing+=(iproute2)
python3 -c 'import tomllib' 2>/dev/null || missing+=(python3)
if [ "$CALLGRIND" = 1 ]; then command -v valgrind >/dev/null || missing+=(valgrind); fi
install_missing ${missing[@]+"${missing[@]}"}
PATH="$PATH:/usr/sbin:/sbin"
python3 -c 'import tomllib' 2>/dev/null || die "python3 >= 3.11 (tomllib) is needed"

if [ -n "${MERIDIAN:-}" ]; then
    [ -x "$MERIDIAN" ] || die "MERIDIAN=$MERIDIAN is not an executable"
else
    echo "building meridian (cargo build --release) ..." >&2
    cargo build --release --quiet || die "cargo build --release failed"
    MERIDIAN="$root/target/release/meridian"
fi
gcc -O2 -Wall -pthread -o "$work/null_responder" "$here/null_responder.c" || die "cannot build the null responder"

ncpu=$(nproc)
# A raised priority (for every server and dnsperf alike) keeps other work on
# a shared machine from preempting the measured processes; it changes what
# the machine does for others during the run, not what a query costs.
prio=()
if [ "${NICE:=-10}" != 0 ] && nice -n "$NICE" true 2>/dev/null; then
    prio=(nice -n "$NICE")
else
    NICE=0
fi
if [ "$ncpu" -ge 2 ]; then
    LOAD_CPU=${LOAD_CPU:-0}
    SERVER_CPU=${SERVER_CPU:-1}
    pin_load=("${prio[@]}" taskset -c "$LOAD_CPU")
    pin_server=("${prio[@]}" taskset -c "$SERVER_CPU")
    pinning="dnsperf on CPU $LOAD_CPU, servers on CPU $SERVER_CPU"
else
    pin_load=("${prio[@]}")
    pin_server=("${prio[@]}")
    pinning="one CPU: no pinning"
fi
[ "$NICE" != 0 ] && pinning="$pinning, nice $NICE"

# --- ports and configs ------------------------------------------------------------

declare -A port
port[null]=$PORT_BASE
port[knot]=$((PORT_BASE + 1))
port[gdnsd]=$((PORT_BASE + 2))
port[meridian]=$((PORT_BASE + 3))
admin_port=$((PORT_BASE + 4))
for p in "${port[@]}" "$admin_port"; do
    if ss -Hlnut "sport = :$p" 2>/dev/null | grep -q .; then
        die "port $p is in use on this machine; set PORT_BASE to a free range"
    fi
done

python3 "$here/mirror.py" --config "$CONFIG" --out "$work" \
    --gdnsd-listen "127.0.0.1:${port[gdnsd]}" --knot-listen "127.0.0.1:${port[knot]}" --threads "$THREADS" >&2
python3 "$here/queries.py" gen --config "$CONFIG" --out "$work/queries" \
    --flood "$FLOOD" --flood-burst "$((BURST_BATCH * BURST_CYCLES))" >&2
gdnsd -c "$work/gdnsd" checkconf >"$work/gdnsd-checkconf.log" 2>&1 ||
    { cat "$work/gdnsd-checkconf.log" >&2; die "gdnsd rejects the mirrored config"; }

# --- servers -----------------------------------------------------------------------

declare -A pid_of
start_server() { # name
    local name=$1 log="$work/$1.log"
    case $name in
    null) "${pin_server[@]}" "$work/null_responder" 127.0.0.1 "${port[null]}" >"$log" 2>&1 & ;;
    knot) "${pin_server[@]}" knotd -c "$work/knot/knot.conf" >"$log" 2>&1 & ;;
    gdnsd) "${pin_server[@]}" gdnsd -c "$work/gdnsd" start >"$log" 2>&1 & ;;
    meridian)
        RUST_LOG=warn "${pin_server[@]}" "$MERIDIAN" serve --config "$CONFIG" \
            --listen "127.0.0.1:${port[meridian]}" --admin "127.0.0.1:$admin_port" >"$log" 2>&1 &
        ;;
    esac
    pid_of[$name]=$!
    pids+=("$!")
}

# dig's short answer, or nothing
ask() { # name dig-args...
    local name=$1
    shift
    dig @127.0.0.1 -p "${port[$name]}" +time=1 +tries=1 +short "$@" 2>/dev/null | grep -v '^;;' || true
}

wait_ready() { # name
    local name=$1 i
    for i in $(seq 150); do
        kill -0 "${pid_of[$name]}" 2>/dev/null || { cat "$work/$name.log" >&2; die "$name exited at start"; }
        if [ "$name" = null ]; then
            dig @127.0.0.1 -p "${port[null]}" +time=1 +tries=1 mail.gslb.example 2>/dev/null | grep -q 'flags: qr' && return
        elif [ -n "$(ask "$name" mail.gslb.example A)" ]; then
            return
        fi
        sleep 0.2
    done
    cat "$work/$name.log" >&2
    die "$name did not answer within 30 s"
}

expect_answer() { # name want dig-args...
    local name=$1 want=$2
    shift 2
    local got
    got=$(ask "$name" "$@" | tr '\n' ' ' | sed 's/ $//')
    [ "$got" = "$want" ] || die "$name: dig $* gave '${got}', expected '$want'"
}

for s in $SERVERS; do
    [ -n "${port[$s]:-}" ] || die "unknown server $s (null knot gdnsd meridian)"
    start_server "$s"
done
for s in $SERVERS; do wait_ready "$s"; done

# Meridian's memory around the flood: its routing memo keeps at most 16,384
# networks and 65,536 wide networks per thread, so the resident set after
# any number of flood passes must stay where the first left it. (The answer
# checks below already ask every flood /24 once.)
memory="$work/memory.tsv"
: >"$memory"
note_memory() { # label
    local pid=${pid_of[meridian]:-}
    [ -n "$pid" ] || return 0
    awk -v l="$1" '/^VmRSS/ {r = $2} /^VmHWM/ {h = $2} END {printf "%s\t%d\t%d\n", l, r, h}' \
        "/proc/$pid/status" >>"$memory"
}

note_memory "after start-up"

echo "checking answers ..." >&2
for s in $SERVERS; do
    [ "$s" = null ] && continue
    expect_answer "$s" 192.0.2.25 mail.gslb.example A
    expect_answer "$s" '"meridian example domain"' +tcp gslb.example TXT
    status=$(dig @127.0.0.1 -p "${port[$s]}" +time=1 +tries=1 nx-check.gslb.example A | sed -n 's/.*status: \([A-Z]*\).*/\1/p')
    [ "$status" = NXDOMAIN ] || die "$s: nx-check.gslb.example gave status '$status', expected NXDOMAIN"
    if [ "$s" != knot ]; then
        expect_answer "$s" 198.51.100.10 +subnet=193.0.0.0/24 www.gslb.example A
        expect_answer "$s" 192.0.2.10 +subnet=8.8.8.0/24 www.gslb.example A
        expect_answer "$s" 203.0.113.10 +subnet=202.12.27.0/24 www.gslb.example A
        scope=$(dig @127.0.0.1 -p "${port[$s]}" +time=1 +tries=1 +subnet=193.0.0.0/24 www.gslb.example A |
            sed -n 's/.*CLIENT-SUBNET: 193.0.0.0\/24\/\([0-9]*\).*/\1/p')
        [ -n "$scope" ] && [ "$scope" -gt 0 ] || die "$s: no ECS scope in the reply for 193.0.0.0/24"
    fi
    nogeo=() kinds=(static geo geo1 geo1k mix flood flood-burst)
    [ "$s" = knot ] && nogeo=(--no-geo) kinds=(static geo mix)
    for kind in "${kinds[@]}"; do
        python3 "$here/queries.py" check --port "${port[$s]}" --dir "$work/queries" --kind "$kind" \
            --name "$s" ${nogeo[@]+"${nogeo[@]}"} >&2 || die "$s answers the $kind queries wrongly (above)"
    done
done

note_memory "after the answer checks"

# --- ECS scopes --------------------------------------------------------------------

# The same clients to each geo server, over the same GeoIP file: how wide a
# scope each returns, and whether any covers a subnet answered otherwise.
scope_servers=()
for s in $SERVERS; do
    case $s in gdnsd | meridian) scope_servers+=(--server "$s=${port[$s]}") ;; esac
done
if [ ${#scope_servers[@]} -gt 0 ]; then
    echo "ECS scopes ..." >&2
    # gdnsd's copy of the config's GeoIP file: the same data (mirror.py).
    python3 "$here/scopes.py" --geo "$work/gdnsd/geo.mmdb" "${scope_servers[@]}" | tee "$work/scopes.txt" || die "a harmful ECS scope (above)"
fi
if [ "${SCOPES_ONLY:-0}" = 1 ]; then
    exit 0
fi

# --- measuring -------------------------------------------------------------------

cpu_ticks() { # pid -> utime+stime in clock ticks, all threads
    awk '{print $14 + $15}' "/proc/$1/stat"
}
cpu_ns() { # pid -> on-CPU nanoseconds summed over live threads (schedstat), or -1
    cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{s += $1} END {printf "%.0f\n", (NR ? s : -1)}'
}
sleeps() { # pid -> voluntary context switches summed over live threads
    cat /proc/"$1"/task/*/status 2>/dev/null | awk '/^voluntary_ctxt_switches/ {s += $2} END {print s + 0}'
}
machine_busy_ticks() { # all CPUs' busy time so far, in clock ticks
    awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat
}
# `times` must run in this shell, not in $(...): a subshell has no children yet.
ticks_of_times() { # file written by `times` -> children's CPU time in clock ticks
    tail -1 "$1" | awk '{
        t = 0
        for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); t += a[1] * 60 + a[2] }
        printf "%.0f\n", t * 100 }'
}
field() { # file label -> the number after "label:"
    sed -n "s/^ *$2: *\([0-9.]*\).*/\1/p" "$1" | head -1
}

results="$work/results.tsv"
echo -e "round\tscenario\tserver\tmode\tqps\tsent\tcompleted\tcpu_ticks\tcpu_ns\tp50_ms\tp99_ms\tothers_share\tsleeps\treconnects" >"$results"
quiet=(-O suppress=timeouts,congestion,sendfailed,sockready,unexpected)

run_one() { # round scenario server mode(max|rate)
    local round=$1 scen=$2 name=$3 mode=$4 file args=() out="$work/dnsperf.out"
    case $scen in
    static | geo | geo1 | geo1k | flood | mix) file="$work/queries/$scen.bin" args=(-c 8) ;;
    tcp) file="$work/queries/mix.bin" args=(-m tcp -c 4) ;;
    esac
    [ "$mode" = rate ] && args+=(-Q "$RATE" -v)
    local pid=${pid_of[$name]} t0 t1 n0 n1 m0 m1 c0 c1 s0 s1
    local w0 w1
    s0=$(sleeps "$pid")
    times >"$work/times.0"
    w0=$(date +%s%N)
    m0=$(machine_busy_ticks)
    t0=$(cpu_ticks "$pid")
    n0=$(cpu_ns "$pid")
    "${pin_load[@]}" dnsperf -B -d "$file" -s 127.0.0.1 -p "${port[$name]}" -l "$DURATION" -t 2 -q 200 \
        "${args[@]}" "${quiet[@]}" >"$out" 2>&1 || { cat "$out" >&2; die "dnsperf failed against $name"; }
    t1=$(cpu_ticks "$pid")
    n1=$(cpu_ns "$pid")
    m1=$(machine_busy_ticks)
    w1=$(date +%s%N)
    s1=$(sleeps "$pid")
    times >"$work/times.1"
    c0=$(ticks_of_times "$work/times.0")
    c1=$(ticks_of_times "$work/times.1")
    # What the rest of the machine (other users' work) took during the run,
    # as a share of all CPUs: the server's and dnsperf's time taken out.
    local others
    others=$(awk -v m=$((m1 - m0)) -v s=$((t1 - t0)) -v c=$((c1 - c0)) -v d="$(((w1 - w0) / 1000000))" -v n="$ncpu" \
        'BEGIN {o = (m - s - c) / (d / 1000 * 100 * n); printf "%.3f\n", (o < 0 ? 0 : o)}')
    kill -0 "$pid" 2>/dev/null || { cat "$work/$name.log" >&2; die "$name died under load"; }
    local qps sent completed reconnects lat="- -"
    reconnects=$(field "$out" "Reconnections")
    qps=$(field "$out" "Queries per second")
    sent=$(field "$out" "Queries sent")
    completed=$(field "$out" "Queries completed")
    [ -n "$completed" ] && [ "$completed" -gt 0 ] || { cat "$out" >&2; die "no answers from $name ($scen)"; }
    [ "$mode" = rate ] && lat=$(python3 "$here/report.py" latency "$out")
    read -r p50 p99 <<<"$lat"
    echo -e "$round\t$scen\t$name\t$mode\t$qps\t$sent\t$completed\t$((t1 - t0))\t$((n1 - n0))\t$p50\t$p99\t$others\t$((s1 - s0))\t${reconnects:-0}" >>"$results"
    printf '  round %s %-6s %-8s %-4s %9.0f qps  %s/%s answered\n' "$round" "$scen" "$name" "$mode" "$qps" "$completed" "$sent" >&2
}

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
# CPU per query with no sleep between queries: the server is stopped while
# a batch of queries is queued in its socket, then continued and drained.
# On this kind of virtual machine a sleep and wake-up costs the server
# several µs, so at a fixed rate a server that sleeps less often (because it
# is slower, and finds more queries waiting) looks cheaper than it is; this
# figure does not depend on that.
run_busy() { # round scenario server
    local round=$1 scen=$2 name=$3 out
    out=$("${pin_load[@]}" python3 "$here/queries.py" burst --port "${port[$name]}" --pid "${pid_of[$name]}" \
        --dir "$work/queries" --kind "$scen" --batch "$BURST_BATCH" --cycles "$BURST_CYCLES") ||
        die "$name did not answer a queued burst ($scen)"
    read -r answered ns <<<"$out"
    echo -e "$round\t$scen\t$name\tbusy\t-\t$((BURST_BATCH * BURST_CYCLES))\t$answered\t-\t$ns\t-\t-\t-\t-\t-" >>"$results"
}

# Knot answers `www` statically: a geo scenario says nothing about it.
sits_out() { # scenario server
    [ "$2" = knot ] && case $1 in geo1 | geo1k | flood) true ;; *) false ;; esac
}

runs=0
for scen in $SCENARIOS; do
    for s in $SERVERS; do sits_out "$scen" "$s" || runs=$((runs + 2 * ROUNDS)); done
done
echo "measuring: $runs dnsperf runs of ${DURATION}s ($pinning) ..." >&2
for round in $(seq "$ROUNDS"); do
    for scen in $SCENARIOS; do
        for s in $SERVERS; do
            sits_out "$scen" "$s" && continue
            [ "$scen/$s/$round" = flood/meridian/1 ] && note_memory "before the flood"
            run_one "$round" "$scen" "$s" max
            run_one "$round" "$scen" "$s" rate
            [ "$scen" = tcp ] || run_busy "$round" "$scen" "$s"
            [ "$scen/$s" = flood/meridian ] && note_memory "after flood round $round"
        done
    done
done

# The busy figure once more, in pairs: per scenario BUSY_PAIRS burst runs
# of each server, the servers taking turns (in reverse order every other
# pair), so the machine's drift over the minutes between one server's runs
# and another's (other guests on the host, what the last run left in the
# caches) falls on both alike. A pair's ratio is then steadier than the
# ratio of two medians taken minutes apart; the report gives the median
# and range of the pairs' ratios.
if [ "$BUSY_PAIRS" -gt 0 ]; then
    echo "busy pairs: $BUSY_PAIRS per scenario ..." >&2
    for scen in $SCENARIOS; do
        [ "$scen" = tcp ] && continue
        for pair in $(seq "$BUSY_PAIRS"); do
            order=$SERVERS
            [ $((pair % 2)) = 0 ] && order=$(echo "$SERVERS" | tr ' ' '\n' | tac | tr '\n' ' ')
            for s in $order; do
                sits_out "$scen" "$s" || run_busy "pair$pair" "$scen" "$s"
            done
        done
    done
fi

# --- callgrind: user-space instructions per answer ----------------------------------

cg="$work/callgrind.tsv"
: >"$cg"
# One pass of the file at CG_RATE, or CG_RUNS passes; prints "sent completed".
cg_dnsperf() { # server file passes
    dnsperf -B -d "$2" -s 127.0.0.1 -p "${port[$1]}" -n "$3" -Q "$CG_RATE" -t 5 \
        "${quiet[@]}" >"$work/cg.dnsperf.out" 2>&1 || true
    echo "$(field "$work/cg.dnsperf.out" "Queries sent") $(field "$work/cg.dnsperf.out" "Queries completed")"
}
if [ "$CALLGRIND" = 1 ]; then
    echo "callgrind: $CG_SCENARIOS, each for meridian and gdnsd ..." >&2
    for s in meridian gdnsd; do
        case " $SERVERS " in *" $s "*) ;; *) continue ;; esac
        stop_pid "${pid_of[$s]}"
        vg=(valgrind --tool=callgrind --callgrind-out-file="$work/cg.$s.%p" --dump-instr=no)
        case $s in
        meridian)
            RUST_LOG=warn "${pin_server[@]}" "${vg[@]}" "$MERIDIAN" serve --config "$CONFIG" \
                --listen "127.0.0.1:${port[meridian]}" --admin "127.0.0.1:$admin_port" >"$work/cg.$s.log" 2>&1 &
            ;;
        gdnsd) "${pin_server[@]}" "${vg[@]}" gdnsd -c "$work/gdnsd" start >"$work/cg.$s.log" 2>&1 & ;;
        esac
        pid_of[$s]=$!
        pids+=("$!")
        for i in $(seq 600); do
            [ -n "$(ask "$s" +subnet=193.0.0.0/24 www.gslb.example A)" ] && break
            kill -0 "${pid_of[$s]}" 2>/dev/null || die "$s under callgrind exited (see $work/cg.$s.log)"
            sleep 0.5
        done
        for scen in $CG_SCENARIOS; do
            file="$work/queries/$scen.bin"
            [ -f "$file" ] || die "CG_SCENARIOS: no query file for $scen"
            # Warm up, then count only the measured queries. The flood is
            # warmed up on geo's /24s, which it does not share: every
            # measured flood query is one the server has not seen.
            passes=$CG_RUNS warm=$file
            [ "$scen" = flood ] && passes=1 warm="$work/queries/geo.bin"
            cg_dnsperf "$s" "$warm" 1 >/dev/null
            callgrind_control -z "${pid_of[$s]}" >/dev/null 2>&1 || die "callgrind_control -z failed for $s"
            read -r sent completed <<<"$(cg_dnsperf "$s" "$file" "$passes")"
            [ -n "$completed" ] && [ "$completed" -gt 0 ] || die "$s answered no $scen queries under callgrind"
            rm -f "$work"/cg."$s".[0-9]*
            callgrind_control -d "${pid_of[$s]}" >/dev/null 2>&1 || die "callgrind_control -d failed for $s"
            sleep 1
            # "totals:" (or, in older files, "summary:") is the dump's event count.
            ir=$(cat "$work"/cg."$s".[0-9]* 2>/dev/null |
                awk '/^totals:/ {t += $2} /^summary:/ {s += $2} END {printf "%.0f\n", (t ? t : s)}')
            echo -e "$s\t$scen\t$sent\t$completed\t$ir" >>"$cg"
            echo "  callgrind $s $scen: $completed of $sent answered, $ir instructions" >&2
        done
        stop_pid "${pid_of[$s]}"
    done
fi

# --- report ------------------------------------------------------------------------

cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
python3 "$here/report.py" table "$results" "$cg" \
    --machine "${cpu_model:-unknown CPU}, $ncpu cores, Linux $(uname -r)" \
    --setup "$ROUNDS rounds x ${DURATION}s per run; $pinning; UDP threads: null 1, meridian 1 (one per CPU it may use), gdnsd and knot $THREADS; bursts: $BURST_CYCLES x $BURST_BATCH queries" \
    --rate "$RATE" --flood "$FLOOD" --load "$load_start" --load-end "$(cut -d' ' -f1-3 /proc/loadavg)" --memory "$memory"
echo "load.sh: $((SECONDS / 60)) min $((SECONDS % 60)) s in all" >&2
