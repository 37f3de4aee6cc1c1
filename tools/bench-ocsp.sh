#!/usr/bin/env bash
# OCSP load benchmark: pnc-pki (cached POST/GET, nonce) side by side with OpenSSL's responder and
# nginx serving a pre-made response of the same size. Loopback only, bounded runs.
#
#   cargo build --release && tools/bench-ocsp.sh [SECONDS]        # default 10 s per run
#
# OpenSSL's responder can only bind all interfaces (-port N); the others bind 127.0.0.1.
# Needs: wrk, ab (apache2-utils), nginx (nginx-light), openssl, softhsm2. Prints a Markdown table.
set -euo pipefail
DUR=${1:-10}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${PNC_BIN:-$ROOT/target/release/pnc-pki}
[ -x "$BIN" ] || { echo "build first: cargo build --release" >&2; exit 1; }
W=$(mktemp -d /tmp/bench-ocsp.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; sleep 0.3; rm -rf "$W"; }
trap cleanup EXIT
export PNC_HSM_PIN=bench-user-pin-1234 PNC_HSM_SO_PIN=bench-so-pin-12345678
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
P_PNC=$(free_port); P_SSL=$(free_port); P_NGX=$(free_port)

echo "setting up in $W ..." >&2
"$BIN" init --data-dir "$W/d" --public-url "http://127.0.0.1:$P_PNC" >/dev/null 2>&1
"$BIN" export --data-dir "$W/d" --out "$W/ex" >/dev/null
openssl ecparam -genkey -name prime256v1 -noout -out "$W/leaf.key"
openssl req -new -key "$W/leaf.key" -subj "/C=DE/O=Bench CPO/DC=CPO/CN=DEABCE12345" -out "$W/leaf.csr"
"$BIN" issue --data-dir "$W/d" --profile secc-leaf --issuer cpo-sub-ca-2 --csr "$W/leaf.csr" --out "$W/leaf.pem" >/dev/null
ISSUER=$W/ex/cpo-sub-ca-2.pem
openssl ocsp -issuer "$ISSUER" -cert "$W/leaf.pem" -no_nonce -reqout "$W/req.der" >/dev/null
openssl ocsp -issuer "$ISSUER" -cert "$W/leaf.pem" -reqout "$W/req-nonce.der" >/dev/null
GET_PATH=$(base64 -w0 "$W/req.der" | sed 's/+/%2B/g; s/\//%2F/g; s/=/%3D/g')

# pnc-pki
"$BIN" serve --data-dir "$W/d" --listen "127.0.0.1:$P_PNC" >"$W/serve.log" 2>&1 &
PNC_PID=$!
PIDS+=("$PNC_PID")
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$P_PNC/health/ready" >/dev/null && break; sleep 0.1; done
curl -s --data-binary @"$W/req.der" -H 'Content-Type: application/ocsp-request' "http://127.0.0.1:$P_PNC/ocsp" -o "$W/resp.der"
SIZE=$(stat -c %s "$W/resp.der")
NONCE_SIZE=$(curl -s --data-binary @"$W/req-nonce.der" -H 'Content-Type: application/ocsp-request' "http://127.0.0.1:$P_PNC/ocsp" | wc -c)

# OpenSSL responder over the same certificate (signer: a P-256 key in a file; index lists the leaf)
SERIAL=$(openssl x509 -in "$W/leaf.pem" -noout -serial | cut -d= -f2)
NOTAFTER=$(date -u -d "$(openssl x509 -in "$W/leaf.pem" -noout -enddate | cut -d= -f2)" +%y%m%d%H%M%SZ)
printf 'V\t%s\t\t%s\tunknown\t/CN=DEABCE12345\n' "$NOTAFTER" "$SERIAL" > "$W/index.txt"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$W/rsigner.key" \
  -out "$W/rsigner.pem" -subj "/CN=Bench OpenSSL OCSP Signer" -days 2 >/dev/null 2>&1
