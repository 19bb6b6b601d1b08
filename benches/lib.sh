# Shared by the benchmark scripts (sourced, not run): the work directory,
# the processes a run starts and how they go away, and installing what is
# missing from Debian.
#
# Before sourcing, set BENCH_NAME (used in the work directory's name). Every
# process a script starts goes in `pids` and is stopped by PID only, since
# other work may run on the same machine; on exit, a failed run (or KEEP=1)
# keeps the work directory, whose logs are then the only clue.

work=$(mktemp -d "${TMPDIR:-/tmp}/meridian-$BENCH_NAME.XXXXXX")
pids=()

forget_pid() {
    local rest=() p
    for p in "${pids[@]}"; do [ "$p" = "$1" ] || rest+=("$p"); done
    pids=(${rest[@]+"${rest[@]}"})
}

# SIGTERM, then SIGKILL after 5 s; SIGCONT first in case a burst left the
# process stopped.
stop_pid() {
    kill -TERM "$1" 2>/dev/null || true
    kill -CONT "$1" 2>/dev/null || true
    local i
    for i in $(seq 50); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
    forget_pid "$1"
}

cleanup() {
    local status=$? pid
    for pid in ${pids[@]+"${pids[@]}"}; do stop_pid "$pid"; done
    if [ "${KEEP:-0}" = 1 ] || [ "$status" -ne 0 ]; then
        echo "work directory kept: $work" >&2
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# install_missing PACKAGE...: apt-get install them (with sudo unless root).
# On a host with systemd, server packages (nginx, gdnsd, knot) also start
# the distro's own service on its usual port; the benchmarks do not use it.
install_missing() {
    [ $# -gt 0 ] || return 0
    local sudo=""
    [ "$(id -u)" = 0 ] || sudo=sudo
    echo "installing $* ..." >&2
    $sudo apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
