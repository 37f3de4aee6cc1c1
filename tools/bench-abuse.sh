#!/usr/bin/env bash
# What an unauthenticated flood costs a running server, and what it does to well-behaved clients
# (docs/security.md, docs/benchmarks.md). Fresh `init` on SQLite, `serve` on loopback, then:
#   token: wrk floods POST /oauth/token with an unknown client_id from 127.0.0.1 (64 keep-alive
#          connections); meanwhile a valid client on 127.0.0.2 asks for tokens.
#   ocsp:  wrk floods POST /ocsp with random serials (16 connections); meanwhile a valid client
#          on 127.0.0.2 enrolls.
# Reported: the flood's rate and answers, the server's peak RSS, live OCSP signatures (when the
# build has the counter), and the valid client's latencies before and during the flood.
#
# usage: tools/bench-abuse.sh token|ocsp [duration=10s]
# env:   PNC_BIN (default target/release/pnc-pki), PORT (default 18700)
set -euo pipefail
MODE=${1:?token or ocsp}
DUR=${2:-10s}
BIN=${PNC_BIN:-$(dirname "$0")/../target/release/pnc-pki}
PORT=${PORT:-18700}
HERE=$(cd "$(dirname "$0")" && pwd)
export PNC_HSM_PIN=${PNC_HSM_PIN:-bench-user-pin-1234} PNC_HSM_SO_PIN=${PNC_HSM_SO_PIN:-bench-so-pin-12345678}
WORK=$(mktemp -d /tmp/pnc-abuse.XXXXXX)
SERVER=
cleanup() {
  [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
"$BIN" init --data-dir "$WORK/d" >/dev/null 2>&1
CLIENT=$("$BIN" client add --data-dir "$WORK/d" --name bench --role cpo --tenant 'DE*ABC' --json)
ID=$(echo "$CLIENT" | sed -E 's/.*"client_id":"([^"]+)".*/\1/')
SECRET=$(echo "$CLIENT" | sed -E 's/.*"client_secret":"([^"]+)".*/\1/')
"$BIN" export --data-dir "$WORK/d" --out "$WORK/ex" >/dev/null
"$BIN" serve --data-dir "$WORK/d" --listen "127.0.0.1:$PORT" 2>"$WORK/serve.log" &
SERVER=$!
URL=http://127.0.0.1:$PORT
for _ in $(seq 100); do curl -sf "$URL/health/ready" >/dev/null && break; sleep 0.1; done
token() {
  curl -s --interface 127.0.0.2 -o "$WORK/tok.json" -w '%{http_code} %{time_total}\n' -X POST "$URL/oauth/token" \
    -H 'content-type: application/json' \
    -d "{\"grant_type\":\"client_credentials\",\"client_id\":\"$ID\",\"client_secret\":\"$SECRET\"}"
}
token >/dev/null
TOKEN=$(sed -E 's/.*"access_token":"([^"]+)".*/\1/' "$WORK/tok.json")
n=0
enroll() {
  n=$((n + 1))
  openssl ecparam -genkey -name prime256v1 -noout -out "$WORK/k.pem" 2>/dev/null
  openssl req -new -key "$WORK/k.pem" -subj "/C=DE/O=Bench/DC=CPO/CN=DE*ABC*E$(printf %07d $n)" -outform DER -out "$WORK/c.der"
  curl -s --interface 127.0.0.2 -o "$WORK/enroll.out" -w '%{http_code} %{time_total}\n' -X POST "$URL/cpo/simpleenroll/ISO15118-2" \
    -H "authorization: Bearer $TOKEN" -H 'content-type: application/pkcs10' --data-binary "$(base64 -w0 "$WORK/c.der")"
}
probe() { if [ "$MODE" = token ]; then token; else enroll; fi; }
# "label" then 20 probes: status counts, median and p90 latency in ms.
report() {
  sort -k2 -n "$WORK/lat" | awk -v label="$1" '{ s[NR]=$2*1000; c[$1]++ } END {
    printf "%s: ", label; for (k in c) printf "%s×%d ", k, c[k];
    printf "p50=%.1fms p90=%.1fms max=%.1fms\n", s[int(NR*0.5)+1], s[int(NR*0.9)], s[NR] }'
}
: > "$WORK/lat"; for _ in $(seq 20); do probe >> "$WORK/lat"; done
report "valid client, calm"
peak=0
if [ "$MODE" = token ]; then
  wrk -t2 -c64 -d"$DUR" -s "$HERE/bench-abuse-token.lua" "$URL/oauth/token" > "$WORK/wrk.out" &
else
  LEAF="$WORK/leaf.pem"
  openssl pkcs7 -inform DER -in <(base64 -d "$WORK/enroll.out") -print_certs | awk '/BEGIN/{p=1} p{print} /END/{exit}' > "$LEAF"
  openssl ocsp -no_nonce -issuer "$WORK/ex/cpo-sub-ca-2.pem" -cert "$LEAF" -reqout "$WORK/req.der" >/dev/null
  SERIAL_HEX=$(openssl x509 -in "$LEAF" -noout -serial | cut -d= -f2)
  REQ_FILE="$WORK/req.der" SERIAL_HEX=$SERIAL_HEX wrk -t2 -c16 -d"$DUR" -s "$HERE/bench-abuse-ocsp.lua" "$URL/ocsp" > "$WORK/wrk.out" &
fi
FLOOD=$!
sleep 1
: > "$WORK/lat"
while kill -0 "$FLOOD" 2>/dev/null; do
  rss=$(awk '/VmRSS/{print int($2/1024)}' "/proc/$SERVER/status")
  [ "$rss" -gt "$peak" ] && peak=$rss
  [ "$(wc -l < "$WORK/lat")" -lt 20 ] && probe >> "$WORK/lat"
  sleep 0.2
done
report "valid client, during the flood"
grep RESULT "$WORK/wrk.out" | sed 's/^RESULT/flood:/'
echo "server peak RSS during the flood: ${peak} MB (now $(awk '/VmRSS/{print int($2/1024)}' "/proc/$SERVER/status") MB)"
curl -s "$URL/metrics" | grep -E '^pnc_(ocsp_live|limited)' || true
