#!/usr/bin/env bash
# Measures the real `kinsight agent` (release build) on a fixture node of 110 pods / 330
# containers: CPU seconds per collection and RSS, collecting every second for DURATION seconds.
# The kubelet's /pods answer is served from the fixture by python's http.server (no kubelet
# runs here). Usage: scripts/bench-agent.sh [DURATION]   (default 60)
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-60}
WORK=$(mktemp -d /tmp/kinsight-agent-bench.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
cargo bench -q -p kinsight-agent --bench collect -- --write-fixture "$WORK/root" >/dev/null
cargo build -q --release --bin kinsight
mkdir -p "$WORK/srv" && cp "$WORK/root/pods.json" "$WORK/srv/pods"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
(cd "$WORK/srv" && exec python3 -m http.server "$PORT" --bind 127.0.0.1 >/dev/null 2>&1) &
sleep 1
cat > "$WORK/agent.json" <<JSON
{"logs": {"metrics_collected": {"kubernetes": {"cluster_name": "bench", "metrics_collection_interval": 1}}},
 "kinsight": {"host_root": "$WORK/root", "kubelet_url": "http://127.0.0.1:$PORT", "state_dir": "$WORK/state",
              "logs": {"enabled": false}}}
JSON
HOST_NAME=node-1 ./target/release/kinsight agent --config "$WORK/agent.json" --output "file:$WORK/out.jsonl" 2>"$WORK/agent.log" &
PID=$!
sleep 5   # warm up: first sample, first kubelet answer
ticks() { awk '{print $14+$15}' "/proc/$PID/stat"; }
HZ=$(getconf CLK_TCK)
T0=$(ticks); N0=$(grep -c '"Type\\":\\"Node\\"' "$WORK/out.jsonl" || true)
if [ -n "${PERF_OUT:-}" ]; then   # diagnostics: profile the agent during the window
  perf record -F 999 --call-graph dwarf,16384 -p "$PID" -o "$PERF_OUT" -- sleep "$DURATION" 2>/dev/null
else
  sleep "$DURATION"
fi
T1=$(ticks); N1=$(grep -c '"Type\\":\\"Node\\"' "$WORK/out.jsonl" || true)
RSS=$(awk '/VmRSS/{print $2}' /proc/$PID/status); HWM=$(awk '/VmHWM/{print $2}' /proc/$PID/status)
grep -E 'RssAnon|RssFile' /proc/$PID/status | tr -s ' \t' ' ' | paste -sd ' ' </dev/stdin
kill $PID; wait $PID 2>/dev/null || true
N=$((N1 - N0))
python3 - "$T0" "$T1" "$HZ" "$N" "$RSS" "$HWM" "$DURATION" <<'PY'
import sys
t0, t1, hz, n, rss, hwm, dur = map(int, sys.argv[1:])
cpu = (t1 - t0) / hz
print(f"{n} collections in {dur} s, {cpu:.2f} CPU-seconds: {cpu / max(n, 1) * 1000:.1f} ms CPU per collection, "
      f"{cpu / dur:.3f} cores; RSS {rss / 1024:.1f} MiB, peak {hwm / 1024:.1f} MiB")
PY
