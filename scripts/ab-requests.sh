#!/usr/bin/env bash
# CPU time per request of two builds of `examples/gateway_requests.rs` (for example one
# built at an older commit, copied aside, and one built now), run alternately so that both
# see the same moments of a shared machine: `perf stat -e task-clock` (the process's own CPU
# time, not the wall clock) for ROUNDS runs of N requests each, pinned to CPU 0; prints the
# median of each and the difference. Native code, unlike callgrind: SHA-NI, memmove and the
# clock cost what they cost.
#
#   cp target/release/examples/gateway_requests /tmp/before      # at the older commit
#   cargo build --release --example gateway_requests             # now
#   scripts/ab-requests.sh /tmp/before target/release/examples/gateway_requests api_key wrapped
#
# Scenarios and routers are the driver's (public|api_key|bearer|post, bare|gated|wrapped).
# Each run includes building the app once; with the default N it is under 1 % of the run.
set -euo pipefail

A=$1 B=$2 scenario=$3 router=$4
ROUNDS=${ROUNDS:-7}
N=${N:-500000}

command -v perf >/dev/null || { echo "perf is missing (apt-get install linux-perf)" >&2; exit 1; }

# CPU milliseconds of one run of build $1.
cpu_ms() {
    perf stat -x, -e task-clock taskset -c 0 "$1" "$scenario" "$router" "$N" 2>&1 >/dev/null |
        awk -F, '/task-clock/ {print $1}'
}

a_runs=() b_runs=()
for _ in $(seq "$ROUNDS"); do
    a_runs+=("$(cpu_ms "$A")")
    b_runs+=("$(cpu_ms "$B")")
done
median() { printf '%s\n' "$@" | sort -n | sed -n "$(( ($# + 1) / 2 ))p"; }
awk -v a="$(median "${a_runs[@]}")" -v b="$(median "${b_runs[@]}")" -v n="$N" \
    -v what="$scenario $router" 'BEGIN {
    printf "%s: A %.0f ns  B %.0f ns  B-A %+.0f ns per request\n", what, a * 1e6 / n, b * 1e6 / n,
        (b - a) * 1e6 / n
}'
