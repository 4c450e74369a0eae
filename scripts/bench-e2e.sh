#!/usr/bin/env bash
# The gateway's cost through a real server: `examples/bench_server.rs` serves the same axum
# routes bare (port 8081) and behind `GatewaySecurityLayer` (port 8082); `wrk -t1 -c16`
# drives each scenario against both, in the same session, in ROUNDS rounds of bare, gated
# and wrapped back to back, and prints the median round's gated/bare ratio with the lowest
# and highest round's, the extra time per request, and the server's extra user CPU time
# per request (from /proc; steadier than the throughput on a busy host).
#
#   scripts/bench-e2e.sh                      # 9 rounds of 3 s per scenario and router
#   DURATION=10s ROUNDS=3 scripts/bench-e2e.sh
#
# The server is pinned to SERVER_CPU (default 0) and wrk to WRK_CPU (default 1) with
# taskset. Run it on a quiet machine: it prints `uptime` before and after, and a load
# average above ~0.5 means the ratios are noisy. Installs wrk with apt-get when it is
# missing and we are root. The build uses the release profile with debug info, shared with
# scripts/callgrind-e2e.sh.
set -euo pipefail

cd "$(dirname "$0")/.."
DURATION=${DURATION:-3s}
ROUNDS=${ROUNDS:-9}
CONNECTIONS=${CONNECTIONS:-16}
SERVER_CPU=${SERVER_CPU:-0}
WRK_CPU=${WRK_CPU:-1}
BARE_PORT=${BARE_PORT:-8081}
GATED_PORT=${GATED_PORT:-8082}
WRAPPED_PORT=${WRAPPED_PORT:-8083}
SCENARIOS=${SCENARIOS:-"public api_key bearer post"}

if ! command -v wrk >/dev/null; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
        apt-get install -y wrk >/dev/null || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }
    else
        echo "wrk is missing: install it (apt-get install wrk) and run again" >&2
        exit 1
    fi
fi

export CARGO_PROFILE_RELEASE_DEBUG=${CARGO_PROFILE_RELEASE_DEBUG:-true}
cargo build --release --example bench_server
target_dir=${CARGO_TARGET_DIR:-target}
server="$target_dir/release/examples/bench_server"

work=$(mktemp -d)
trap 'kill "$server_pid" 2>/dev/null || true; rm -rf "$work"' EXIT
BENCH_BODY_FILE="$work/body.json" taskset -c "$SERVER_CPU" "$server" "$BARE_PORT" "$GATED_PORT" "$WRAPPED_PORT" \
    >"$work/server.out" &
server_pid=$!
for _ in $(seq 100); do
    grep -q '^ready$' "$work/server.out" 2>/dev/null && break
    sleep 0.1
done
grep -q '^ready$' "$work/server.out" || { echo "the server did not start" >&2; exit 1; }
api_key=$(sed -n 's/^api_key=//p' "$work/server.out")
token=$(sed -n 's/^token=//p' "$work/server.out")

cat >"$work/post.lua" <<LUA
local file = io.open("$work/body.json", "rb")
wrk.method = "POST"
wrk.body = file:read("*a")
file:close()
wrk.headers["Content-Type"] = "application/json"
wrk.headers["x-api-key"] = "$api_key"
LUA

# The server's CPU time so far, user and system, in clock ticks.
cpu_ticks() {
    awk '{print $14, $15}' "/proc/$server_pid/stat"
}

# Prints the requests per second of one wrk run of scenario $1 against port $2, and the
# server's user CPU time per request in µs (its own code, hyper's and ours, without the
# kernel's: a steadier measure of the gateway's cost than the throughput, which also moves
# with how often the server must wake wrk up).
run() {
    local scenario=$1 port=$2 args=()
    case $scenario in
        public) args=("http://127.0.0.1:$port/health") ;;
        api_key) args=(-H "x-api-key: $api_key" "http://127.0.0.1:$port/orders/42") ;;
        bearer) args=(-H "Authorization: Bearer $token" "http://127.0.0.1:$port/orders/42") ;;
        post) args=(-s "$work/post.lua" "http://127.0.0.1:$port/orders") ;;
        *) echo "unknown scenario $scenario" >&2; exit 1 ;;
    esac
    local out before after
    before=$(cpu_ticks)
    out=$(taskset -c "$WRK_CPU" wrk -t1 -c"$CONNECTIONS" -d"$DURATION" "${args[@]}")
    after=$(cpu_ticks)
    if grep -q 'Non-2xx' <<<"$out"; then
        echo "scenario $scenario on port $port got non-2xx answers:" >&2
        echo "$out" >&2
        exit 1
    fi
    local rps requests
    rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    requests=$(awk '/requests in/ {print $1}' <<<"$out")
    awk -v rps="$rps" -v n="$requests" -v b="$before" -v a="$after" -v hz="$(getconf CLK_TCK)" \
        'BEGIN { split(b, x, " "); split(a, y, " "); printf "%s %.3f\n", rps, (y[1] - x[1]) / hz * 1e6 / n }'
}

