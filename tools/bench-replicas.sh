#!/usr/bin/env bash
# Enrollments per second over HTTP with N `pnc-pki serve` replicas on one PostgreSQL database and
# one token (the same data dir, different ports), as behind a load balancer: one wrk per replica,
# all at once, each with CONNECTIONS/N connections; prints each wrk's RESULT line and the sum.
#
# usage: tools/bench-replicas.sh postgres://ADMIN-URL [replicas=2] [duration=15s] [connections=16]
# env:   PNC_BIN (default target/release/pnc-pki), PORT (first port, default 18700)
set -euo pipefail
DB=${1:?postgres://ADMIN-URL}
N=${2:-2}
DUR=${3:-15s}
CONN=${4:-16}
BIN=${PNC_BIN:-$(dirname "$0")/../target/release/pnc-pki}
PORT=${PORT:-18700}
export PNC_HSM_PIN=${PNC_HSM_PIN:-bench-user-pin-1234} PNC_HSM_SO_PIN=${PNC_HSM_SO_PIN:-bench-so-pin-12345678}
export PNC_LIMIT_ENROLL_PER_CLIENT=off
WORK=$(mktemp -d /tmp/pnc-bench.XXXXXX)
PIDS=()
PGDB=pnc_bench_$RANDOM$RANDOM
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null
  psql "$DB" -qc "DROP DATABASE IF EXISTS $PGDB WITH (FORCE)" >/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT
psql "$DB" -qc "CREATE DATABASE $PGDB" >/dev/null
"$BIN" init --data-dir "$WORK/d" --database-url "${DB%/*}/$PGDB" >/dev/null
CLIENT=$("$BIN" client add --data-dir "$WORK/d" --name bench --role cpo --tenant 'DE*ABC' --json)
ID=$(echo "$CLIENT" | sed -E 's/.*"client_id":"([^"]+)".*/\1/')
SECRET=$(echo "$CLIENT" | sed -E 's/.*"client_secret":"([^"]+)".*/\1/')
for i in $(seq 0 $((N - 1))); do
  "$BIN" serve --data-dir "$WORK/d" --listen "127.0.0.1:$((PORT + i))" 2>"$WORK/serve-$i.log" &
  PIDS+=($!)
done
for i in $(seq 0 $((N - 1))); do
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$((PORT + i))/health/ready" >/dev/null && break; sleep 0.1; done
done
TOKEN=$(curl -sf -X POST "http://127.0.0.1:$PORT/oauth/token" -H 'content-type: application/json' \
  -d "{\"grant_type\":\"client_credentials\",\"client_id\":\"$ID\",\"client_secret\":\"$SECRET\"}" |
  sed -E 's/.*"access_token":"([^"]+)".*/\1/')
openssl ecparam -genkey -name prime256v1 -noout -out "$WORK/k.pem"
openssl req -new -key "$WORK/k.pem" -subj '/C=DE/O=Bench/DC=CPO/CN=DE*ABC*E1234567' -outform DER -out "$WORK/c.der"
base64 -w0 "$WORK/c.der" > "$WORK/c.b64"
LUA="$(dirname "$0")/bench-enroll.lua"
for i in $(seq 0 $((N - 1))); do
  TOKEN=$TOKEN CSR_FILE="$WORK/c.b64" wrk -t1 -c1 -d2s -s "$LUA" \
    "http://127.0.0.1:$((PORT + i))/cpo/simpleenroll/ISO15118-2" >/dev/null
done
echo "backend=postgres replicas=$N duration=$DUR connections=$CONN"
for i in $(seq 0 $((N - 1))); do
  TOKEN=$TOKEN CSR_FILE="$WORK/c.b64" wrk -t1 -c"$((CONN / N))" -d"$DUR" --latency -s "$LUA" \
    "http://127.0.0.1:$((PORT + i))/cpo/simpleenroll/ISO15118-2" > "$WORK/wrk-$i.out" &
done
wait $(jobs -p | tail -n "$N") 2>/dev/null || true
grep -h RESULT "$WORK"/wrk-*.out
grep -h RESULT "$WORK"/wrk-*.out | sed -E 's/.*rps=([0-9.]+).*/\1/' |
  awk '{s += $1} END {printf "TOTAL rps=%.1f\n", s}'
