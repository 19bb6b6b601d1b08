#!/usr/bin/env bash
# Chaos soak: the world of tests/world/ (three zones with nginx, three
# Meridian nodes in a cluster, unbound forwarding ECS, all in private network
# namespaces) run for a set time while faults come on a random schedule
# (nginx killed, hung with SIGSTOP or answering 500; one node's path to one
# zone cut; a node killed and restarted), one every 30-60 s, each lasting
# 8-20 s, with clients resolving and fetching throughout. Writes
# report.md and timeline.svg to the output directory.
#
# Usage, as root:  bash benches/soak.sh [--duration 600] [--seed 1] [--out docs/soak]
#   MERIDIAN_BIN=path   the binary (default target/debug/meridian; build it first)
# Needs nginx, unbound, nftables, iproute2, dig and curl (apt-get install).
set -euo pipefail
cd "$(dirname "$0")/.."
exec /usr/bin/python3 tests/world/world.py soak "$@"
