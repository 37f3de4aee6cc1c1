#!/usr/bin/env python3
"""Webhook delivery: how long from a committed change to the signed event at the receiver.

Starts `pnc-pki serve` (SQLite, PNC_FETCH_ALLOW=127.0.0.1/32) on a fresh data dir, a receiver on
loopback that checks every payload-signature, registers an OEM endpoint for
oem.contract.created, then has an MO create N contracts with C concurrent clients. Reports the
creation rate, the delivery rate, and commit-to-receipt latency percentiles (the create answer's
arrival to the event's arrival, per EMAID).

usage: tools/bench-webhooks.py [N=500] [C=8]    (PNC_BIN: the binary; default target/release)
"""
import hashlib, hmac, http.server, json, os, pathlib, socket, subprocess, sys, tempfile
import threading, time, urllib.request

N = int(sys.argv[1]) if len(sys.argv) > 1 else 500
C = int(sys.argv[2]) if len(sys.argv) > 2 else 8
HERE = pathlib.Path(__file__).resolve().parent
BIN = os.environ.get("PNC_BIN", str(HERE.parent / "target/release/pnc-pki"))
env = dict(os.environ, PNC_HSM_PIN="bench-user-pin-1234", PNC_HSM_SO_PIN="bench-so-pin-12345678",
           PNC_FETCH_ALLOW="127.0.0.1/32", PNC_LOG="warn",
           PNC_LIMIT_ENROLL_PER_CLIENT="off", PNC_LIMIT_TOKEN_PER_IP="off")
work = tempfile.mkdtemp(prefix="pnc-bench-webhooks.")
data = f"{work}/d"

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def run(*args):
    out = subprocess.run([BIN, *args, "--data-dir", data], env=env, check=True,
                         capture_output=True, text=True)
    return out.stdout

subprocess.run([BIN, "init", "--data-dir", data], env=env, check=True, capture_output=True)
mo = json.loads(run("client", "add", "--name", "mo", "--role", "mo", "--tenant", "DE8AA", "--json"))
oem = json.loads(run("client", "add", "--name", "oem", "--role", "oem", "--tenant", "WP0", "--json"))
port = free_port()
srv = subprocess.Popen([BIN, "serve", "--data-dir", data, "--listen", f"127.0.0.1:{port}"], env=env,
                       stdout=subprocess.DEVNULL, stderr=open(f"{work}/serve.log", "w"))
base = f"http://127.0.0.1:{port}"
for _ in range(300):
    try:
        urllib.request.urlopen(base + "/health/ready", timeout=1); break
    except Exception:
        time.sleep(0.1)

def call(method, path, body=None, token=None):
    req = urllib.request.Request(base + path, method=method,
                                 data=json.dumps(body).encode() if body is not None else None)
    req.add_header("content-type", "application/json")
    if token:
        req.add_header("authorization", token)
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read() or b"{}")

def token(c):
    t = call("POST", "/oauth/token", {"grant_type": "client_credentials",
             "client_id": c["client_id"], "client_secret": c["client_secret"]})
    return "Bearer " + t["access_token"]

got, bad, lock = {}, [0], threading.Lock()
secret = [None]
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["content-length"]))
        now = time.monotonic()
        sig = hmac.new(secret[0].encode(), body, hashlib.sha256).hexdigest()
        ok = hmac.compare_digest(sig, self.headers.get("payload-signature", ""))
        with lock:
            if ok:
                got.setdefault(json.loads(body)["payload"]["emaid"][:14], now)
            else:
                bad[0] += 1
        self.send_response(200); self.send_header("content-length", "0"); self.end_headers()
    def log_message(self, *a):
        pass
rx = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
threading.Thread(target=rx.serve_forever, daemon=True).start()
ep = call("POST", "/v1/webhook/endpoints", {"url": f"http://127.0.0.1:{rx.server_port}/in",
          "enabledEvents": ["oem.contract.created"]}, token(oem))
secret[0] = ep["secret"]
mo_token = token(mo)
made = {}
def worker(k):
    for i in range(k, N, C):
        emaid = f"DE8AA{i:09d}"
        call("POST", "/api/v1/contracts", {"emaid": emaid, "pcid": f"WP0ZZZ99ZT{i:07d}"}, mo_token)
        with lock:
            made[emaid] = time.monotonic()
t0 = time.monotonic()
ts = [threading.Thread(target=worker, args=(k,)) for k in range(C)]
[t.start() for t in ts]; [t.join() for t in ts]
t1 = time.monotonic()
while len(got) < N and time.monotonic() - t1 < 120:
    time.sleep(0.05)
t2 = max(got.values()) if got else time.monotonic()
lat = sorted((got[e] - made[e]) * 1000 for e in made if e in got)
pct = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] if lat else float("nan")
print(f"contracts: {N} by {C} clients in {t1 - t0:.2f} s ({N / (t1 - t0):.0f}/s)")
print(f"events received: {len(got)} (bad signatures: {bad[0]}), last {t2 - t0:.2f} s after the first "
      f"create ({len(got) / (t2 - t0):.0f}/s end to end)")
print(f"commit-to-receipt ms: p50 {pct(0.5):.0f}, p90 {pct(0.9):.0f}, p99 {pct(0.99):.0f}, max {lat[-1] if lat else 0:.0f}")
srv.terminate(); srv.wait(); rx.shutdown()
subprocess.run(["rm", "-rf", work])
