#!/usr/bin/env bash
# Runs every test: unit and property tests of the pure core, the log
# conformance suite, codec tests and the black-box end-to-end suites (which
# start the real server binary on 127.0.0.1). Installs what it needs first.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
"$MISSIVE_ROOT/infra/scripts/install-deps.sh"
cd "$MISSIVE_ROOT"
cargo build --workspace --all-targets
cargo test --workspace --no-fail-fast "$@"
