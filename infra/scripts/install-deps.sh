#!/usr/bin/env bash
# Installs what building and testing Missive needs on Debian, idempotently:
# a C/C++ toolchain, pkg-config, libclang (bindgen for RocksDB) and OpenSSL
# headers. Packages already present are left alone; nothing is downloaded
# when everything is installed.
set -euo pipefail
needed=(build-essential pkg-config libclang-dev libssl-dev)
missing=()
for package in "${needed[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done
if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}" >&2
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "install-deps: cargo not found; install a Rust toolchain (rustup) first" >&2
  exit 1
fi
