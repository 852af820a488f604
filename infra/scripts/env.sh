# Shared settings for Missive's scripts. Source it; do not run it.
# rustup installs cargo under ~/.cargo/bin; a non-login shell may lack it.
if [ -d "$HOME/.cargo/bin" ]; then
  case ":$PATH:" in *":$HOME/.cargo/bin:"*) ;; *) export PATH="$HOME/.cargo/bin:$PATH" ;; esac
fi
# One cargo target directory outside the checkout, reused by every clone and
# by CI, so RocksDB (about 20 minutes on two cores) is compiled once.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/missive/target}"
mkdir -p "$CARGO_TARGET_DIR"
MISSIVE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export MISSIVE_ROOT
