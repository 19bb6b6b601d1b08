#!/usr/bin/env bash
# A short fuzzing run of both targets, for CI and for a quick local check.
#
#   bash fuzz/run-short.sh [SECONDS]     # default 20 seconds per target
#   FUZZ_TARGETS=config bash fuzz/run-short.sh 30   # only some targets
#
# Installs cargo-fuzz if it is missing, builds the targets (release, with
# debug assertions and AddressSanitizer: cargo-fuzz's defaults) and runs each
# for SECONDS with -max_total_time, starting from the committed corpus in
# fuzz/corpus/<target>/. New inputs go to a temporary directory, so the
# checkout is left as it was. Exits non-zero when a target crashes (a panic,
# a broken invariant, a sanitizer report, a leak, an input running over 10 s
# or memory over 2 GB); the crashing input is kept in fuzz/artifacts/<target>/
# and the command to reproduce it is printed.
#
# cargo-fuzz passes a nightly-only flag (-Zsanitizer=address) to rustc. Only
# a stable toolchain is available here, so RUSTC_BOOTSTRAP=1 lets stable
# accept it; see fuzz/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-20}"
case "$seconds" in
  '' | *[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 2 ;;
esac

export RUSTC_BOOTSTRAP=1
# The version this was written and tested with; --locked builds it with
# the dependency versions it was released with.
CARGO_FUZZ_VERSION=0.13.2
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz $CARGO_FUZZ_VERSION"
  cargo install --locked cargo-fuzz --version "$CARGO_FUZZ_VERSION"
fi
cargo fuzz --version

# FUZZ_TARGETS="config" runs a subset (default: both).
read -r -a targets <<<"${FUZZ_TARGETS:-request config}"
echo "fuzz: building ${targets[*]}"
for target in "${targets[@]}"; do
  cargo fuzz build "$target"
done

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

status=0
for target in "${targets[@]}"; do
  mkdir -p "$work/$target" "fuzz/artifacts/$target"
  args=(
    "-max_total_time=$seconds"
    -timeout=10
    -rss_limit_mb=2048
    -print_final_stats=1
    "-dict=fuzz/$target.dict"
  )
  case "$target" in
    request) args+=(-max_len=4096) ;;
    config) args+=(-max_len=16384) ;;
  esac
  echo "fuzz: running $target for ${seconds}s"
  if ! cargo fuzz run "$target" "$work/$target" "fuzz/corpus/$target" -- "${args[@]}" \
    >"$work/$target.log" 2>&1; then
    status=1
    # What broke (the panic or sanitizer report), then libFuzzer's summary
    # with the saved input.
    grep -E -A3 'panicked at|ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)' "$work/$target.log" | head -n 40 || true
    tail -n 25 "$work/$target.log"
    echo "fuzz: $target CRASHED; reproduce with:" >&2
    for artifact in "fuzz/artifacts/$target"/*; do
      [ -e "$artifact" ] || continue
      echo "  RUSTC_BOOTSTRAP=1 cargo fuzz run $target $artifact" >&2
    done
  else
    # The final stats: executions, rate, coverage.
    grep -E '^(stat::|Done |#[0-9]+[[:space:]]+DONE)' "$work/$target.log" || tail -n 5 "$work/$target.log"
    echo "fuzz: $target ok ($(find "$work/$target" -type f | wc -l) new inputs, not kept)"
  fi
done
exit "$status"
