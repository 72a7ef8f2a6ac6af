#!/usr/bin/env bash
# The web console (issue #7): vitest component tests, the production build (and its size
# budget), then end-to-end tests in real headless Chromium (Debian's `chromium`, driven by
# playwright-core) against a real `kinsight up` — this host's agent — also fed a simulated
# cluster by `kinsight simulate`. Screenshots go to test-artifacts/ui/.
#
# Order: the UI is built here, after `cargo test`; nothing in `cargo test` needs ui/dist. A
# debug `kinsight` reads ui/dist from disk at run time (crates/server/src/ui.rs), but only if
# ui/dist existed when it was compiled (rust-embed's allow_missing compiles an empty set
# otherwise), so kinsight is built again once the console is: build.rs notices ui/dist appear.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD

missing() {
  if [ "${CI:-}" = "true" ]; then echo "ui: $1 is missing (scripts/ci-install.sh installs it)" >&2; exit 1; fi
  echo "ui: skipped: $1 is missing (scripts/ci-install.sh installs it)"; exit 0
}
command -v npm >/dev/null 2>&1 || missing npm
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
[ -x "$CHROMIUM" ] || missing "$CHROMIUM (apt-get install chromium)"

cargo build -p kinsight-cli --quiet
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/debug/kinsight
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# Without ui/dist the binary still serves its API, and `/` says how to build the console.
rm -rf ui/dist
# The logs exist before the background process opens them: the polling `sed` below must not
# race the redirection (a missing file would end the script under `set -e`).
: >"$WORK/bare.log"
env -u KINSIGHT_TOKEN "$BIN" server --data-dir "$WORK/bare" --listen 127.0.0.1:0 >"$WORK/bare.log" 2>"$WORK/bare.err" &
BARE=$!
PIDS+=($BARE)
BARE_URL=
for _ in $(seq 1 200); do
  BARE_URL=$(sed -n 's|^kinsight server listening on \(http://[0-9.:]*\)$|\1|p' "$WORK/bare.log" | head -1)
  [ -n "$BARE_URL" ] && break
  sleep 0.1
done
[ -n "$BARE_URL" ] || { echo "ui: kinsight server did not start" >&2; cat "$WORK/bare.err" >&2; exit 1; }
node -e '
(async () => {
  const base = process.argv[1];
  const page = await fetch(base + "/");
  const html = await page.text();
  if (page.status !== 200 || page.headers.get("x-kinsight-ui") !== "not-built" || !html.includes("npm run build"))
    throw new Error(`/ without ui/dist: ${page.status} ${page.headers.get("x-kinsight-ui")}: not the how-to page`);
  const api = await fetch(base + "/v1/groups");
  if (api.status !== 200 || !Array.isArray((await api.json()).groups)) throw new Error(`/v1/groups without ui/dist: ${api.status}`);
})().catch((e) => { console.error("ui: " + e.message); process.exit(1); });' "$BARE_URL"
kill $BARE; wait $BARE 2>/dev/null || true
echo "ui: without ui/dist the server answers / with the how-to page and serves its API"

cd ui
# scripts/ci-install.sh installed the packages; again only when package-lock.json changed since.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
npm run build
# The bundle budget of issue #7: under 500 KB gzipped (JS + CSS).
node -e '
const fs = require("fs"), zlib = require("zlib");
let total = 0;
for (const f of fs.readdirSync("dist/assets")) if (/\.(js|css)$/.test(f)) total += zlib.gzipSync(fs.readFileSync("dist/assets/" + f), { level: 9 }).length;
console.log(`ui: production bundle ${(total / 1024).toFixed(1)} KiB gzipped`);
if (total > 500 * 1024) { console.error("ui: bundle over the 500 KB budget"); process.exit(1); }'
npx vitest run
cd "$ROOT"
cargo build -p kinsight-cli --quiet

export KINSIGHT_TOKEN="ui-e2e-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
: >"$WORK/up.log"
"$BIN" up --data-dir "$WORK/data" --listen 127.0.0.1:0 --interval 5s >"$WORK/up.log" 2>"$WORK/up.err" &
PIDS+=($!)
URL=
for _ in $(seq 1 200); do
  URL=$(sed -n 's|.*open \(http://[0-9.:]*\)/?token=.*|\1|p' "$WORK/up.log" | head -1)
  [ -n "$URL" ] && break
  sleep 0.1
done
[ -n "$URL" ] || { echo "ui: kinsight up did not start" >&2; cat "$WORK/up.err" >&2; exit 1; }
echo "ui: kinsight up at $URL"

# Half an hour of a small simulated cluster, then live ticks every 5 s while the browser runs.
SIM_NODES=6
"$BIN" simulate --server "$URL" --cluster sim --nodes $SIM_NODES --pods 90 --interval 60s --backfill 30m --duration 0 --seed 7
"$BIN" simulate --server "$URL" --cluster sim --nodes $SIM_NODES --pods 90 --interval 5s --duration 15m --seed 7 --log-lines 40 \
  >"$WORK/sim.log" 2>&1 &
PIDS+=($!)

mkdir -p test-artifacts/ui
KINSIGHT_URL=$URL SIM_NODES=$SIM_NODES ARTIFACTS="$ROOT/test-artifacts/ui" CHROMIUM=$CHROMIUM \
  node --test --test-concurrency=1 ui/e2e/
