#!/usr/bin/env bash
# Instructions per request, bare and behind the gateway, counted by callgrind: runs
# `examples/gateway_requests.rs` for each scenario and router, counting only inside
# `send_requests` (N requests after one warm-up request), and prints instructions per
# request and the gateway's difference. Instruction counts do not depend on the load of the
# machine, unlike the wall clock.
#
#   scripts/callgrind-e2e.sh                 # N=2000 requests per run
#   N=500 SCENARIOS="api_key" scripts/callgrind-e2e.sh
#
# The callgrind files stay in OUT (default target/callgrind-e2e) for
#   callgrind_annotate --inclusive=yes OUT/callgrind.api_key.gated.out | head -60
set -euo pipefail

cd "$(dirname "$0")/.."
N=${N:-2000}
SCENARIOS=${SCENARIOS:-"public api_key bearer post"}
target_dir=${CARGO_TARGET_DIR:-target}
OUT=${OUT:-$target_dir/callgrind-e2e}
mkdir -p "$OUT"

export CARGO_PROFILE_RELEASE_DEBUG=${CARGO_PROFILE_RELEASE_DEBUG:-true}
cargo build --release --example gateway_requests
driver="$target_dir/release/examples/gateway_requests"

# Prints the instructions per request of scenario $1 through router $2 (bare or gated).
count() {
    local file="$OUT/callgrind.$1.$2.out"
    valgrind --tool=callgrind --callgrind-out-file="$file" \
        --toggle-collect='*send_requests*' "$driver" "$1" "$2" "$N" >/dev/null 2>&1
    awk -v n="$N" '/^summary:/ {printf "%.0f\n", $2 / n}' "$file"
}

printf '%-8s %12s %12s %12s\n' scenario bare_Ir/req gated_Ir/req difference
for scenario in $SCENARIOS; do
    bare=$(count "$scenario" bare)
    gated=$(count "$scenario" gated)
    printf '%-8s %12s %12s %12s\n' "$scenario" "$bare" "$gated" "$((gated - bare))"
done
