#!/usr/bin/env bash
# Contract installations per second over HTTP: init a fresh deployment, trust a throw-away OEM
# root, create a contract (MO), start `pnc-pki serve` on loopback and drive
# POST /v1/ccp/signedContractData (CPO) with wrk (tools/bench-install.lua). Every request is a
# real installation: EXI decode, EV signature and OEM chain check, contract lookup, contract key
# generated in the HSM, contract certificate signed, key encrypted for the car, answer signed
# with the CPS key (HSM), certificate + request + audit entry committed together.
#
# With PREGEN=1 the contract data is pre-generated first (PUT /v1/cps/generate/signedContractData)
# and every request is answered from it: checks, lookup, SessionID, encode; no HSM call.
#
# GRACE (seconds, default 0): the contract's grace period. With 0, every installation of the
# (one) car revokes its previous certificate at once (revocation, CRL, replicas) before it
# answers; with a grace period that is scheduled instead, and only the installation is measured.
#
# CARS (default 1): the on-demand requests are spread over this many cars of one OEM, each
# pooled and under its own contract (a fleet; with 1, every request is the same car's).
#
# usage: [PREGEN=1] [REQUESTS=30000] [GRACE=0] [CARS=1] tools/bench-install.sh [sqlite|postgres://ADMIN-URL] [duration=20s] [connections=4] [threads=1]
# env:   PNC_BIN / PNC_BENCH_BIN (default target/release/…), PORT (default 18700),
#        SERVE_LOG (where the server's log is copied at the end; default /tmp/pnc-bench-install-serve.log)
set -euo pipefail
DB=${1:-sqlite}
DUR=${2:-20s}
CONN=${3:-4}
THREADS=${4:-1}
HERE=$(dirname "$0")
BIN=${PNC_BIN:-$HERE/../target/release/pnc-pki}
BENCH=${PNC_BENCH_BIN:-$HERE/../target/release/pnc-pki-bench}
PORT=${PORT:-18700}
export PNC_HSM_PIN=${PNC_HSM_PIN:-bench-user-pin-1234} PNC_HSM_SO_PIN=${PNC_HSM_SO_PIN:-bench-so-pin-12345678}
# One client drives every installation: the per-client issuance limit would measure the limit.
export PNC_LIMIT_ENROLL_PER_CLIENT=off
WORK=$(mktemp -d /tmp/pnc-bench-install.XXXXXX)
SERVER=
PGDB=
cleanup() {
  [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null
  wait 2>/dev/null
  # The server's log outlives the run (errors=N in the result: the reasons are here).
  [ -f "$WORK/serve.log" ] && cp "$WORK/serve.log" "${SERVE_LOG:-/tmp/pnc-bench-install-serve.log}"
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
"$BIN" export --data-dir "$WORK/d" --out "$WORK/ex" >/dev/null
# On demand, every request must be new (one answered before is a replay from the store):
# REQUESTS distinct requests of the car, sent in turn (more than the run can send).
"$BENCH" --ev-request "$WORK/ex/v2g-root.pem" --out "$WORK/ev" --pcid WP0ZZZ99ZTS392124 \
  --requests "$([ "${PREGEN:-0}" = 1 ] && echo 0 || echo "${REQUESTS:-30000}")" \
  --cars "${CARS:-1}" --grace "${GRACE:-0}"
BODIES="$WORK/ev/ccp.json"
WARM="$WORK/ev/ccp.json"
if [ "${PREGEN:-0}" != 1 ]; then
  # The warm-up sends other requests than the measured run.
  tail -n 1000 "$WORK/ev/ccp.jsonl" >"$WORK/ev/warm.jsonl"
  head -n -1000 "$WORK/ev/ccp.jsonl" >"$WORK/ev/run.jsonl"
  BODIES="$WORK/ev/run.jsonl" WARM="$WORK/ev/warm.jsonl"
fi
"$BIN" trust add --data-dir "$WORK/d" --kind oem-root "$WORK/ev/oem-root.pem" >/dev/null
field() { sed -E "s/.*\"$1\":\"([^\"]+)\".*/\1/"; }
MO=$("$BIN" client add --data-dir "$WORK/d" --name mo --role mo --tenant DE8AA --json)
CPO=$("$BIN" client add --data-dir "$WORK/d" --name cpo --role cpo --tenant 'DE*ABC' --json)
OEM=$("$BIN" client add --data-dir "$WORK/d" --name oem --role oem --tenant WP0 --json)
"$BIN" serve --data-dir "$WORK/d" --listen "127.0.0.1:$PORT" 2>"$WORK/serve.log" &
SERVER=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/health/ready" >/dev/null && break; sleep 0.1; done
token() {
  curl -sf -X POST "http://127.0.0.1:$PORT/oauth/token" -H 'content-type: application/json' \
    -d "{\"grant_type\":\"client_credentials\",\"client_id\":\"$(echo "$1" | field client_id)\",\"client_secret\":\"$(echo "$1" | field client_secret)\"}" |
    field access_token
}
MO_TOKEN=$(token "$MO")
TOKEN=$(token "$CPO")
# A -2 installation needs the vehicle in the provisioning pool (docs/provisioning.md), on demand too.
OEM_TOKEN=$(token "$OEM")
curl -sf -X PUT "http://127.0.0.1:$PORT/v1/oem/provCerts" -H "authorization: Bearer $OEM_TOKEN" \
  -H 'content-type: application/json' --data-binary @"$WORK/ev/provcert.json" >/dev/null
if [ "${PREGEN:-0}" = 1 ]; then
  curl -sf -X PUT "http://127.0.0.1:$PORT/v1/cps/generate/signedContractData" -H "authorization: Bearer $MO_TOKEN" \
    -H 'content-type: application/json' \
    -d '{"emaid":"DE8AA123456789","pcid":"WP0ZZZ99ZTS392124","xsdMsgDefNamespace":"urn:iso:15118:2:2013:MsgDef"}' >/dev/null
else
  # Every car in the pool and under contract (the first car's pool entry is provcert.json).
  post_lines() { # METHOD PATH TOKEN FILE: one request per line, 4 at a time
    tr '\n' '\0' <"$4" | xargs -0 -r -P4 -I{} curl -sf -o /dev/null -X "$1" "http://127.0.0.1:$PORT$2" \
      -H "authorization: Bearer $3" -H 'content-type: application/json' -d {}
  }
  post_lines PUT /v1/oem/provCerts "$OEM_TOKEN" "$WORK/ev/provcerts.jsonl"
  post_lines POST /api/v1/contracts "$MO_TOKEN" "$WORK/ev/contracts.jsonl"
fi
# One installation checked by hand, then a warm-up, then the measured run.
curl -sf -X POST "http://127.0.0.1:$PORT/v1/ccp/signedContractData" -H "authorization: Bearer $TOKEN" \
  -H 'content-type: application/json' --data-binary @"$WORK/ev/ccp.json" | grep -q certificateInstallationRes
TOKEN=$TOKEN BODY_FILE="$WARM" wrk -t1 -c1 -d2s -s "$HERE/bench-install.lua" \
  "http://127.0.0.1:$PORT/v1/ccp/signedContractData" >/dev/null
echo "backend=$([ "$DB" = sqlite ] && echo sqlite || echo postgres) pregenerated=${PREGEN:-0} grace=${GRACE:-0} cars=${CARS:-1} duration=$DUR connections=$CONN threads=$THREADS"
TOKEN=$TOKEN BODY_FILE="$BODIES" WRK_THREADS=$THREADS wrk -t"$THREADS" -c"$CONN" -d"$DUR" --latency -s "$HERE/bench-install.lua" \
  "http://127.0.0.1:$PORT/v1/ccp/signedContractData"

