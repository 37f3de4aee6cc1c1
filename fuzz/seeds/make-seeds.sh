#!/usr/bin/env bash
# Regenerate the seed inputs of ocsp_head and csr_parse (fresh keys, so new bytes each time).
# Usage: fuzz/seeds/make-seeds.sh [OUT_DIR]   (default: the directory of this script)
# Needs the openssl CLI and python3.
set -euo pipefail
out=$(realpath "${1:-$(dirname "$0")}")
mkdir -p "$out/csr_parse" "$out/ocsp_head"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

cat > ext.cnf <<'EOF'
[req]
distinguished_name = dn
req_extensions = v3
prompt = no
[dn]
CN = DEEVSC123456789
O = Example CPO GmbH
C = DE
DC = CPO
[v3]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature, keyAgreement
subjectAltName = DNS:cs01.example.com
EOF
cat > noext.cnf <<'EOF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = DEEVSC000000001
O = Example
EOF

openssl ecparam -name prime256v1 -genkey -noout -out p256.key
openssl ecparam -name secp384r1 -genkey -noout -out p384.key
openssl ecparam -name secp521r1 -genkey -noout -out p521.key
openssl ecparam -name brainpoolP256r1 -genkey -noout -out bp256.key
openssl genrsa -out rsa2048.key 2048 2>/dev/null
# name_digest: p256x384 is a P-256 key signed with SHA-384.
for k in p256:sha256 p384:sha384 p521:sha512 p256x384:sha384 rsa2048:sha256; do
    name=${k%%:*} md=${k##*:}
    key=${name%%x*}.key
    openssl req -new -key "$key" -"$md" -config ext.cnf -out "${name}_${md}_ext.pem"
    openssl req -new -key "$key" -"$md" -config noext.cnf -out "${name}_${md}_noext.pem"
done
openssl req -new -key bp256.key -sha256 -config noext.cnf -out bp256_sha256_noext.pem
c=$out/csr_parse
for f in *.pem; do
    b=${f%.pem}
    cp "$f" "$c/$b.pem"                                    # PEM
    openssl req -in "$f" -outform DER -out "$c/$b.der"     # raw DER
    openssl base64 -A -in "$c/$b.der" >"$c/$b.b64"         # base64 DER, one line
    openssl base64 -in "$c/$b.der" >"$c/$b.b64lines"       # base64 DER, 64-column lines
done
sed 's/CERTIFICATE REQUEST/NEW CERTIFICATE REQUEST/' p256_sha256_ext.pem >"$c/p256_newlabel.pem"
sed 's/$/\r/' p384_sha384_noext.pem >"$c/p384_crlf.pem"
python3 -c 'import sys; d=bytearray(open(sys.argv[1],"rb").read()); d[-3]^=1; open(sys.argv[2],"wb").write(d)' \
    "$c/p256_sha256_ext.der" "$c/p256_badsig.der"

# OCSP requests for the HTTP heads: one without, one with a nonce.
openssl req -x509 -new -key p256.key -sha256 -subj /CN=TestCA -days 30 -out ca.pem 2>/dev/null
openssl ocsp -issuer ca.pem -serial 0x1a2b3c -reqout ocspreq.der -no_nonce >/dev/null
openssl ocsp -issuer ca.pem -serial 0x1a2b3c -reqout ocspreq_nonce.der >/dev/null
python3 - "$out/ocsp_head" <<'EOF'
import base64, os, sys, urllib.parse
out = sys.argv[1]
req = open('ocspreq.der', 'rb').read()
reqn = open('ocspreq_nonce.der', 'rb').read()
b64 = base64.b64encode(req).decode()
b64u = urllib.parse.quote(base64.b64encode(reqn).decode(), safe='')
post = lambda extra=b"", path=b"/ocsp", ver=b"1.1", body=req: (
    b"POST " + path + b" HTTP/" + ver + b"\r\n" + extra + b"Content-Length: %d\r\n\r\n" % len(body) + body)
seeds = {
    'post_cl': post(b"Host: ocsp.example.com\r\nContent-Type: application/ocsp-request\r\n"),
    'post_cl_head_only': b"POST /ocsp HTTP/1.1\r\nHost: ocsp.example.com\r\nContent-Type: application/ocsp-request\r\nContent-Length: 107\r\n\r\n",
    'post_slash_path': post(b"Host: pki\r\nConnection: close\r\n", path=b"/ocsp/", body=reqn),
    'get_b64': ("GET /ocsp/%s HTTP/1.1\r\nHost: ocsp.example.com\r\nAccept: */*\r\n\r\n" % b64).encode(),
    'get_b64_urlenc_query': ("GET /ocsp/%s?x=1 HTTP/1.1\r\nHost: ocsp.example.com\r\nUser-Agent: curl/8.5.0\r\n\r\n" % b64u).encode(),
    'get_cl0': ("GET /ocsp/%s HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n" % b64).encode(),
    'get_http10_keepalive': ("GET /ocsp/%s HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" % b64).encode(),
    'post_http10': post(ver=b"1.0"),
    'post_http10_keepalive': post(b"Connection: Keep-Alive\r\n", ver=b"1.0"),
    'post_chunked': b"POST /ocsp HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n" % len(req) + req + b"\r\n0\r\n\r\n",
    'post_expect': b"POST /ocsp HTTP/1.1\r\nHost: h\r\nContent-Length: 70\r\nExpect: 100-continue\r\n\r\n",
    'post_absolute_form': post(b"Host: ocsp.example.com\r\n", path=b"http://ocsp.example.com/ocsp"),
    'get_absolute_form': ("GET http://ocsp.example.com/ocsp/%s HTTP/1.1\r\nHost: ocsp.example.com\r\n\r\n" % b64).encode(),
    'partial_request_line': b"POST /ocsp HTT",
    'partial_headers': b"POST /ocsp HTTP/1.1\r\nHost: ocsp.example.com\r\nContent-Le",
    'partial_no_final_crlf': b"GET /ocsp/MEQw HTTP/1.1\r\nHost: h\r\n",
    'xff_single': post(b"Host: h\r\nX-Forwarded-For: 203.0.113.7\r\n"),
    'xff_multi': post(b"Host: h\r\nX-Forwarded-For: 203.0.113.7, 10.0.0.1\r\nx-forwarded-for: 2001:db8::1\r\n"),
    'pipelined_two': post(b"Host: h\r\n") * 2,
    'other_route': b"GET /api/v1/health HTTP/1.1\r\nHost: h\r\n\r\n",
    'other_method': b"PUT /ocsp HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n",
    'dup_cl': b"POST /ocsp HTTP/1.1\r\nContent-Length: 70\r\nContent-Length: 70\r\n\r\n",
    'cl_plus': b"POST /ocsp HTTP/1.1\r\nContent-Length: +70\r\n\r\n",
    'cl_huge': b"POST /ocsp HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
    'upgrade_h2c': b"GET /ocsp HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
    'conn_close_mixed': b"POST /ocsp HTTP/1.1\r\nConnection: keep-alive, CLOSE\r\nContent-Length: 70\r\n\r\n",
    'lf_only': b"POST /ocsp HTTP/1.1\nHost: h\nContent-Length: 70\n\n",
}
for name, data in seeds.items():
    open(os.path.join(out, name), 'wb').write(data)
EOF
echo "seeds written to $out/csr_parse ($(ls "$c" | wc -l)) and $out/ocsp_head ($(ls "$out/ocsp_head" | wc -l))"
