#!/usr/bin/env bash
# The long fault runs of the reliability suite (issue 20), bounded and
# stopping by themselves: many clients through N kill -9 cycles of the
# embedded server, then the history checker over the whole run (its summary
# table is printed). CI runs the short version (tests/reliability/, 10
# cycles) as part of test.sh.
#
#   infra/scripts/reliability.sh --cycles 1000
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cycles=100
while (($#)); do
  case "$1" in
    --cycles) cycles=$2; shift 2 ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "reliability: unknown argument $1 (try --cycles N)" >&2; exit 2 ;;
  esac
done
"$MISSIVE_ROOT/infra/scripts/install-deps.sh"
cd "$MISSIVE_ROOT"
echo "reliability: $cycles kill -9 cycles; progress per cycle below, the checker's table at the end" >&2
RELIABILITY_CYCLES=$cycles cargo test --test reliability -- --nocapture 2>&1 |
  grep -E --line-buffered '^(cycle [0-9]+:|[0-9]+ kill -9 cycles|[0-9]+ operations|\| |test result|thread .* panicked|the history checker)'
