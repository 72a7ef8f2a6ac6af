#!/usr/bin/env bash
# Fuzzes every parser of outside input (docs/security.md, "Fuzzing"): each target of
# crates/fuzzing/src/targets/ runs under libFuzzer for SECONDS, one after the other, from its
# checked-in seed corpus fuzz/corpus/<target>/, and a summary gives the executions each ran and
# whether it found anything. Crashes, hangs (> 10 s for one input) and out-of-memory (> 2 GiB)
# land in fuzz/artifacts/<target>/; the run then exits 1.
#
#   scripts/fuzz.sh SECONDS [TARGET ...]      # all targets when none is named
#
# Needs a nightly toolchain (`rustup toolchain install nightly`) and cargo-fuzz
# (`cargo install cargo-fuzz --locked`). Without nightly it says so and replays the corpora on
# stable instead (what `cargo test` does in CI).
#
# Environment:
#   FUZZ_TARGET_DIR  cargo target directory of the sanitizer build (default fuzz/target; keep it
#                    apart from the stable one, the flags differ)
#   FUZZ_SANITIZER   address (default) or none (faster runs, no memory-error detection)
#   FUZZ_STACK_KB    stack of the fuzzing thread (default 2048: a tokio worker's, so an input
#                    that overflows a server thread's stack is a finding here)
#   FUZZ_WORK        where inputs that libFuzzer finds are kept between runs (default
#                    $FUZZ_TARGET_DIR/corpus/<target>); the checked-in corpus is only read.
#                    Minimise a grown corpus into the checked-in one with `cargo fuzz cmin` (see
#                    docs/security.md).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ $# -lt 1 ] || ! [[ "$1" =~ ^[0-9]+$ ]]; then
  sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
SECONDS_PER_TARGET=$1
shift
if [ $# -gt 0 ]; then
  TARGETS=("$@")
else
  TARGETS=()
  for f in crates/fuzzing/src/targets/*.rs; do
    TARGETS+=("$(basename "$f" .rs)")
  done
fi
for t in "${TARGETS[@]}"; do
  if [ ! -f "crates/fuzzing/src/targets/$t.rs" ]; then
    echo "fuzz.sh: no target $t (crates/fuzzing/src/targets/$t.rs)" >&2
    exit 2
  fi
done

if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  echo "fuzz.sh: no nightly toolchain; replaying the corpora on stable instead (libFuzzer needs nightly)" >&2
  exec cargo test -p kinsight-server --test it fuzz_corpus
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "fuzz.sh: cargo-fuzz is missing: cargo install cargo-fuzz --locked" >&2
  exit 2
fi

TARGET_DIR=${FUZZ_TARGET_DIR:-fuzz/target}
SANITIZER=${FUZZ_SANITIZER:-address}
STACK_KB=${FUZZ_STACK_KB:-2048}
BUILD=(--sanitizer "$SANITIZER" --codegen-units 16 --target-dir "$TARGET_DIR")

# The same dependency versions as the main workspace (its Cargo.lock), plus libFuzzer's.
cp Cargo.lock fuzz/Cargo.lock
echo "fuzz.sh: building the fuzz binary (nightly, sanitizer $SANITIZER, $TARGET_DIR)" >&2
cargo +nightly fuzz build "${BUILD[@]}" parsers

declare -A EXECS RESULT
failed=0
for t in "${TARGETS[@]}"; do
  work=${FUZZ_WORK:-$TARGET_DIR/corpus}/$t
  mkdir -p "$work" "fuzz/artifacts/$t" "$TARGET_DIR/logs"
  log=$TARGET_DIR/logs/$t.log
  echo "fuzz.sh: $t for ${SECONDS_PER_TARGET}s (log $log)" >&2
  set +e
  (
    ulimit -s "$STACK_KB"
    KINSIGHT_FUZZ_TARGET=$t cargo +nightly fuzz run "${BUILD[@]}" parsers "$work" "fuzz/corpus/$t" -- \
      -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2048 \
      -artifact_prefix="fuzz/artifacts/$t/" -print_final_stats=1
  ) >"$log" 2>&1
  rc=$?
  set -e
  EXECS[$t]=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || true)
  if [ $rc -eq 0 ]; then
    RESULT[$t]="no crash"
  else
    RESULT[$t]="FOUND: $(grep -o -m1 -E 'ERROR: libFuzzer: [a-z-]+|deadly signal|panicked at [^ ]+' "$log" || echo "exit $rc") — see $log and fuzz/artifacts/$t/"
    failed=1
  fi
done

echo
printf '%-16s %14s  %s\n' target executions result
for t in "${TARGETS[@]}"; do
  printf '%-16s %14s  %s\n' "$t" "${EXECS[$t]:-?}" "${RESULT[$t]}"
done
exit $failed
