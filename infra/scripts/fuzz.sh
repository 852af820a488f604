#!/usr/bin/env bash
# Coverage-guided fuzzing (libFuzzer through cargo fuzz) of every decoder
# and parser: client frames, HTTP bodies, tokens, the Avro and Confluent
# framing codec, registry bodies, stored log records (fuzz/fuzz_targets).
# Each target runs for --seconds from its committed corpus (fuzz/corpus/<target>),
# two at a time; new inputs that reach new code are added to the corpus. A
# crash, timeout or out-of-memory stops the run with the input saved under
# fuzz/artifacts/<target>/ (replay it: cargo fuzz run <target> <file>).
# CI runs 60 s per target; the long runs in RELIABILITY.md used --seconds 3600.
#
#   infra/scripts/fuzz.sh [--seconds N] [--jobs J] [target ...]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
seconds=60
jobs=2
targets=()
while (($#)); do
  case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    -*) echo "fuzz: unknown option $1 (try --seconds N, --jobs J)" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
if ! command -v cargo-fuzz >/dev/null; then
  echo "fuzz: installing cargo-fuzz (once; a few minutes)" >&2
  cargo install cargo-fuzz --locked --quiet
fi
cd "$MISSIVE_ROOT/fuzz"
# Its own target directory (every crate is built instrumented), kept
# outside the checkout like the main one: RocksDB is compiled once.
export CARGO_TARGET_DIR="$HOME/.cache/missive/fuzz-target"
# cargo fuzz passes nightly-only flags; the stable toolchain accepts them this way.
export RUSTC_BOOTSTRAP=1
if ((${#targets[@]} == 0)); then
  mapfile -t targets < <(cargo fuzz list)
fi
echo "fuzz: building ${#targets[@]} targets (the first build compiles RocksDB: ~20 min on two cores)" >&2
cargo fuzz build --sanitizer none 2>&1 | grep -E --line-buffered '^error|Compiling missive|Finished' >&2
mkdir -p artifacts reports
run_one() {
  local target=$1
  mkdir -p "corpus/$target"
  local report="reports/$target.log"
  if cargo fuzz run --sanitizer none "$target" "corpus/$target" -- \
      -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
      -print_final_stats=1 >"$report" 2>&1; then
    local runs cov
    runs=$(grep -m1 -oE 'stat::number_of_executed_units: *[0-9]+' "$report" | grep -oE '[0-9]+$' || echo '?')
    cov=$(grep -oE 'cov: [0-9]+' "$report" | tail -1 | grep -oE '[0-9]+' || echo '?')
    echo "fuzz: $target: ${seconds}s, $runs inputs, coverage $cov edges, corpus $(ls "corpus/$target" | wc -l) files, no crash"
  else
    echo "fuzz: $target FAILED; the input is under fuzz/artifacts/$target/, the log fuzz/$report:" >&2
    grep -E 'ERROR|panicked|SUMMARY|Test unit written' "$report" | head -20 >&2
    return 1
  fi
}
status=0
pids=()
for target in "${targets[@]}"; do
  run_one "$target" &
  pids+=($!)
  if ((${#pids[@]} >= jobs)); then
    wait "${pids[0]}" || status=1
    pids=("${pids[@]:1}")
  fi
done
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
exit "$status"
