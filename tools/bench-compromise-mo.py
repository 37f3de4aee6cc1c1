#!/usr/bin/env python3
"""Sub-CA compromise response, MO case: how long `pnc-pki ca compromise --ca mo-sub-ca-2` takes
when N contracts of pooled vehicles depend on it, i.e. how fast every contract's data is
regenerated under the replacement.

Starts `pnc-pki serve` (SQLite, or PostgreSQL with PNC_BENCH_DB=postgres://.../DBNAME, an empty
database) on a fresh data dir, trusts a throw-away OEM root, uploads N vehicle (OEM provisioning)
certificates to the pool (PUT /v1/oem/provCerts, C concurrent clients), pre-generates contract
data for each (PUT /v1/cps/generate/signedContractData: creates the contract and its first
contract certificate under mo-sub-ca-2), then runs `pnc-pki ca compromise --ca mo-sub-ca-2 --json`
and times it. Prints the report's per-step counts and seconds and the regeneration rate.

usage: tools/bench-compromise-mo.py [N=10000] [C=8]   (PNC_BIN: default target/release)
env:   PNC_BENCH_WRAP (prefix for the measured command, e.g. "strace -c -f -o FILE"),
       PNC_BENCH_KEEP=1 (keep the data dir),
       PNC_BENCH_SAVE=DIR (after seeding, save a copy of the seeded deployment to DIR; on
       PostgreSQL its database is copied as a template database, DBNAME_copy_PID),
       PNC_BENCH_FROM=DIR (skip seeding: measure on a copy of a deployment saved before; N is
       then what DIR holds) -- to compare builds or settings on the same data in minutes
"""
import base64, datetime, json, os, pathlib, re, shutil, socket, subprocess, sys, tempfile, threading
import resource, shlex, time, urllib.request

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

N = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
C = int(sys.argv[2]) if len(sys.argv) > 2 else 8
NS2 = "urn:iso:15118:2:2013:MsgDef"
HERE = pathlib.Path(__file__).resolve().parent
BIN = os.environ.get("PNC_BIN", str(HERE.parent / "target/release/pnc-pki"))
env = dict(os.environ, PNC_HSM_PIN="bench-user-pin-1234", PNC_HSM_SO_PIN="bench-so-pin-12345678",
           PNC_LOG="warn", PNC_LIMIT_ENROLL_PER_CLIENT="off", PNC_LIMIT_TOKEN_PER_IP="off")
work = tempfile.mkdtemp(prefix="pnc-bench-compromise-mo.")
data = f"{work}/d"


def copy_deployment(src, dst):
    """Copy a stopped deployment (work dir) and point its absolute paths (token directory,
    database URL) at the copy, so the two never share a token. A PostgreSQL database is copied
    too (CREATE DATABASE … TEMPLATE: nothing may be connected to it), as DBNAME_copy_N."""
    shutil.copytree(src, dst, dirs_exist_ok=True)
    for f in ("d/hsm/softhsm2.conf", "d/pnc-pki.toml"):
        p = pathlib.Path(dst, f)
        p.write_text(p.read_text().replace(str(src), str(dst)))
    toml = pathlib.Path(dst, "d/pnc-pki.toml")
    m = re.search(r'database_url = "(postgres(?:ql)?://[^"]*/)([A-Za-z0-9_]+)"', toml.read_text())
    if m:
        base, name = m.group(1), m.group(2)
        copy = f"{name.split('_copy_')[0]}_copy_{os.getpid()}"
        admin = base + "postgres"
        subprocess.run(["psql", admin, "-qc", f"DROP DATABASE IF EXISTS {copy} WITH (FORCE)",
                        "-c", f"CREATE DATABASE {copy} TEMPLATE {name}",
                        # The copy went through the WAL (PostgreSQL 15's default): flush it
                        # now, not in a checkpoint during the measurement.
                        "-c", "CHECKPOINT"], check=True)
        toml.write_text(toml.read_text().replace(base + name, base + copy))
        print(f"database {name} copied to {copy}")
        return admin, copy
    return None


def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p


def run(*args):
    return subprocess.run([BIN, *args, "--data-dir", data], env=env, check=True,
                          capture_output=True, text=True).stdout


def load():
    return open("/proc/loadavg").read().split()[0]


# A throw-away OEM PKI: one root that signs every vehicle certificate (CN = PCID).
now = datetime.datetime.now(datetime.timezone.utc)
root_key = ec.generate_private_key(ec.SECP256R1())
root_name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Bench OEM"),
                       x509.NameAttribute(NameOID.COMMON_NAME, "Bench OEM Root")])


def cert(subject, pub, ca):
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(root_name)
            .public_key(pub).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .sign(root_key, hashes.SHA256()))


root = cert(root_name, root_key.public_key(), True)
with open(f"{work}/oem-root.pem", "wb") as f:
    f.write(root.public_bytes(serialization.Encoding.PEM))
car_key = ec.generate_private_key(ec.SECP256R1())

FROM = os.environ.get("PNC_BENCH_FROM")
copied_db = copy_deployment(FROM, work) if FROM else None
init = [BIN, "init", "--data-dir", data]
if os.environ.get("PNC_BENCH_DB"):
    init += ["--database-url", os.environ["PNC_BENCH_DB"]]
