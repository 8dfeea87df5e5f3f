#!/usr/bin/env bash
# Load benchmark of `aegis serve` (issue 5), with wrk against 127.0.0.1:
#   direct   wrk -> trivial upstream (nginx `return 200 '{"ok":true}'`)
#   nginx    wrk -> nginx reverse proxy (keepalive pool) -> trivial upstream
#   gateway  wrk -> aegis serve /upstream/trivial/ok (API key, scope, GCRA rate limit in SQLite (+ budgets
#            with --budget), hash-chained audit log, metrics) -> trivial upstream
#   model    wrk -> aegis serve POST /v1/models/demo-fraud/predict (bundled local model, in-process)
# then a soak at twice the connections against a fresh gateway, after which the audit chain is verified and
# its inference records are counted against the requests the gateway answered (its /metrics).
# Targets: gateway p50 - direct p50 <= 0.5 ms; gateway rps >= 80 % of nginx rps (same run); soak: audited
# records == answered requests, chain intact, no 5xx. See bench/gateway/README.md.
#
# Usage: bench/gateway.sh [--repeat N] [--duration S] [--soak-seconds S] [--connections C] [--warmup S]
#                         [--no-pin] [--no-build] [--port-base P] [--budget N]
# --budget N gives the benchmark keys daily and monthly budgets of N (default 0: unlimited, and then the
# gateway charges only the rate limiter; with budgets it charges the day and month counters too).
# Results: bench/gateway/results.md (also printed); raw wrk output and artifacts in bench/work/gateway/.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

REPEAT=3          # rounds; each round runs every target once per mode, interleaved
DURATION=10       # seconds per measured wrk run
SOAK=60           # seconds of soak
CONNS=32          # connections of the throughput runs; the soak uses twice as many
WARMUP=3          # seconds of warm-up per target
PIN=1             # wrk on CPU 0, every server on CPU 1
BUILD=1
PORT_BASE=18090
BUDGET=0          # daily budget of the benchmark keys; 0 = unlimited, so no budget counter is charged
while [ $# -gt 0 ]; do
  case "$1" in
    --repeat) REPEAT="$2"; shift 2 ;;
    --duration) DURATION="$2"; shift 2 ;;
    --soak-seconds) SOAK="$2"; shift 2 ;;
    --connections) CONNS="$2"; shift 2 ;;
    --warmup) WARMUP="$2"; shift 2 ;;
    --no-pin) PIN=0; shift ;;
    --no-build) BUILD=0; shift ;;
    --port-base) PORT_BASE="$2"; shift 2 ;;
    --budget) BUDGET="$2"; shift 2 ;;
    -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done

# --- tools ---------------------------------------------------------------------------------------------
need=()
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || need+=(nginx-light)
command -v sqlite3 >/dev/null || need+=(sqlite3)
command -v curl >/dev/null || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
  apt-get install -y "${need[@]}" || { apt-get update && apt-get install -y "${need[@]}"; }
fi
command -v python3 >/dev/null || { echo "python3 is needed for the summary" >&2; exit 2; }
if [ "$BUILD" = 1 ]; then
  cargo build --release -q -p aegis-cli
fi
AEGIS=${AEGIS_BIN:-$ROOT/target/release/aegis}   # AEGIS_BIN: another build, for a smoke test
[ -x "$AEGIS" ] || { echo "missing $AEGIS (cargo build --release -p aegis-cli)" >&2; exit 2; }

P_UP=$PORT_BASE; P_NGX=$((PORT_BASE + 1)); P_GW=$((PORT_BASE + 2)); P_MODEL=$((PORT_BASE + 3))
P_SOAK=$((PORT_BASE + 4))
for p in $P_UP $P_NGX $P_GW $P_MODEL $P_SOAK; do
  if curl -s -o /dev/null "http://127.0.0.1:$p/"; then
    echo "port $p is already in use: stop what listens there or pass --port-base" >&2; exit 2
  fi
done

