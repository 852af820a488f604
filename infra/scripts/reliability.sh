#!/usr/bin/env bash
# The long fault runs of the reliability suite (issue 20), bounded and
# stopping by themselves: many clients through N fault cycles (kill -9,
# pauses; in Kafka mode also network faults through a proxy), then the
# history checker over the whole run (its summary table is printed). CI
# runs the short version (tests/reliability/, 10 cycles) in test.sh.
#
#   infra/scripts/reliability.sh --cycles 1000            # embedded server
#   infra/scripts/reliability.sh --cycles 100 --kafka     # a local cluster
#   infra/scripts/reliability.sh --cycles 100 --kafka --broker-sqlite
#                                   # the broker keeps its log in a SQLite file
#                                   # and is killed too (durable-broker.sh)
#   infra/scripts/reliability.sh --cycles 12 --kafka --broker-s3
#                                   # the broker on S3, killed too (RELIABILITY.md)
#   infra/scripts/reliability.sh --cycles 1000 --kafka --fetch-wait-ms 100
#                                   # fewer fetches: the test broker's fetch cost
#                                   # grows with the log (RELIABILITY.md)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cycles=100
mode=embedded
broker=memory
fetch_wait_ms=${MISSIVE_KAFKA_FETCH_WAIT_MS:-} # unset: 10 ms, or 100 ms with --broker-sqlite
while (($#)); do
  case "$1" in
    --cycles) cycles=$2; shift 2 ;;
    --kafka) mode=kafka; shift ;;
    --broker-s3) broker=s3; shift ;;
    --broker-sqlite) broker=sqlite; shift ;;
    --fetch-wait-ms) fetch_wait_ms=$2; shift 2 ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "reliability: unknown argument $1 (try --cycles N [--kafka [--broker-sqlite|--broker-s3] [--fetch-wait-ms MS]])" >&2; exit 2 ;;
  esac
done
"$MISSIVE_ROOT/infra/scripts/install-deps.sh"
if [ "$broker" = sqlite ]; then
  "$MISSIVE_ROOT/infra/scripts/durable-broker.sh" >/dev/null
fi
cd "$MISSIVE_ROOT"
log="${TMPDIR:-/tmp}/missive-reliability-$(date +%Y%m%d-%H%M%S).log"
echo "reliability: $cycles fault cycles ($mode mode); progress per cycle below, the checker's table at the end; everything in $log" >&2
env MISSIVE_E2E_MODE="$mode" RELIABILITY_BROKER="$broker" RELIABILITY_CYCLES="$cycles" \
  ${fetch_wait_ms:+MISSIVE_KAFKA_FETCH_WAIT_MS="$fetch_wait_ms"} \
  cargo test --test reliability -- --nocapture 2>&1 | tee "$log" |
  grep -E --line-buffered '^(cycle [0-9]+:|[0-9]+ kill -9 cycles|[0-9]+ operations|\| |test result|thread .* panicked|the history checker|stuck: )'
