#!/usr/bin/env bash
# Starts the whole platform in embedded mode: one process, data under ./data,
# listening on 127.0.0.1:8080. Extra arguments go to `missive serve`
# (see `missive serve --help`; MISSIVE_LISTEN, MISSIVE_DATA_DIR and
# MISSIVE_SMS_SINK work too).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
"$MISSIVE_ROOT/infra/scripts/install-deps.sh"
"$MISSIVE_ROOT/infra/scripts/build-web.sh"
cd "$MISSIVE_ROOT"
cargo build --bin missive
exec "$CARGO_TARGET_DIR/debug/missive" serve "$@"
