#!/usr/bin/env bash
# Enrollments per second over HTTP: init a fresh deployment, register a CPO client, start
# `pnc-pki serve` on loopback, get a token from /oauth/token and drive
# POST /cpo/simpleenroll/ISO15118-2 with wrk (tools/bench-enroll.lua). Every request is a real
# issuance: CSR check, HSM signature (SoftHSM2), database insert with its audit entry.
#
# usage: tools/bench-enroll.sh [sqlite|postgres://ADMIN-URL] [duration=20s] [connections=4] [threads=1]
#        with PostgreSQL a throw-away database is created next to ADMIN-URL's (psql) and dropped.
# env:   PNC_BIN (default target/release/pnc-pki), PORT (default 18600)
set -euo pipefail
DB=${1:-sqlite}
DUR=${2:-20s}
CONN=${3:-4}
THREADS=${4:-1}
BIN=${PNC_BIN:-$(dirname "$0")/../target/release/pnc-pki}
PORT=${PORT:-18600}
export PNC_HSM_PIN=${PNC_HSM_PIN:-bench-user-pin-1234} PNC_HSM_SO_PIN=${PNC_HSM_SO_PIN:-bench-so-pin-12345678}
# One client drives every enrollment here: its per-client limit (PNC_LIMIT_ENROLL_PER_CLIENT,
# docs/security.md) would measure the limit, not the service.
export PNC_LIMIT_ENROLL_PER_CLIENT=off
WORK=$(mktemp -d /tmp/pnc-bench.XXXXXX)
SERVER=
PGDB=
cleanup() {
  [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null
  wait 2>/dev/null
  [ -n "$PGDB" ] && psql "$DB" -qc "DROP DATABASE IF EXISTS $PGDB WITH (FORCE)" >/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT
if [ "$DB" = sqlite ]; then
  "$BIN" init --data-dir "$WORK/d" >/dev/null
else
  PGDB=pnc_bench_$RANDOM$RANDOM
  psql "$DB" -qc "CREATE DATABASE $PGDB" >/dev/null
  "$BIN" init --data-dir "$WORK/d" --database-url "${DB%/*}/$PGDB" >/dev/null
fi
CLIENT=$("$BIN" client add --data-dir "$WORK/d" --name bench --role cpo --tenant 'DE*ABC' --json)
ID=$(echo "$CLIENT" | sed -E 's/.*"client_id":"([^"]+)".*/\1/')
SECRET=$(echo "$CLIENT" | sed -E 's/.*"client_secret":"([^"]+)".*/\1/')
"$BIN" serve --data-dir "$WORK/d" --listen "127.0.0.1:$PORT" 2>"$WORK/serve.log" &
SERVER=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/health/ready" >/dev/null && break; sleep 0.1; done
TOKEN=$(curl -sf -X POST "http://127.0.0.1:$PORT/oauth/token" -H 'content-type: application/json' \
  -d "{\"grant_type\":\"client_credentials\",\"client_id\":\"$ID\",\"client_secret\":\"$SECRET\"}" |
  sed -E 's/.*"access_token":"([^"]+)".*/\1/')
openssl ecparam -genkey -name prime256v1 -noout -out "$WORK/k.pem"
openssl req -new -key "$WORK/k.pem" -subj '/C=DE/O=Bench/DC=CPO/CN=DE*ABC*E1234567' -outform DER -out "$WORK/c.der"
base64 -w0 "$WORK/c.der" > "$WORK/c.b64"
# Warm-up (connection pools, HSM sessions), then the measured run.
TOKEN=$TOKEN CSR_FILE="$WORK/c.b64" wrk -t1 -c1 -d2s -s "$(dirname "$0")/bench-enroll.lua" \
  "http://127.0.0.1:$PORT/cpo/simpleenroll/ISO15118-2" >/dev/null
echo "backend=$([ "$DB" = sqlite ] && echo sqlite || echo postgres) duration=$DUR connections=$CONN threads=$THREADS"
TOKEN=$TOKEN CSR_FILE="$WORK/c.b64" wrk -t"$THREADS" -c"$CONN" -d"$DUR" --latency -s "$(dirname "$0")/bench-enroll.lua" \
  "http://127.0.0.1:$PORT/cpo/simpleenroll/ISO15118-2"
