#!/usr/bin/env bash
# Plug & Charge authorization (POST /api/v1/ocpp/authorize) for another MO's contract chains.
# Makes a throw-away MO PKI with the openssl CLI (root trusted with `pnc-pki trust add`, sub-CA,
# N contract certificates whose AIA names an `openssl ocsp` responder on 127.0.0.5), starts
# `pnc-pki serve` on SQLite with PNC_FETCH_ALLOW=127.0.0.5/32, then
#   cold: each of N chains authorized once (every one a path check plus one OCSP hop through the
#         guarded fetcher to the external responder, answer verified), latencies by curl;
#   warm: wrk drives one chain at CONN connections (its OCSP answer cached, verdict reused).
# usage: tools/bench-authorize.sh [duration=20s] [connections=16] [cold=200]
set -euo pipefail
DUR=${1:-20s}
CONN=${2:-16}
COLD=${3:-200}
HERE=$(cd "$(dirname "$0")" && pwd)
BIN=${PNC_BIN:-$HERE/../target/release/pnc-pki}
PORT=${PORT:-18760}
OPORT=${OPORT:-18761}
export PNC_HSM_PIN=${PNC_HSM_PIN:-bench-user-pin-1234} PNC_HSM_SO_PIN=${PNC_HSM_SO_PIN:-bench-so-pin-12345678}
WORK=$(mktemp -d /tmp/pnc-bench-authorize.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
cd "$WORK"
"$BIN" init --data-dir "$WORK/d" >/dev/null 2>&1
openssl ecparam -name prime256v1 -genkey -noout -out root.key
openssl req -x509 -new -key root.key -subj "/O=Other MO/CN=Other MO Root" -days 3650 -out root.pem \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
openssl ecparam -name prime256v1 -genkey -noout -out sub.key
openssl req -new -key sub.key -subj "/O=Other MO/CN=Other MO Sub-CA" -out sub.csr
printf 'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n' > sub.ext
openssl x509 -req -in sub.csr -CA root.pem -CAkey root.key -set_serial 2 -days 365 -extfile sub.ext -out sub.pem 2>/dev/null
printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyAgreement\nauthorityInfoAccess=OCSP;URI:http://127.0.0.5:%s\n' "$OPORT" > leaf.ext
: > index.txt
emaid() { printf 'DE8AA%09d' "$1"; }
for i in $(seq 0 "$COLD"); do
  openssl ecparam -name prime256v1 -genkey -noout -out "l$i.key"
  openssl req -new -key "l$i.key" -subj "/O=Other MO/CN=$(emaid "$i")" -out "l$i.csr"
  openssl x509 -req -in "l$i.csr" -CA sub.pem -CAkey sub.key -set_serial "$((1000 + i))" -days 30 \
    -extfile leaf.ext -out "l$i.pem" 2>/dev/null
  printf 'V\t491231235959Z\t\t%X\tunknown\t/CN=%s\n' "$((1000 + i))" "$(emaid "$i")" >> index.txt
  python3 - "$i" "$(emaid "$i")" <<'PY'
import json, sys
i, emaid = sys.argv[1], sys.argv[2]
chain = open(f"l{i}.pem").read() + open("sub.pem").read()
json.dump({"idToken": {"idToken": emaid, "type": "eMAID"}, "certificate": chain}, open(f"body{i}.json", "w"))
PY
done
openssl ocsp -index index.txt -port "$OPORT" -rsigner sub.pem -rkey sub.key -CA sub.pem -nmin 60 >ocsp.log 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do grep -q "waiting for OCSP" ocsp.log && break; sleep 0.1; done
"$BIN" trust add --data-dir "$WORK/d" --kind mo-root root.pem >/dev/null 2>&1
field() { sed -E "s/.*\"$1\":\"([^\"]+)\".*/\1/"; }
CSMS=$("$BIN" client add --data-dir "$WORK/d" --name csms --role csms --tenant 'ACME CSO' --json 2>/dev/null)
PNC_FETCH_ALLOW=127.0.0.5/32 PNC_LOG=warn "$BIN" serve --data-dir "$WORK/d" --listen "127.0.0.1:$PORT" 2>serve.log &
PIDS+=($!)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/health/ready" >/dev/null && break; sleep 0.1; done
TOKEN=$(curl -sf -X POST "http://127.0.0.1:$PORT/oauth/token" -H 'content-type: application/json' \
  -d "{\"grant_type\":\"client_credentials\",\"client_id\":\"$(echo "$CSMS" | field client_id)\",\"client_secret\":\"$(echo "$CSMS" | field client_secret)\"}" |
  field access_token)
# Cold: every chain once, one OCSP hop each.
: > cold.txt
for i in $(seq 1 "$COLD"); do
  out=$(curl -s -o "ans$i.json" -w '%{time_total}' -X POST "http://127.0.0.1:$PORT/api/v1/ocpp/authorize" \
    -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' --data-binary "@body$i.json")
  grep -q '"certificateStatus":"Accepted"' "ans$i.json" || { echo "cold $i not accepted: $(cat "ans$i.json")"; exit 1; }
  echo "$out" >> cold.txt
done
sort -n cold.txt | awk '{a[NR]=$1*1000} END {printf "cold: n=%d p50_ms=%.1f p90_ms=%.1f p99_ms=%.1f max_ms=%.1f\n", NR, a[int(NR*0.5)], a[int(NR*0.9)], a[int(NR*0.99)], a[NR]}'
# Warm: one chain, its OCSP answer cached.
ANSWER=$(curl -sf -X POST "http://127.0.0.1:$PORT/api/v1/ocpp/authorize" -H "authorization: Bearer $TOKEN" \
  -H 'content-type: application/json' --data-binary @body0.json)
echo "$ANSWER" | grep -q '"certificateStatus":"Accepted"' || { echo "warm chain not accepted: $ANSWER"; exit 1; }
BODY_FILE="$WORK/body0.json" TOKEN=$TOKEN wrk -t2 -c"$CONN" -d"$DUR" -s "$HERE/bench-authorize.lua" \
  "http://127.0.0.1:$PORT/api/v1/ocpp/authorize" > wrk.out
grep RESULT wrk.out | sed 's/^RESULT/warm:/'
# The same chain once more after the run: still Accepted (wrk counts non-2xx only).
curl -sf -X POST "http://127.0.0.1:$PORT/api/v1/ocpp/authorize" -H "authorization: Bearer $TOKEN" \
  -H 'content-type: application/json' --data-binary @body0.json | grep -q '"Accepted"' || { echo "not accepted after the run"; exit 1; }
curl -s "http://127.0.0.1:$PORT/metrics" | grep '^pnc_fetch_total'
