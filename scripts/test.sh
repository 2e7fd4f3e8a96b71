#!/usr/bin/env bash
# Installs what the tests need (as root, non-interactive) and runs every check and test:
# formatting, lints, dependency policy (cargo-deny), unit and end-to-end tests, and the
# browser test of the web console in headless Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*"; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        echo "error: need root to run: $*" >&2; return 1; fi
}

log "toolchain"
rustup component add rustfmt clippy >/dev/null 2>&1 || true
cargo --version

if ! command -v chromium >/dev/null 2>&1; then
    log "installing chromium (browser tests)"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
if ! command -v runc >/dev/null 2>&1 && [ ! -x /usr/sbin/runc ]; then
    log "installing runc (sandbox tests run real sandboxes)"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq runc >/dev/null
fi
if ! command -v python3 >/dev/null 2>&1; then
    log "installing python3 (jobs and the escape probe run Python inside sandboxes)"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 >/dev/null
fi
if [ ! -d tests/browser/node_modules/playwright-core ]; then
    log "installing playwright-core (drives the system chromium; downloads no browser)"
    (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
fi
if ! command -v cargo-deny >/dev/null 2>&1; then
    log "installing cargo-deny"
    cargo install cargo-deny --locked --quiet
fi

log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --quiet -- -D warnings

log "cargo deny (bans: one crypto provider; licenses; sources)"
cargo deny --log-level error check bans licenses sources

log "cargo test"
cargo test --workspace --quiet

log "browser test (headless chromium)"
cargo build --quiet -p enclave
node tests/browser/console.mjs target/debug/enclave

log "all tests passed"
