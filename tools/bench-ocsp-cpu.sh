#!/usr/bin/env bash
# Cached and nonce OCSP POSTs against one pnc-pki binary, with the server CPU each request costs
# (from /proc, independent of how much CPU the load generator takes): for A/B runs of two builds.
#
#   tools/bench-ocsp-cpu.sh BIN LABEL [SECONDS=8]     # needs wrk, openssl, softhsm2; loopback only
set -euo pipefail
BIN=$1; LABEL=$2; DUR=${3:-8}
W=$(mktemp -d /tmp/abo.XXXXXX)
export PNC_HSM_PIN=bench-user-pin-1234 PNC_HSM_SO_PIN=bench-so-pin-12345678
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$BIN" init --data-dir "$W/d" --public-url "http://127.0.0.1:$PORT" >/dev/null 2>&1
"$BIN" export --data-dir "$W/d" --out "$W/ex" >/dev/null
openssl ecparam -genkey -name prime256v1 -noout -out "$W/leaf.key"
openssl req -new -key "$W/leaf.key" -subj "/C=DE/O=Bench CPO/DC=CPO/CN=DEABCE12345" -out "$W/leaf.csr"
"$BIN" issue --data-dir "$W/d" --profile secc-leaf --issuer cpo-sub-ca-2 --csr "$W/leaf.csr" --out "$W/leaf.pem" >/dev/null
openssl ocsp -issuer "$W/ex/cpo-sub-ca-2.pem" -cert "$W/leaf.pem" -no_nonce -reqout "$W/req.der" >/dev/null
openssl ocsp -issuer "$W/ex/cpo-sub-ca-2.pem" -cert "$W/leaf.pem" -reqout "$W/reqn.der" >/dev/null
"$BIN" serve --data-dir "$W/d" --listen "127.0.0.1:$PORT" >"$W/serve.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; wait 2>/dev/null; rm -rf $W' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/health/ready" >/dev/null && break; sleep 0.1; done
for n in req reqn; do cat > "$W/$n.lua" <<LUA
local f = io.open("$W/$n.der", "rb"); wrk.body = f:read("*all"); f:close()
wrk.method = "POST"; wrk.headers["Content-Type"] = "application/ocsp-request"
LUA
done
curl -s --data-binary @"$W/req.der" "http://127.0.0.1:$PORT/ocsp" -o "$W/r.der"; sleep 1
wrk -t2 -c64 -d2s -s "$W/req.lua" "http://127.0.0.1:$PORT/ocsp" >/dev/null
ticks() { awk '{print $14+$15}' /proc/$PID/stat; }
run() { # lua -> "req/s p99 cpu_us_per_req"
  local t0=$(ticks)
  local out=$(wrk -t1 -c64 -d${DUR}s --latency -s "$W/$1.lua" "http://127.0.0.1:$PORT/ocsp")
  local t1=$(ticks)
  local total=$(echo "$out" | awk '/requests in/{print $1}')
  echo "$out" | awk -v dt=$((t1-t0)) -v n="$total" -v hz=$(getconf CLK_TCK) '/Requests\/sec/{r=$2} / 99%/{p=$2} END{printf "%s req/s, p99 %s, %.1f us CPU/req", r, p, dt*1e6/hz/n}'
}
echo "$LABEL cached: $(run req) | nonce: $(run reqn)"
