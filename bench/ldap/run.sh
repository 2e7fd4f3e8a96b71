#!/usr/bin/env bash
# LDAP logins/s: pooled enclave_ldap::Directory vs bind-per-login, against a private slapd
# on 127.0.0.1 started by the example (the integration tests' harness).
# Prerequisites (Debian, as root): DEBIAN_FRONTEND=noninteractive apt-get install -y slapd ldap-utils
# Usage: bash bench/ldap/run.sh [logins per run (2000)] [concurrent tasks (8)] [pool size (4)] [rounds (3)]
set -euo pipefail
cd "$(dirname "$0")/../.."
for bin in /usr/sbin/slapd ldapadd; do
  if ! command -v "$bin" >/dev/null; then
    echo "missing $bin: DEBIAN_FRONTEND=noninteractive apt-get install -y slapd ldap-utils" >&2
    exit 1
  fi
done
cargo build --release -p enclave-ldap --example ldap_bench
exec "${CARGO_TARGET_DIR:-target}/release/examples/ldap_bench" "$@"