if not FROM:
    subprocess.run(init, env=env, check=True, capture_output=True)
    run("trust", "add", "--kind", "oem-root", f"{work}/oem-root.pem")
    mo = json.loads(run("client", "add", "--name", "mo", "--role", "mo", "--tenant", "DE8AA", "--json"))
    oem = json.loads(run("client", "add", "--name", "oem", "--role", "oem", "--tenant", "WP0",
                         "--json"))
port = free_port()
base = f"http://127.0.0.1:{port}"


def start_serve():
    p = subprocess.Popen([BIN, "serve", "--data-dir", data, "--listen", f"127.0.0.1:{port}"],
                         env=env, stdout=subprocess.DEVNULL, stderr=open(f"{work}/serve.log", "a"))
    for _ in range(300):
        try:
            urllib.request.urlopen(base + "/health/ready", timeout=1); break
        except Exception:
            time.sleep(0.1)
    return p


srv = start_serve()


def call(method, path, body, token=None):
    req = urllib.request.Request(base + path, method=method, data=json.dumps(body).encode())
    req.add_header("content-type", "application/json")
    if token:
        req.add_header("authorization", token)
    with urllib.request.urlopen(req, timeout=60) as r:
        return r.status, r.read()


def token(c):
    _, t = call("POST", "/oauth/token", {"grant_type": "client_credentials",
                "client_id": c["client_id"], "client_secret": c["client_secret"]})
    return "Bearer " + json.loads(t)["access_token"]


mo_token, oem_token = (None, None) if FROM else (token(mo), token(oem))
pcid = lambda i: f"WP0ZZZ99ZT{i:07d}"
emaid = lambda i: f"DE8AA{i:09d}"


def phase(name, fn):
    errors, lock = [0], threading.Lock()

    def worker(w):
        for i in range(w, N, C):
            try:
                fn(i)
            except Exception as e:
                with lock:
                    errors[0] += 1
                    if errors[0] <= 3:
                        print(f"  {name} {i}: {e}", file=sys.stderr)

    t0 = time.monotonic()
    ts = [threading.Thread(target=worker, args=(w,)) for w in range(C)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    dt = time.monotonic() - t0
    print(f"{name}: {N} in {dt:.1f} s ({N / dt:.0f}/s, {errors[0]} errors, load {load()})")


def pool(i):
    car = cert(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Bench OEM"),
                          x509.NameAttribute(NameOID.COMMON_NAME, pcid(i))]),
               car_key.public_key(), False)
    call("PUT", "/v1/oem/provCerts", {
        "vehicleCertificate": base64.b64encode(car.public_bytes(serialization.Encoding.DER)).decode(),
        "xsdMsgDefNamespace": NS2}, oem_token)


def pregenerate(i):
    s, _ = call("PUT", "/v1/cps/generate/signedContractData",
                {"emaid": emaid(i), "pcid": pcid(i), "xsdMsgDefNamespace": NS2}, mo_token)
    assert s == 201, s


if FROM:
    print(f"seeded deployment copied from {FROM}")
else:
    phase("pooled vehicles (PUT /v1/oem/provCerts)", pool)
    phase("contracts pre-generated (PUT /v1/cps/generate/signedContractData)", pregenerate)
    if os.environ.get("PNC_BENCH_SAVE"):
        srv.terminate(); srv.wait()
        copy_deployment(work, os.environ["PNC_BENCH_SAVE"])
        print(f"seeded deployment saved to {os.environ['PNC_BENCH_SAVE']}")
        srv = start_serve()

print(f"load before the command: {open('/proc/loadavg').read().strip()}")
ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
t0 = time.monotonic()
# PNC_BENCH_WRAP: a prefix for the measured command, e.g. "perf record -g -o /tmp/perf.data".
out = subprocess.run([*shlex.split(os.environ.get("PNC_BENCH_WRAP", "")), BIN, "ca", "compromise", "--data-dir", data, "--ca", "mo-sub-ca-2",
                      "--json"], env=env, capture_output=True, text=True)
wall = time.monotonic() - t0
ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
assert out.returncode == 0, out.stderr
report = json.loads(out.stdout)
print(f"load after the command: {open('/proc/loadavg').read().strip()}")
print(f"ca compromise: {wall:.2f} s wall (process start and HSM login included), "
      f"report {report['seconds']:.2f} s; its CPU: user {ru1.ru_utime - ru0.ru_utime:.1f} s, "
      f"system {ru1.ru_stime - ru0.ru_stime:.1f} s")
print(f"revoked {report['revoked']}, contracts_regenerated {report['contracts_regenerated']}")
for s in report["steps"]:
    print(f"  {s['step']:<14} {s['count']:>7}  {s['seconds']:8.3f} s  {s['detail'][:90]}")
regen = next((s for s in report["steps"] if s["step"] == "contracts"), None)
if regen and regen["seconds"] > 0:
    print(f"regeneration: {regen['count'] / regen['seconds']:.0f}/s "
          f"({report['contracts_regenerated'] / wall:.0f}/s over the whole command)")
srv.terminate(); srv.wait()
if os.environ.get("PNC_BENCH_KEEP"):
    print(f"kept {work}")
else:
    shutil.rmtree(work, ignore_errors=True)
    if copied_db:
        subprocess.run(["psql", copied_db[0], "-qc", f"DROP DATABASE IF EXISTS {copied_db[1]} WITH (FORCE)"])