echo "# $(date -u +%FT%TZ) $(nproc) CPUs; server on CPU $SERVER_CPU, wrk -t1 -c$CONNECTIONS on CPU $WRK_CPU, $ROUNDS x $DURATION"
echo "# before: $(uptime)"
# Warm up the servers (the bearer token cache fills on the first request).
for scenario in $SCENARIOS; do
    for port in "$BARE_PORT" "$GATED_PORT" "$WRAPPED_PORT"; do
        DURATION=1s run "$scenario" "$port" >/dev/null
    done
done
# gated: the gateway applied with `Router::layer`; wrapped: around the whole router.
# Each round runs the three back to back (in reverse order every other round, so that a
# drift of the machine's speed falls on both sides alike) and gives its own gated ÷ bare
# ratio; the table prints the median round and, in brackets, the lowest and highest: the
# spread says how far the machine's noise reaches in this session.
median() { printf '%s\n' "$@" | sort -g | sed -n "$(( ($# + 1) / 2 ))p"; }
range() { printf '%s\n' "$@" | sort -g | sed -n '1p;$p' | paste -sd- -; }
printf '%-8s %10s %7s %-13s %9s %7s %-13s %9s %9s %9s\n' scenario bare_rps ratio range \
    extra_us w_ratio w_range w_extra user_gated user_wrap
for scenario in $SCENARIOS; do
    bares=() ratios=() wratios=() extras=() wextras=() users=() wusers=()
    for round in $(seq "$ROUNDS"); do
        if (( round % 2 )); then
            read -r bare bare_us < <(run "$scenario" "$BARE_PORT")
            read -r gated gated_us < <(run "$scenario" "$GATED_PORT")
            read -r wrapped wrapped_us < <(run "$scenario" "$WRAPPED_PORT")
        else
            read -r wrapped wrapped_us < <(run "$scenario" "$WRAPPED_PORT")
            read -r gated gated_us < <(run "$scenario" "$GATED_PORT")
            read -r bare bare_us < <(run "$scenario" "$BARE_PORT")
        fi
        bares+=("$bare")
        ratios+=("$(awk -v g="$gated" -v b="$bare" 'BEGIN {printf "%.3f", g / b}')")
        wratios+=("$(awk -v w="$wrapped" -v b="$bare" 'BEGIN {printf "%.3f", w / b}')")
        extras+=("$(awk -v g="$gated" -v b="$bare" 'BEGIN {printf "%.2f", 1e6 / g - 1e6 / b}')")
        wextras+=("$(awk -v w="$wrapped" -v b="$bare" 'BEGIN {printf "%.2f", 1e6 / w - 1e6 / b}')")
        users+=("$(awk -v g="$gated_us" -v b="$bare_us" 'BEGIN {printf "%.2f", g - b}')")
        wusers+=("$(awk -v w="$wrapped_us" -v b="$bare_us" 'BEGIN {printf "%.2f", w - b}')")
    done
    # user_*: the server's extra user CPU time per request over bare, in µs (medians).
    printf '%-8s %10.0f %7s %-13s %9s %7s %-13s %9s %9s %9s\n' "$scenario" \
        "$(median "${bares[@]}")" "$(median "${ratios[@]}")" "[$(range "${ratios[@]}")]" \
        "$(median "${extras[@]}")" "$(median "${wratios[@]}")" "[$(range "${wratios[@]}")]" \
        "$(median "${wextras[@]}")" "$(median "${users[@]}")" "$(median "${wusers[@]}")"
done
echo "# after: $(uptime)"
