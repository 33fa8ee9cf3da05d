#!/usr/bin/env bash
# HTTP benchmark: consent-decision writes with signed receipts per second at 16 concurrent
# clients, against `GET /healthz` of the same binary measured in the same run (the
# hello-world baseline), and the server's peak resident memory (VmHWM).
#
#   scripts/bench-http.sh
#   CUSTOS_BENCH_POSTGRES=postgres://postgres@127.0.0.1:5432/custos_bench scripts/bench-http.sh
#
# With CUSTOS_BENCH_POSTGRES set, a second server runs against that (existing, preferably
# empty) PostgreSQL database with a fresh master key. Settings: CONCURRENCY (16),
# DURATION (10 s measured), WARMUP (1 s), LOADGEN_THREADS (1). Traffic goes to 127.0.0.1
# only, and every load run stops by itself after WARMUP + DURATION seconds.
#
# The server runs with --write-rate-limit 0: the per-address write limit (default 20/s)
# would otherwise cap a load that comes from one address at 20 requests/s.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

CONCURRENCY=${CONCURRENCY:-16}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-1}
LOADGEN_THREADS=${LOADGEN_THREADS:-1}
# Fides 2.86 on this kind of machine: 64 consent writes/s, ~470 MB RSS.
FIDES_RPS=64
FIDES_RSS_MB=470

cargo build --release -p custos -p custos-loadgen
BIN="$ROOT/target/release/custos"
LOADGEN="$ROOT/target/release/custos-loadgen"

WORK=$(mktemp -d)
SERVER_PID=""
stop_server() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID"
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    SERVER_PID=""
}
cleanup() {
    stop_server
    rm -rf "$WORK"
}
trap cleanup EXIT

# start_server LABEL [extra serve arguments...]; sets SERVER_PID and URL.
start_server() {
    local label=$1
    shift
    mkdir -p "$WORK/$label"
    # Run from the scratch directory so no custos.toml of the caller is picked up, and
    # without inherited CUSTOS_* settings except those passed here.
    (
        cd "$WORK/$label"
        exec env -u CUSTOS_DATABASE_URL -u CUSTOS_VAULT_URL -u CUSTOS_MASTER_KEY_FILE \
            -u CUSTOS_CONFIG -u CUSTOS_LISTEN -u CUSTOS_DATA_DIR -u CUSTOS_WRITE_RATE_LIMIT \
            "$BIN" serve --data-dir "$WORK/$label/data" --listen 127.0.0.1:0 \
            --log-format text --write-rate-limit 0 "$@"
    ) >"$WORK/$label/server.out" 2>"$WORK/$label/server.err" &
    SERVER_PID=$!
    URL=""
    for _ in $(seq 1 300); do
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            echo "the server exited during start-up:" >&2
            cat "$WORK/$label/server.err" >&2
            exit 1
        fi
        URL=$(sed -n 's/^listening on \(http:\/\/[^ ]*\).*/\1/p' "$WORK/$label/server.out")
        if [ -n "$URL" ] && curl -fsS "$URL/healthz" >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.1
    done
    echo "the server did not answer /healthz within 30 s" >&2
    exit 1
}

# kv KEY LINE: the value of KEY=... in a loadgen result line.
kv() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<" $2"; }
# status_kb FIELD: a /proc/PID/status figure of the server, in kB.
status_kb() { awk -v f="$1:" '$1 == f { print $2 }' "/proc/$SERVER_PID/status"; }

load() {
    "$LOADGEN" --url "$URL" --mode "$1" --concurrency "$CONCURRENCY" \
        --duration-secs "$DURATION" --warmup-secs "$WARMUP" --threads "$LOADGEN_THREADS" \
        --server-pid "$SERVER_PID"
}

SUMMARY=()

# run_backend LABEL [extra serve arguments...]
run_backend() {
    local label=$1
    shift
    start_server "$label" "$@"
    local idle_kb
    idle_kb=$(status_kb VmRSS)
    echo "== $label: server pid $SERVER_PID at $URL, idle RSS $((idle_kb * 1024 / 1000000)) MB" >&2
    local h c
    h=$(load healthz)
    c=$(load consent)
    local hwm_kb rss_kb
    hwm_kb=$(status_kb VmHWM)
    rss_kb=$(status_kb VmRSS)
    stop_server
    local h_rps c_rps
    h_rps=$(kv rps "$h")
    c_rps=$(kv rps "$c")
    SUMMARY+=("$(awk -v l="$label" -v hr="$h_rps" -v hp50="$(kv p50_ms "$h")" -v hp99="$(kv p99_ms "$h")" \
        -v he="$(kv errors "$h")" -v hcpu="$(kv server_cpu_us_per_req "$h")" \
        -v cr="$c_rps" -v cp50="$(kv p50_ms "$c")" -v cp99="$(kv p99_ms "$c")" \
        -v ce="$(kv errors "$c")" -v ccpu="$(kv server_cpu_us_per_req "$c")" \
        -v cs="$(kv server_cpu_s "$c")" -v cd="$(kv duration_s "$c")" \
        -v hwm="$hwm_kb" -v rss="$rss_kb" -v frps="$FIDES_RPS" -v frss="$FIDES_RSS_MB" \
        'BEGIN {
            printf "| %s | healthz (baseline) | %.0f | %.3f | %.3f | %d | %.1f | | |\n", l, hr, hp50, hp99, he, hcpu;
            mb = hwm * 1024 / 1e6;
            printf "| %s | consent write + signed receipt | %.0f | %.3f | %.3f | %d | %.1f (%.2f cores) | %.1f MB (now %.1f) | consent/healthz %.4f; consent/Fides ×%.1f; RSS/Fides %.3f |\n",
                l, cr, cp50, cp99, ce, ccpu, cs / cd, mb, rss * 1024 / 1e6, cr / hr, cr / frps, mb / frss;
        }')")
}

run_backend sqlite
if [ -n "${CUSTOS_BENCH_POSTGRES:-}" ]; then
    MASTER_KEY=$("$BIN" keygen)
    CUSTOS_MASTER_KEY="$MASTER_KEY" run_backend postgres --database-url "$CUSTOS_BENCH_POSTGRES"
fi

echo
echo "machine: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1), $(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
echo "load: $CONCURRENCY clients, ${WARMUP} s warm-up + ${DURATION} s measured, loadgen threads $LOADGEN_THREADS; Fides 2.86 reference: ${FIDES_RPS} writes/s, ${FIDES_RSS_MB} MB RSS"
echo
echo "| backend | request | requests/s | p50 ms | p99 ms | errors | server CPU µs/request | server peak RSS | ratios |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---|"
printf '%s\n' "${SUMMARY[@]}"
