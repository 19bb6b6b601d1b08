#!/usr/bin/env bash
# User-space instructions and heap allocations per fast-path answer, per
# query shape (see benches/answer_cost.rs): callgrind at two query counts,
# the difference divided by the difference in counts, so start-up and
# warm-up cancel. MODES="hit subnets random static nxdomain junk" N=50000.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
MODES=${MODES:-"hit subnets random static nxdomain junk"}
N=${N:-50000}
bin=$(cargo bench --bench answer_cost --no-run --message-format=json 2>/dev/null |
    python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "answer_cost" and m.get("executable"):
        print(m["executable"])')
[ -x "$bin" ] || { echo "answer_cost: bench binary not built" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf '%-10s %14s %22s\n' mode instructions allocations
for mode in $MODES; do
    ir=()
    for n in "$N" "$((2 * N))"; do
        valgrind --tool=callgrind --callgrind-out-file="$work/cg.$mode.$n" \
            "$bin" "$mode" "$n" >"$work/out.$mode.$n" 2>/dev/null
        ir+=("$(awk '/^(totals|summary):/ {print $2; exit}' "$work/cg.$mode.$n")")
    done
    allocs=$(sed -n 's/.*answers, \([0-9.]*\) allocations per answer.*/\1/p' "$work/out.$mode.$((2 * N))")
    printf '%-10s %14.0f %22s\n' "$mode" "$(echo "(${ir[1]} - ${ir[0]}) / $N" | bc -l)" "$allocs"
done