SSL_PID=
stop_openssl() { # after an ab -t run it can spin at 100% CPU on a half-open connection
  [ -n "$SSL_PID" ] && { kill "$SSL_PID" 2>/dev/null || true; wait "$SSL_PID" 2>/dev/null || true; }
  SSL_PID=
}
start_openssl() { # a fresh single-process responder per run: ab -t leaves half-open connections
  stop_openssl
  openssl ocsp -index "$W/index.txt" -port "$P_SSL" -rsigner "$W/rsigner.pem" -rkey "$W/rsigner.key" \
    -CA "$ISSUER" -ndays 7 -timeout 2 >>"$W/openssl.log" 2>&1 &
  SSL_PID=$!
  PIDS+=("$SSL_PID")
  for _ in $(seq 50); do curl -s -o /dev/null --data-binary @"$W/req.der" "http://127.0.0.1:$P_SSL/" && break; sleep 0.1; done
}
start_openssl
SSL_SIZE=$(curl -s --data-binary @"$W/req.der" -H 'Content-Type: application/ocsp-request' "http://127.0.0.1:$P_SSL/" | wc -c)

# nginx serving the very response pnc-pki gave (same bytes, same size)
mkdir -p "$W/ngx/www" "$W/ngx/tmp"
cp "$W/resp.der" "$W/ngx/www/resp.der"
chmod a+rx "$W" "$W/ngx" "$W/ngx/www"; chmod a+r "$W/ngx/www/resp.der"  # nginx workers run as nobody
cat > "$W/ngx/nginx.conf" <<NGX
worker_processes 2;
pid $W/ngx/nginx.pid;
error_log $W/ngx/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $W/ngx/tmp; proxy_temp_path $W/ngx/tmp; fastcgi_temp_path $W/ngx/tmp;
  uwsgi_temp_path $W/ngx/tmp; scgi_temp_path $W/ngx/tmp;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$P_NGX;
    location / { root $W/ngx/www; default_type application/ocsp-response; try_files /resp.der =404; }
  }
}
NGX
nginx -c "$W/ngx/nginx.conf" -g 'daemon off;' >/dev/null 2>&1 &
NGX_PID=$!
PIDS+=("$NGX_PID")
sleep 0.5

cat > "$W/post.lua" <<LUA
local f = io.open("$W/req.der", "rb"); wrk.body = f:read("*all"); f:close()
wrk.method = "POST"; wrk.headers["Content-Type"] = "application/ocsp-request"
LUA
cat > "$W/post-nonce.lua" <<LUA
local f = io.open("$W/req-nonce.der", "rb"); wrk.body = f:read("*all"); f:close()
wrk.method = "POST"; wrk.headers["Content-Type"] = "application/ocsp-request"
LUA

# CPU time (user + system, in clock ticks) of a server: the process and its children (nginx workers).
ticks() { # pid
  local t=0 p
  for p in "$1" $(pgrep -P "$1" || true); do
    t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
  done
  echo "$t"
}
# Server CPU per request in microseconds: a measure that does not depend on how much of the two
# cores the load generator leaves to the server.
cpu_per_request() { # ticks_before ticks_after requests
  python3 -c "import os,sys; b,a,n=map(float,sys.argv[1:]); print(round((a-b)/os.sysconf('SC_CLK_TCK')*1e6/max(n,1),1))" "$@"
}
# wrk: "rps | p50 | p99 | cpu | errors"
run_wrk() { # server_pid conns script url
  local t0 out; t0=$(ticks "$1")
  out=$(wrk -t2 -c"$2" -d"${DUR}s" --latency ${3:+-s "$3"} "$4" 2>&1)
  local rps p50 p99 errs n cpu
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  n=$(awk '/requests in/ {print $1}' <<<"$out")
  cpu=$(cpu_per_request "$t0" "$(ticks "$1")" "$n")
  errs=$(awk '/Non-2xx|Socket errors/ {print}' <<<"$out" | tr '\n' ' ')
  echo "$rps | $p50 | $p99 | $cpu | ${errs:-}"
}
# ab without keep-alive: "rps | p50 | p99 | cpu | errors"
run_ab() { # server_pid conns body url
  local t0 out; t0=$(ticks "$1")
  out=$(ab -q -t "$DUR" -n 10000000 -c "$2" ${3:+-p "$3" -T application/ocsp-request} "$4" 2>&1)
  local rps p50 p99 fails n cpu
  rps=$(awk '/Requests per second/ {print $4}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2 " ms"}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2 " ms"}' <<<"$out")
  n=$(awk '/Complete requests/ {print $3}' <<<"$out")
  cpu=$(cpu_per_request "$t0" "$(ticks "$1")" "$n")
  # "Length" failures only mean ECDSA signatures of varying length: not errors.
  fails=$(awk '/Non-2xx/ {print "non-2xx " $NF} /\(Connect:/ {gsub(/[(),]/," "); print "connect " $2 " receive " $4 " exceptions " $8}' <<<"$out" | grep -v "connect 0 receive 0 exceptions 0" | tr '\n' ' ')
  echo "$rps | $p50 | $p99 | $cpu | ${fails:-}"
}

