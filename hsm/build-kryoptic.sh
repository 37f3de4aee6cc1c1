#!/usr/bin/env bash
# Build kryoptic (a PKCS#11 software token from crates.io) as the shared library
# libkryoptic_pkcs11.so, so the HSM-facing tests also run against a second PKCS#11
# implementation. Prints the path of the library on its last line (stdout); progress goes to
# stderr. Idempotent: the result is cached under $KRYOPTIC_CACHE (default
# ~/.cache/pnc-pki/kryoptic/VERSION, or target/pnc-pki/kryoptic/VERSION without a HOME) and a
# second run only prints the path.
#
# Needs cargo, the OpenSSL development files (libssl-dev), libclang-dev (bindgen) and
# pkg-config. Debian 12 ships OpenSSL 3.0, so the default features (which need newer OpenSSL
# APIs for EdDSA/PQC) are off: the features below are what pnc-pki uses (EC P-256/P-384/P-521
# and RSA keys, ECDSA/RSA signatures, SHA-2, AES/KDFs for the sqlite storage), linked against
# the system OpenSSL.
#
# Usage: hsm/build-kryoptic.sh            (prints .../libkryoptic_pkcs11.so)
#        KRYOPTIC_VERSION=1.5.4 hsm/build-kryoptic.sh
set -euo pipefail

VERSION=${KRYOPTIC_VERSION:-1.5.4}
if [ -n "${XDG_CACHE_HOME:-}" ]; then base=$XDG_CACHE_HOME
elif [ -n "${HOME:-}" ]; then base=$HOME/.cache
else base=$(cd "$(dirname "$0")/.." && pwd)/target; fi
CACHE=${KRYOPTIC_CACHE:-$base/pnc-pki/kryoptic/$VERSION}
LIB="$CACHE/libkryoptic_pkcs11.so"
FEATURES="kryoptic-lib/dynamic,kryoptic-lib/sqlitedb,kryoptic-lib/aes,kryoptic-lib/ecc_min,kryoptic-lib/hash_all,kryoptic-lib/rsa,kryoptic-lib/kdf_all"

if [ -f "$LIB" ]; then
  echo "$LIB"
  exit 0
fi

mkdir -p "$CACHE"
WORK="$CACHE/build"
rm -rf "$WORK"
mkdir -p "$WORK/fetch/src"

# Let cargo download the published crate (checksum-verified against the registry index), then
# build it from the unpacked source with its own Cargo.lock (--locked).
cat > "$WORK/fetch/Cargo.toml" <<EOF
[package]
name = "kryoptic-fetch"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
kryoptic = { version = "=$VERSION", default-features = false }
EOF
echo 'fn main() {}' > "$WORK/fetch/src/main.rs"
echo "build-kryoptic: fetching kryoptic $VERSION" >&2
cargo fetch --quiet --manifest-path "$WORK/fetch/Cargo.toml" >&2
SRC=$(cargo metadata --format-version 1 --manifest-path "$WORK/fetch/Cargo.toml" 2>/dev/null |
  python3 -c 'import json,sys; m=json.load(sys.stdin); print(next(p["manifest_path"] for p in m["packages"] if p["name"]=="kryoptic"))')
cp -a "$(dirname "$SRC")" "$WORK/src"

echo "build-kryoptic: building kryoptic $VERSION (features $FEATURES)" >&2
start=$(date +%s)
cargo build --quiet --release --locked --no-default-features --features "$FEATURES" \
  --manifest-path "$WORK/src/Cargo.toml" --target-dir "$WORK/target" >&2
echo "build-kryoptic: built in $(($(date +%s) - start)) s" >&2

cp "$WORK/target/release/libkryoptic_pkcs11.so" "$LIB.tmp"
mv "$LIB.tmp" "$LIB"
rm -rf "$WORK"
echo "$LIB"
