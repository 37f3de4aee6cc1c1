#!/usr/bin/env python3
"""Sub-CA compromise response: how long `pnc-pki ca compromise` takes for a CPO sub-CA with N
EVSE certificates, and whether a second replica answers OCSP "revoked" when it returns.

Starts two `pnc-pki serve` replicas (SQLite, or PostgreSQL with PNC_BENCH_DB=postgres://...) on a
fresh data dir, enrolls N SECC certificates (distinct EVSE IDs, C concurrent clients) under
cpo-sub-ca-2, then runs `pnc-pki ca compromise --ca cpo-sub-ca-2 --json` and times it. Right after
it returns, asks replica B (which served "good" for them before) for a sample of the leaves and
the sub-CA with `openssl ocsp`. Prints the report's per-step counts and seconds.

usage: tools/bench-compromise.py [N=10000] [C=8] [BATCH=1000]   (PNC_BIN: default target/release)
"""
import base64, json, os, pathlib, random, shutil, socket, subprocess, sys, tempfile, threading, time
import urllib.request

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID

N = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
C = int(sys.argv[2]) if len(sys.argv) > 2 else 8
BATCH = sys.argv[3] if len(sys.argv) > 3 else "1000"
HERE = pathlib.Path(__file__).resolve().parent
BIN = os.environ.get("PNC_BIN", str(HERE.parent / "target/release/pnc-pki"))
env = dict(os.environ, PNC_HSM_PIN="bench-user-pin-1234", PNC_HSM_SO_PIN="bench-so-pin-12345678",
           PNC_LOG="warn", PNC_LIMIT_ENROLL_PER_CLIENT="off", PNC_LIMIT_TOKEN_PER_IP="off")
work = tempfile.mkdtemp(prefix="pnc-bench-compromise.")
data = f"{work}/d"


def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p


def run(*args):
    return subprocess.run([BIN, *args, "--data-dir", data], env=env, check=True,
                          capture_output=True, text=True).stdout


init = [BIN, "init", "--data-dir", data]
if os.environ.get("PNC_BENCH_DB"):
    init += ["--database-url", os.environ["PNC_BENCH_DB"]]
subprocess.run(init, env=env, check=True, capture_output=True)
cpo = json.loads(run("client", "add", "--name", "cpo", "--role", "cpo", "--tenant", "DE*ABC",
                     "--json"))
run("export", "--out", f"{work}/export")


def serve():
    port = free_port()
    p = subprocess.Popen([BIN, "serve", "--data-dir", data, "--listen", f"127.0.0.1:{port}"],
                         env=env, stdout=subprocess.DEVNULL,
                         stderr=open(f"{work}/serve-{port}.log", "w"))
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(base + "/health/ready", timeout=1); break
        except Exception:
            time.sleep(0.1)
    return p, base


(pa, a), (pb, b) = serve(), serve()


def post(base, path, body, ctype, token=None):
    req = urllib.request.Request(base + path, method="POST", data=body)
    req.add_header("content-type", ctype)
    if token:
        req.add_header("authorization", token)
    with urllib.request.urlopen(req, timeout=60) as r:
        return r.read()


tok = json.loads(post(a, "/oauth/token", json.dumps(
    {"grant_type": "client_credentials", "client_id": cpo["client_id"],
     "client_secret": cpo["client_secret"]}).encode(), "application/json"))
token = "Bearer " + tok["access_token"]
key = ec.generate_private_key(ec.SECP256R1())


def csr(i):
    name = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "DE"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ABC"),
                      x509.NameAttribute(NameOID.DOMAIN_COMPONENT, "CPO"),
                      x509.NameAttribute(NameOID.COMMON_NAME, f"DE*ABC*E{i}")])
    r = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
    return base64.b64encode(r.public_bytes(serialization.Encoding.DER))


leaves, errors, lock = {}, [0], threading.Lock()


def worker(w):
    for i in range(w, N, C):
        try:
            p7 = base64.b64decode(post(a, "/cpo/simpleenroll/ISO15118-2", csr(i),
                                       "application/pkcs10", token))
            certs = pkcs7.load_der_pkcs7_certificates(p7)
            with lock:
                leaves[i] = certs[0]
        except Exception:
            with lock:
                errors[0] += 1


t0 = time.monotonic()
ts = [threading.Thread(target=worker, args=(w,)) for w in range(C)]
[t.start() for t in ts]
[t.join() for t in ts]
print(f"seeded {len(leaves)} EVSE certificates in {time.monotonic() - t0:.1f} s "
      f"({errors[0]} errors)")

issuer = f"{work}/export/cpo-sub-ca-2.pem"
sample = random.sample(sorted(leaves), min(20, len(leaves)))
for i in sample:
    with open(f"{work}/leaf{i}.pem", "wb") as f:
        f.write(leaves[i].public_bytes(serialization.Encoding.PEM))


def ocsp(base, iss, cert):
    out = subprocess.run(["openssl", "ocsp", "-issuer", iss, "-cert", cert, "-url", base + "/ocsp",
                          "-no_nonce", "-noverify"], capture_output=True, text=True).stdout
    for s in ("good", "revoked", "unknown"):
        if f": {s}" in out:
            return s
    return out


before = {ocsp(b, issuer, f"{work}/leaf{i}.pem") for i in sample}
t0 = time.monotonic()
out = subprocess.run([BIN, "ca", "compromise", "--data-dir", data, "--ca", "cpo-sub-ca-2",
                      "--batch-size", BATCH, "--json"], env=env, capture_output=True, text=True)
wall = time.monotonic() - t0
assert out.returncode == 0, out.stderr
report = json.loads(out.stdout)
after = [ocsp(b, issuer, f"{work}/leaf{i}.pem") for i in sample]
sub = ocsp(b, f"{work}/export/cpo-sub-ca-1.pem", issuer)
print(f"ca compromise: {wall:.2f} s wall (process start and HSM login included), "
      f"report {report['seconds']:.2f} s")
print(f"revoked {report['revoked']}, reenroll {report['reenroll']}, "
      f"contracts_regenerated {report['contracts_regenerated']}")
for s in report["steps"]:
    print(f"  {s['step']:<14} {s['count']:>7}  {s['seconds']:8.3f} s  {s['detail'][:90]}")
print(f"replica B before: {sorted(before)}; right after: {sorted(set(after))}; sub-CA: {sub}")
for p in (pa, pb):
    p.terminate(); p.wait()
shutil.rmtree(work, ignore_errors=True)
