#!/usr/bin/env bash
# Builds the durable test broker and prints its path: Tansu 0.6.0 from
# crates.io with its SQLite engine (`--storage-engine sqlite://FILE`), which
# keeps the log in a file that survives the broker's kill -9, patched by
# infra/tansu/tansu-storage-0.6.0.patch (docs/design/decisions.md says
# why: unpatched, the engine panics on an idempotent producer's epoch bump,
# and one client that goes away mid-request stops the broker's storage).
# The broker-kill fault runs use it (reliability.sh --broker-sqlite).
#
# Idempotent: a second call with the same patch prints the path at once.
# The first build takes about 14 minutes on two cores; its cargo target
# directory stays under ~/.cache/missive for the next one.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cache="$HOME/.cache/missive/tansu-durable"
binary="$cache/bin/tansu"
patch="$MISSIVE_ROOT/infra/tansu/tansu-storage-0.6.0.patch"
stamp="$(sha256sum "$patch" | cut -d' ' -f1)"
if [ -x "$binary" ] && [ "$(cat "$cache/bin/patch.sha256" 2>/dev/null)" = "$stamp" ]; then
  echo "$binary"
  exit 0
fi
command -v curl >/dev/null || { echo "durable-broker: curl is missing; run infra/scripts/install-deps.sh" >&2; exit 1; }
src="$cache/src"
rm -rf "$src"
mkdir -p "$src" "$cache/bin"
# The two crates, checked against the checksums crates.io publishes.
fetch() { # name version sha256
  local file="$cache/$1-$2.crate"
  if ! echo "$3  $file" | sha256sum --check --status 2>/dev/null; then
    echo "durable-broker: downloading $1 $2 from crates.io" >&2
    curl -sSfL --retry 3 -o "$file" "https://static.crates.io/crates/$1/$1-$2.crate"
    echo "$3  $file" | sha256sum --check --status ||
      { echo "durable-broker: $file does not match its crates.io checksum; delete it and run again" >&2; exit 1; }
  fi
  tar -xzf "$file" -C "$src"
}
fetch tansu 0.6.0 4fdd85473ec265140488cf8d55e82b844f5c051c8916fabdd4a71156ac053f6d
fetch tansu-storage 0.6.0 720d2ed8e6010c70f7f06e5af5a7274ebbf6e42fdcd9e46de542b10dc4d2f35d
(cd "$src/tansu-storage-0.6.0" && git apply -p1 "$patch")
printf '\n[patch.crates-io.tansu-storage]\npath = "../tansu-storage-0.6.0"\n' >>"$src/tansu-0.6.0/Cargo.toml"
echo "durable-broker: building Tansu 0.6.0 with the patched SQLite engine (about 14 minutes the first time)" >&2
CARGO_TARGET_DIR="$HOME/.cache/missive/tansu-build/target" \
  cargo build --release --quiet --no-default-features --features libsql \
  --manifest-path "$src/tansu-0.6.0/Cargo.toml" >&2
install -m 755 "$HOME/.cache/missive/tansu-build/target/release/tansu" "$binary"
echo "$stamp" >"$cache/bin/patch.sha256"
echo "$binary"
