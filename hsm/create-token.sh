#!/usr/bin/env bash
# Create a SoftHSM2 token for pnc-pki under DATA_DIR/hsm by hand (what `pnc-pki init` does itself).
# Usage: PNC_HSM_PIN=... PNC_HSM_SO_PIN=... hsm/create-token.sh DATA_DIR [TOKEN_LABEL]
# PINs come from the environment only, never from the command line of this script.
set -euo pipefail
DATA_DIR=${1:?usage: $0 DATA_DIR [TOKEN_LABEL]}
LABEL=${2:-pnc-pki}
: "${PNC_HSM_PIN:?set PNC_HSM_PIN}"
: "${PNC_HSM_SO_PIN:?set PNC_HSM_SO_PIN}"
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$DATA_DIR/hsm/tokens"
TOKENDIR=$(cd "$DATA_DIR/hsm/tokens" && pwd)
sed "s#@TOKENDIR@#$TOKENDIR#" "$HERE/softhsm2.conf.template" > "$DATA_DIR/hsm/softhsm2.conf"
export SOFTHSM2_CONF="$DATA_DIR/hsm/softhsm2.conf"
if softhsm2-util --show-slots | grep -q "Label:.*$LABEL\b"; then
  echo "token '$LABEL' already exists under $DATA_DIR/hsm"
  exit 0
fi
softhsm2-util --init-token --free --label "$LABEL" --so-pin "$PNC_HSM_SO_PIN" --pin "$PNC_HSM_PIN" >/dev/null
echo "created token '$LABEL' under $DATA_DIR/hsm (SOFTHSM2_CONF=$SOFTHSM2_CONF)"
