#!/usr/bin/env bash
# Create a kryoptic token for pnc-pki: a kryoptic.conf with one slot whose storage is a SQLite
# file under TOKEN_DIR, then C_InitToken (SO PIN) and C_InitPIN (user PIN) through OpenSC's
# pkcs11-tool. pnc-pki then uses it by configuration alone:
#   KRYOPTIC_CONF=TOKEN_DIR/kryoptic.conf PNC_HSM_MODULE=/path/libkryoptic_pkcs11.so \
#   PNC_HSM_TOKEN_LABEL=LABEL PNC_HSM_PIN=... pnc-pki init ...
#
# Usage: PNC_HSM_PIN=... PNC_HSM_SO_PIN=... hsm/kryoptic-token.sh MODULE TOKEN_DIR [TOKEN_LABEL]
# PINs come from the environment only (pkcs11-tool reads them with env:VAR), never from a
# command line. Running it again on an initialised token changes nothing.
set -euo pipefail
MODULE=${1:?usage: $0 MODULE TOKEN_DIR [TOKEN_LABEL]}
DIR=${2:?usage: $0 MODULE TOKEN_DIR [TOKEN_LABEL]}
LABEL=${3:-pnc-pki}
: "${PNC_HSM_PIN:?set PNC_HSM_PIN}"
: "${PNC_HSM_SO_PIN:?set PNC_HSM_SO_PIN}"
command -v pkcs11-tool >/dev/null || { echo "pkcs11-tool not found (apt-get install opensc)" >&2; exit 1; }
[ -f "$MODULE" ] || { echo "no PKCS#11 module at $MODULE (hsm/build-kryoptic.sh builds one)" >&2; exit 1; }

mkdir -p "$DIR"
chmod 700 "$DIR"
DIR=$(cd "$DIR" && pwd)
export KRYOPTIC_CONF="$DIR/kryoptic.conf"
if [ ! -f "$KRYOPTIC_CONF" ]; then
  cat > "$KRYOPTIC_CONF" <<EOF
# kryoptic configuration for pnc-pki (written by hsm/kryoptic-token.sh).
[[slots]]
slot = 1
description = "pnc-pki"
dbtype = "sqlite"
dbargs = "$DIR/token.sql"
EOF
fi

if pkcs11-tool --module "$MODULE" --list-token-slots 2>/dev/null | grep -q "token label *: *$LABEL\$"; then
  echo "token '$LABEL' already exists (KRYOPTIC_CONF=$KRYOPTIC_CONF)"
  exit 0
fi
pkcs11-tool --module "$MODULE" --slot 1 --init-token --label "$LABEL" --so-pin env:PNC_HSM_SO_PIN >/dev/null
pkcs11-tool --module "$MODULE" --slot 1 --init-pin --login --login-type so \
  --so-pin env:PNC_HSM_SO_PIN --pin env:PNC_HSM_PIN >/dev/null
echo "created token '$LABEL' (KRYOPTIC_CONF=$KRYOPTIC_CONF)"
