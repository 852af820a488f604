#!/usr/bin/env bash
# Builds the web client (web/ -> web/dist, which the gateway serves at `/`)
# with the machine's Node.js: `npm ci` from the committed package-lock.json
# when node_modules is missing or older than the lock, then `vite build`
# when a source is newer than the last build. Idempotent and quiet when
# nothing changed.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$MISSIVE_ROOT/web"
if ! command -v npm >/dev/null 2>&1; then
  echo "build-web: npm not found; run infra/scripts/install-deps.sh (installs Debian's nodejs and npm)" >&2
  exit 1
fi
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "build-web: installing the web client's npm packages (npm ci)" >&2
  npm ci --no-audit --no-fund --loglevel=error
fi
if [ ! -f dist/index.html ] || [ -n "$(find src index.html vite.config.js package-lock.json -newer dist/index.html -print -quit)" ]; then
  echo "build-web: building the web client (vite build)" >&2
  npx --no-install vite build --logLevel warn
fi
