#!/usr/bin/env bash
# Tests outside `cargo test`: the UI (vitest + browser end-to-end) and the deployment
# manifests. Each part skips itself with a message when its tools are absent locally;
# .ci/run installs them, so in CI nothing is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
for t in scripts/tests/*.sh; do
  [ -e "$t" ] || continue
  echo "== $t"
  bash "$t"
done
