#!/usr/bin/env bash
# HTTP benchmark: anonymous catalog searches per second (GET /api/v1/items with the
# query mix of `custos-loadgen --mode search`) against `GET /healthz` of the same binary
# in the same run (the hello-world baseline). Target: search ≥ 40 % of healthz.
#
#   scripts/bench-search.sh
#
# The server starts with `--demo` on an empty SQLite data directory, so the catalog is
# the generated demonstration catalog (DEMO_ITEMS items, default 240, with pictures).
# Settings: CONCURRENCY (16), DURATION (10 s measured), WARMUP (2 s), LOADGEN_THREADS (1),
# DEMO_ITEMS (240), PAGE_CACHE (on; `off` measures every search without the cache of
# result pages). Traffic goes to 127.0.0.1 only, and every load run stops by itself.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

CONCURRENCY=${CONCURRENCY:-16}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
LOADGEN_THREADS=${LOADGEN_THREADS:-1}
DEMO_ITEMS=${DEMO_ITEMS:-240}
PAGE_CACHE=${PAGE_CACHE:-on}

cargo build --release -p custos -p custos-loadgen
BIN="$ROOT/target/release/custos"
LOADGEN="$ROOT/target/release/custos-loadgen"

WORK=$(mktemp -d)
SERVER_PID=""
cleanup() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID"
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

printf '[catalog]\ndemo_items = %d\nsearch_page_cache = %s\n' "$DEMO_ITEMS" \
    "$([ "$PAGE_CACHE" = off ] && echo false || echo true)" >"$WORK/custos.toml"
started=$(date +%s.%N)
(
    cd "$WORK"
    exec env -u CUSTOS_DATABASE_URL -u CUSTOS_VAULT_URL -u CUSTOS_MASTER_KEY_FILE \
        -u CUSTOS_CONFIG -u CUSTOS_LISTEN -u CUSTOS_DATA_DIR -u CUSTOS_WRITE_RATE_LIMIT \
        "$BIN" serve --data-dir "$WORK/data" --listen 127.0.0.1:0 --log-format text --demo
) >"$WORK/server.out" 2>"$WORK/server.err" &
SERVER_PID=$!
URL=""
for _ in $(seq 1 1200); do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        echo "the server exited during start-up:" >&2
        cat "$WORK/server.err" >&2
        exit 1
    fi
    URL=$(sed -n 's/^listening on \(http:\/\/[^ ]*\).*/\1/p' "$WORK/server.out")
    if [ -n "$URL" ] && curl -fsS "$URL/healthz" >/dev/null 2>&1; then
        break
    fi
    sleep 0.1
done
[ -n "$URL" ] || { echo "the server did not start within 120 s" >&2; exit 1; }
ready=$(date +%s.%N)
items=$(curl -fsS "$URL/api/v1/items?limit=1" | sed -n 's/.*"total":\([0-9]*\).*/\1/p')
echo "== server pid $SERVER_PID at $URL: $items items, demo catalog created and started in $(awk -v a="$started" -v b="$ready" 'BEGIN { printf "%.1f", b - a }') s" >&2

kv() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<" $2"; }
load() {
    "$LOADGEN" --url "$URL" --mode "$1" --concurrency "$CONCURRENCY" \
        --duration-secs "$DURATION" --warmup-secs "$WARMUP" --threads "$LOADGEN_THREADS" \
        --server-pid "$SERVER_PID"
}
h=$(load healthz)
s=$(load search)
hwm_kb=$(awk '$1 == "VmHWM:" { print $2 }' "/proc/$SERVER_PID/status")

echo
echo "machine: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1), $(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
echo "load: $CONCURRENCY clients, ${WARMUP} s warm-up + ${DURATION} s measured, loadgen threads $LOADGEN_THREADS; catalog: $items demo items; page cache $PAGE_CACHE"
echo
echo "| request | requests/s | p50 ms | p99 ms | errors | server CPU µs/request |"
echo "|---|---:|---:|---:|---:|---:|"
for line in "$h" "$s"; do
    printf '| %s | %.0f | %s | %s | %s | %s |\n' "$(kv mode "$line")" "$(kv rps "$line")" \
        "$(kv p50_ms "$line")" "$(kv p99_ms "$line")" "$(kv errors "$line")" "$(kv server_cpu_us_per_req "$line")"
done
awk -v s="$(kv rps "$s")" -v h="$(kv rps "$h")" -v m="$hwm_kb" \
    'BEGIN { printf "\nsearch/healthz = %.3f (target ≥ 0.40); server peak RSS %.1f MB\n", s / h, m * 1024 / 1e6 }'
