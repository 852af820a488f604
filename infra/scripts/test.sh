#!/usr/bin/env bash
# Runs every test: unit and property tests of the pure core, the log
# conformance suite (embedded, a real Kafka-protocol broker, librdkafka's
# mock cluster), codec tests and the black-box end-to-end suites, which
# start the real binaries on 127.0.0.1: embedded mode, then the messaging,
# accounts and groups suites again against a local Kafka-mode cluster. Installs
# what it needs first.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
"$MISSIVE_ROOT/infra/scripts/install-deps.sh"
"$MISSIVE_ROOT/infra/scripts/build-web.sh"
cd "$MISSIVE_ROOT"
# No locked crate under a RustSec advisory (an offline snapshot of the
# advisory database, read by the shared advisory-check tool).
advisory_check=${MISSIVE_ADVISORY_CHECK:-}
for candidate in "$MISSIVE_ROOT/../shared/tools/advisory-check" /work/shared/tools/advisory-check; do
  [ -z "$advisory_check" ] && [ -x "$candidate" ] && advisory_check=$candidate
done
if [ -z "$advisory_check" ]; then
  echo "test.sh: advisory-check not found beside the checkout (../shared/tools); set MISSIVE_ADVISORY_CHECK to its path" >&2
  exit 1
fi
python3 "$advisory_check" --lock Cargo.lock || {
  echo "test.sh: a locked crate is under a security advisory (above): update it, or drop the dependency that pulls it in" >&2
  exit 1
}
cargo build --workspace --all-targets
status=0
cargo test --workspace --no-fail-fast "$@" || status=$?
echo "test.sh: the messaging, accounts, groups, operations, presence, replay, media, keys, encryption and chat suites, the browser chat test and the kill -9 reliability run again, in Kafka mode (local cluster per test; media on a local SeaweedFS S3 server)" >&2
# Each test starts a cluster of six processes plus a broker: at most three
# at once on a two-core machine (eight at once starved them into reply timeouts).
MISSIVE_E2E_MODE=kafka cargo test --workspace --no-fail-fast --test e2e_messaging --test e2e_accounts --test e2e_groups --test e2e_operations --test e2e_presence --test e2e_replay --test e2e_media --test e2e_keys --test e2e_encryption --test e2e_chat --test web_chat --test reliability "$@" -- --test-threads=3 || status=$?
echo "test.sh: the kill -9 reliability run in Kafka mode with the broker killed too (a test broker that keeps its log in a SQLite file; infra/scripts/durable-broker.sh builds it the first time, about 14 minutes)" >&2
if "$MISSIVE_ROOT/infra/scripts/durable-broker.sh" >/dev/null; then
  RELIABILITY_BROKER=sqlite MISSIVE_E2E_MODE=kafka cargo test --test reliability "$@" || status=$?
else
  echo "test.sh: building the durable test broker failed (above); the broker-kill run did not run" >&2
  status=1
fi
echo "test.sh: fuzzing every decoder and parser, 60 s each (infra/scripts/fuzz.sh; the first run builds the instrumented targets)" >&2
"$MISSIVE_ROOT/infra/scripts/fuzz.sh" --seconds "${MISSIVE_FUZZ_SECONDS:-60}" || status=$?
exit "$status"