U=http://127.0.0.1:$P_PNC
if [ -n "${BENCH_HOLD:-}" ]; then # keep the three servers up for manual runs (perf, top, ...)
  start_openssl
  printf 'W=%s\nPNC=%s\nSSL=http://127.0.0.1:%s/\nNGX=http://127.0.0.1:%s/ocsp\nGET_PATH=%s\n' \
    "$W" "$U" "$P_SSL" "$P_NGX" "$GET_PATH" >"$BENCH_HOLD"
  echo "servers up; see $BENCH_HOLD; Ctrl-C to stop" >&2
  while sleep 3600; do :; done
fi
echo "running (${DUR}s per line) ..." >&2
echo "Response sizes: pnc-pki cached $SIZE B, pnc-pki nonce $NONCE_SIZE B, OpenSSL responder $SSL_SIZE B, nginx file $SIZE B"
echo "Machine: $(nproc) vCPU, $(uname -r); ${DUR}s per run; wrk -t2; ab without -k."
echo
echo "| server | request | tool, connections | req/s | p50 | p99 | server CPU µs/req | errors |"
echo "|---|---|---|---|---|---|---|---|"
echo "| nginx (static file) | GET | wrk keep-alive, 64 | $(run_wrk "$NGX_PID" 64 "" "http://127.0.0.1:$P_NGX/ocsp") |"
echo "| pnc-pki | POST cached | wrk keep-alive, 64 | $(run_wrk "$PNC_PID" 64 "$W/post.lua" "$U/ocsp") |"
echo "| pnc-pki | GET cached | wrk keep-alive, 64 | $(run_wrk "$PNC_PID" 64 "" "$U/ocsp/$GET_PATH") |"
echo "| pnc-pki | POST nonce (live HSM signature) | wrk keep-alive, 64 | $(run_wrk "$PNC_PID" 64 "$W/post-nonce.lua" "$U/ocsp") |"
echo "| nginx (static file) | GET | ab no keep-alive, 16 | $(run_ab "$NGX_PID" 16 "" "http://127.0.0.1:$P_NGX/ocsp") |"
start_openssl
echo "| OpenSSL \`ocsp -index\` | POST (signs live) | ab no keep-alive, 16 | $(run_ab "$SSL_PID" 16 "$W/req.der" "http://127.0.0.1:$P_SSL/") |"
start_openssl
echo "| OpenSSL \`ocsp -index\` | POST nonce | ab no keep-alive, 16 | $(run_ab "$SSL_PID" 16 "$W/req-nonce.der" "http://127.0.0.1:$P_SSL/") |"
stop_openssl # so that it does not take CPU from the runs below
echo "| pnc-pki | POST cached | ab no keep-alive, 16 | $(run_ab "$PNC_PID" 16 "$W/req.der" "$U/ocsp") |"
echo "| pnc-pki | GET cached | ab no keep-alive, 16 | $(run_ab "$PNC_PID" 16 "" "$U/ocsp/$GET_PATH") |"
echo "| pnc-pki | POST nonce | ab no keep-alive, 16 | $(run_ab "$PNC_PID" 16 "$W/req-nonce.der" "$U/ocsp") |"
