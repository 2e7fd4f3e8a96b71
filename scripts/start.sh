#!/usr/bin/env bash
# Builds Enclave in release mode and starts it on its embedded defaults:
# HTTPS on https://127.0.0.1:8443 with a self-signed certificate, data in ./enclave-data.
# On first start it prints a one-time setup URL for creating the first platform admin.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v cargo >/dev/null 2>&1; then
    echo "error: Rust (cargo) is required: https://rustup.rs" >&2
    exit 1
fi
if ! command -v cc >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq build-essential >/dev/null
    else
        echo "error: a C compiler is required (apt-get install build-essential)" >&2
        exit 1
    fi
fi
# Jobs run in runc sandboxes (root only); without runc the server starts and says jobs are off.
if [ "$(id -u)" = 0 ] && ! command -v runc >/dev/null 2>&1 && [ ! -x /usr/sbin/runc ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq runc python3 >/dev/null
fi
# Notebook environments are built with uv from the package index (default PyPI) into
# read-only environments based on Debian's /usr/bin/python3.11, visible inside sandboxes.
if [ "$(id -u)" = 0 ]; then
    if [ ! -x /usr/bin/python3.11 ] || ! /usr/bin/python3 -m pip --version >/dev/null 2>&1; then
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-pip python3-venv >/dev/null
    fi
    if ! command -v uv >/dev/null 2>&1; then
        PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install -q --disable-pip-version-check uv==0.13.9
    fi
fi
cargo build --release -p enclave
exec target/release/enclave serve "$@"
