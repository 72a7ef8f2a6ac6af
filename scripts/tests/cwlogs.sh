#!/usr/bin/env bash
# Tests of the CloudWatch Logs-compatible API (issue #8) with real AWS clients: boto3 and the
# aws CLI from PyPI, against a real `kinsight server` process started by the tests — over plain
# HTTP, and over HTTPS (`--tls-cert`/`--tls-key`, a CA made with openssl at test time,
# test_https.py). What is asserted is in scripts/tests/cwlogs/test_*.py.
#
# The clients live in their own virtualenv under $KINSIGHT_TOOLS_DIR (default
# ~/.cache/kinsight), rebuilt when requirements.txt changes. The server binary is
# $KINSIGHT_BIN, else the debug build in the cargo target directory (built if missing).
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO="$PWD"
HERE="$REPO/scripts/tests/cwlogs"
TOOLS="${KINSIGHT_TOOLS_DIR:-$HOME/.cache/kinsight}"
VENV="$TOOLS/cwlogs-venv"
mkdir -p "$TOOLS"

STAMP="$VENV/.requirements.sha256"
want="$(sha256sum "$HERE/requirements.txt" | cut -d' ' -f1)"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
  echo "cwlogs: installing $HERE/requirements.txt into $VENV"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$HERE/requirements.txt"
  echo "$want" >"$STAMP"
fi

if [ -z "${KINSIGHT_BIN:-}" ]; then
  TARGET="${CARGO_TARGET_DIR:-$REPO/target}"
  KINSIGHT_BIN="$TARGET/debug/kinsight"
  # Quick when `cargo test` has just built it.
  cargo build --quiet --bin kinsight
fi
export KINSIGHT_BIN
export PATH="$VENV/bin:$PATH"   # the `aws` command of the virtualenv

cd "$HERE"
exec "$VENV/bin/python" -m pytest -q -p no:cacheprovider "$@"