WORK=$ROOT/bench/work/gateway
rm -rf "$WORK"
mkdir -p "$WORK/nginx/tmp" "$WORK/logs"
RUNS=$WORK/runs.jsonl
: > "$RUNS"

SRV=(); LOAD=()
if [ "$PIN" = 1 ] && [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
  SRV=(taskset -c 1); LOAD=(taskset -c 0)
else
  PIN=0
fi

# --- processes we start (and only those) are stopped on exit ---------------------------------------------
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

# Stop one process we started with SIGTERM and wait (up to 60 s) for it to exit.
stop() {
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for i in $(seq 600); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  wait "$pid" 2>/dev/null || true
  local keep=()
  for p in "${PIDS[@]}"; do [ "$p" = "$pid" ] || keep+=("$p"); done
  PIDS=("${keep[@]}")
}

# Wait until URL answers (any HTTP status), up to 30 s.
wait_http() {
  local i
  for i in $(seq 300); do
    if curl -s -o /dev/null "$1"; then return 0; fi
    sleep 0.1
  done
  echo "no answer from $1" >&2; return 1
}

render() { # template output
  sed -e "s|@PREFIX@|$WORK/nginx|g" -e "s|@UPSTREAM_PORT@|$P_UP|g" -e "s|@WORKERS@|1|g" \
      -e "s|@PORT@|$3|g" "$1" > "$2"
}

# --- servers -------------------------------------------------------------------------------------------
render bench/gateway/nginx-upstream.conf "$WORK/nginx/upstream.conf" "$P_UP"
render bench/gateway/nginx-proxy.conf "$WORK/nginx/proxy.conf" "$P_NGX"
render bench/gateway/aegis.toml "$WORK/aegis.toml" "$P_GW"

"${SRV[@]}" nginx -p "$WORK/nginx" -e "$WORK/nginx/upstream-error.log" -c "$WORK/nginx/upstream.conf" &
PIDS+=($!)
"${SRV[@]}" nginx -p "$WORK/nginx" -e "$WORK/nginx/proxy-error.log" -c "$WORK/nginx/proxy.conf" &
NGX_PID=$!; PIDS+=($NGX_PID)

# Gateway 1: proxies the trivial upstream. The key never hits its limits, but every request is still
# authenticated (key hash looked up in the database), scoped, rate limited in the database (and charged
# against its budgets with --budget), and audited.
GW_DATA=$WORK/gateway-data
KEY=$("$AEGIS" key create --data-dir "$GW_DATA" --config "$WORK/aegis.toml" --name bench --owner bench \
      --model trivial --rate 1000000 --burst 1000000 --unbounded --daily-budget "$BUDGET" --monthly-budget "$BUDGET" \
      --expires-days 0 2>>"$WORK/logs/keys.stderr")
"${SRV[@]}" "$AEGIS" serve --plaintext --listen "127.0.0.1:$P_GW" --data-dir "$GW_DATA" \
  --config "$WORK/aegis.toml" 2> "$WORK/logs/gateway.stderr" &
GW_PID=$!; PIDS+=($GW_PID)

# Gateway 2: no configuration file, so the bundled demo model is served (local inference).
MODEL_DATA=$WORK/model-data
MODEL_KEY=$("$AEGIS" key create --data-dir "$MODEL_DATA" --name bench --owner bench --model demo-fraud \
      --rate 1000000 --burst 1000000 --unbounded --daily-budget "$BUDGET" --monthly-budget "$BUDGET" --expires-days 0 \
      2>>"$WORK/logs/keys.stderr")
"${SRV[@]}" "$AEGIS" serve --plaintext --listen "127.0.0.1:$P_MODEL" --data-dir "$MODEL_DATA" \
  2> "$WORK/logs/model.stderr" &
MODEL_PID=$!; PIDS+=($MODEL_PID)

URL_DIRECT=http://127.0.0.1:$P_UP/ok
URL_NGINX=http://127.0.0.1:$P_NGX/ok
URL_GW=http://127.0.0.1:$P_GW/upstream/trivial/ok
URL_MODEL=http://127.0.0.1:$P_MODEL/v1/models/demo-fraud/predict
BODY='{"rows":[{"amount":2400,"hour":3,"merchant_risk":0.9,"card_age_days":12,"foreign":1,"n_tx_24h":14}]}'

for u in "$URL_DIRECT" "$URL_NGINX" "http://127.0.0.1:$P_GW/healthz" "http://127.0.0.1:$P_MODEL/healthz"; do
  wait_http "$u"
done

# One request per target, shown, so a broken target is obvious before any number is taken.
check() { # name curl-args...
  local name=$1; shift
  local out code
  out=$(curl -s -D "$WORK/logs/$name.headers" -o "$WORK/logs/$name.body" -w '%{http_code}' "$@")
  code=$out
  printf '%-8s %s  %s\n' "$name" "$code" "$(head -c 200 "$WORK/logs/$name.body")" >&2
  if [ "$code" != 200 ]; then
    echo "target $name answered $code, not 200: see $WORK/logs/" >&2; exit 1
  fi
}
AUTH="Authorization: Bearer $KEY"
check direct -H "$AUTH" "$URL_DIRECT"
check nginx -H "$AUTH" "$URL_NGINX"
check gateway -H "$AUTH" "$URL_GW"
check model -H "Authorization: Bearer $MODEL_KEY" -H 'Content-Type: application/json' -d "$BODY" "$URL_MODEL"
grep -i '^x-aegis-overhead-ms' "$WORK/logs/gateway.headers" >&2 || echo "gateway: no x-aegis-overhead-ms header" >&2

# --- wrk -----------------------------------------------------------------------------------------------
run_wrk() { # target mode round url connections seconds hook
  local target=$1 mode=$2 round=$3 url=$4 conns=$5 secs=$6 hook=$7 key=$KEY body=
  if [ "$target" = model ]; then key=$MODEL_KEY; body=$BODY; fi
  local log=$WORK/logs/wrk-$target-$mode-$round.txt extra=()
  [ "$mode" = latency ] && extra=(--latency)
  BENCH_TAG="\"target\":\"$target\",\"mode\":\"$mode\",\"round\":$round,\"connections\":$conns" \
  BENCH_KEY="$key" BENCH_BODY="$body" BENCH_HOOK="$hook" \
    "${LOAD[@]}" wrk -t1 -c"$conns" -d"${secs}s" --timeout 10s "${extra[@]}" -s bench/gateway/wrk.lua "$url" > "$log"
  if [ "$mode" != warmup ]; then grep '^RESULT ' "$log" | cut -c8- >> "$RUNS"; fi
  if [ "$mode" != warmup ]; then
    printf '  %-8s %-10s round %s: %s\n' "$target" "$mode" "$round" \
      "$(grep -E '^ +50%|Requests/sec|Non-2xx|Socket errors' "$log" | tr -s ' ' | tr '\n' ' ')" >&2
  fi
}

# CPU time (clock ticks, all threads, live and exited) and context switches (live threads) of a process.
cpu_snapshot() { # name pid
  local ticks sw=0 t
  ticks=$(awk '{print $14 + $15}' "/proc/$2/stat")
  for t in /proc/"$2"/task/*/status; do
    sw=$((sw + $(awk '/^(non)?voluntary_ctxt_switches/ {n += $2} END {print n + 0}' "$t" 2>/dev/null || echo 0)))
  done
  echo "{\"process\":\"$1\",\"ticks\":$ticks,\"hz\":$(getconf CLK_TCK),\"ctxt_switches\":$sw}"
}
NGX_WORKER=$(pgrep -P "$NGX_PID" | head -1)

declare -A URL=([direct]=$URL_DIRECT [nginx]=$URL_NGINX [gateway]=$URL_GW [model]=$URL_MODEL)
TARGETS=(direct nginx gateway model)

echo "warm-up ${WARMUP}s per target" >&2
for t in "${TARGETS[@]}"; do run_wrk "$t" warmup 0 "${URL[$t]}" "$CONNS" "$WARMUP" 0; done
{ cpu_snapshot gateway "$GW_PID"; cpu_snapshot nginx "$NGX_WORKER"; } > "$WORK/cpu-before.jsonl"
for r in $(seq "$REPEAT"); do
  echo "round $r/$REPEAT" >&2
  for t in "${TARGETS[@]}"; do run_wrk "$t" latency "$r" "${URL[$t]}" 1 "$DURATION" 1; done
  for t in "${TARGETS[@]}"; do run_wrk "$t" throughput "$r" "${URL[$t]}" "$CONNS" "$DURATION" 0; done
done

{ cpu_snapshot gateway "$GW_PID"; cpu_snapshot nginx "$NGX_WORKER"; } > "$WORK/cpu-after.jsonl"

# The benchmark gateway's own accounting: metrics, then a clean stop (flushes the audit log), then the chain.
sleep 1
curl -s "http://127.0.0.1:$P_GW/metrics" > "$WORK/gateway-metrics.txt"
stop "$GW_PID"
"$AEGIS" audit-log verify --data-dir "$GW_DATA" --config "$WORK/aegis.toml" --format json \
  > "$WORK/gateway-verify.json" || true
sqlite3 "$GW_DATA/aegis.db" \
  "SELECT status, count(*) FROM audit_log WHERE route = '/upstream/{name}/{*rest}' GROUP BY status" \
  > "$WORK/gateway-audit-status.txt"
stop "$MODEL_PID"

# --- soak: a fresh gateway, twice the connections --------------------------------------------------------
SOAK_CONNS=$((CONNS * 2))
SOAK_DATA=$WORK/soak-data
KEY=$("$AEGIS" key create --data-dir "$SOAK_DATA" --config "$WORK/aegis.toml" --name soak --owner bench \
      --model trivial --rate 1000000 --burst 1000000 --unbounded --daily-budget "$BUDGET" --monthly-budget "$BUDGET" \
      --expires-days 0 2>>"$WORK/logs/keys.stderr")
"${SRV[@]}" "$AEGIS" serve --plaintext --listen "127.0.0.1:$P_SOAK" --data-dir "$SOAK_DATA" \
  --config "$WORK/aegis.toml" 2> "$WORK/logs/soak.stderr" &
SOAK_PID=$!; PIDS+=($SOAK_PID)
wait_http "http://127.0.0.1:$P_SOAK/healthz"
echo "soak: ${SOAK}s, $SOAK_CONNS connections" >&2
URL_SOAK=http://127.0.0.1:$P_SOAK/upstream/trivial/ok
run_wrk soak soak 1 "$URL_SOAK" "$SOAK_CONNS" "$SOAK" 0
sleep 1
curl -s "http://127.0.0.1:$P_SOAK/metrics" > "$WORK/soak-metrics.txt"
stop "$SOAK_PID"
"$AEGIS" audit-log verify --data-dir "$SOAK_DATA" --config "$WORK/aegis.toml" --format json \
  > "$WORK/soak-verify.json" || true
sqlite3 "$SOAK_DATA/aegis.db" \
  "SELECT status, count(*) FROM audit_log WHERE route = '/upstream/{name}/{*rest}' GROUP BY status" \
  > "$WORK/soak-audit-status.txt"
grep -h 'record lost\|error' "$WORK/logs/soak.stderr" "$WORK/logs/gateway.stderr" >&2 || true

# --- summary -------------------------------------------------------------------------------------------
python3 bench/gateway/summarize.py "$WORK" --aegis "$AEGIS" --aegis-label "${AEGIS#$ROOT/}" --pin "$PIN" --repeat "$REPEAT" \
  --duration "$DURATION" --connections "$CONNS" --soak-seconds "$SOAK" --warmup "$WARMUP" --budget "$BUDGET" \
  | tee bench/gateway/results.md
