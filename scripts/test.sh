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
# Notebook environments: the tests build real ones with uv and pip from pypi-server on
# loopback, out of a wheelhouse downloaded here once (they never reach an outside index).
if ! command -v pip >/dev/null 2>&1 || ! python3 -m pip --version >/dev/null 2>&1; then
    log "installing pip (environments can be built with pip)"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-pip >/dev/null
fi
if ! command -v uv >/dev/null 2>&1 || ! command -v pypi-server >/dev/null 2>&1; then
    log "installing uv and pypiserver (notebook environment tests)"
    as_root env PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install -q --disable-pip-version-check \
        uv==0.13.9 pypiserver==2.4.2
fi
export ENCLAVE_TEST_WHEELS="${ENCLAVE_TEST_WHEELS:-/var/cache/enclave-test/wheels}"
wheels_stamp="$ENCLAVE_TEST_WHEELS/.complete-$(sha256sum tests/notebooks/wheels.txt | cut -c1-16)"
if [ ! -f "$wheels_stamp" ]; then
    log "downloading the test wheels (tests/notebooks/wheels.txt) into $ENCLAVE_TEST_WHEELS"
    as_root mkdir -p "$ENCLAVE_TEST_WHEELS"
    as_root python3 -m pip download -q --disable-pip-version-check --no-deps --only-binary :all: \
        --python-version 3.11 -d "$ENCLAVE_TEST_WHEELS" -r tests/notebooks/wheels.txt
    as_root touch "$wheels_stamp"
fi
# Enterprise identity: a private OpenLDAP slapd per test (ldap-utils loads its directory), the
# OpenID-certified oidc-provider (npm) as the test IdP, and scim2-tester for SCIM compliance.
if [ ! -x /usr/sbin/slapd ] || ! command -v ldapadd >/dev/null 2>&1; then
    log "installing slapd and ldap-utils (LDAP tests run their own slapd on loopback)"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slapd ldap-utils >/dev/null
fi
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    log "installing node and npm (test IdP and browser tests)"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi
if [ ! -d tests/idp/node_modules/oidc-provider ]; then
    log "installing oidc-provider (the test identity provider)"
    (cd tests/idp && npm ci --no-audit --no-fund --loglevel=error)
fi
if ! python3 -c "import scim2_tester" >/dev/null 2>&1; then
    log "installing scim2-tester (SCIM compliance)"
    as_root env PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install -q --disable-pip-version-check \
        scim2-tester==0.5.2 scim2-client==0.13.2 scim2-models==0.12.3
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

# One package index on loopback for the whole run: every test that builds a notebook
# environment uses it, so each environment is built once (its fingerprint includes the index).
log "package index on loopback (pypi-server over the test wheels)"
index_port=3141
if ! python3 -c "import socket,sys; s=socket.socket(); sys.exit(s.connect_ex(('127.0.0.1', $index_port)) == 0)"; then
    index_port=$(python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
fi
pypi-server run -i 127.0.0.1 -p "$index_port" --disable-fallback --backend simple-dir \
    "$ENCLAVE_TEST_WHEELS" >/dev/null 2>&1 &
index_pid=$!
trap 'kill "$index_pid" 2>/dev/null || true' EXIT
export ENCLAVE_TEST_INDEX_URL="http://127.0.0.1:$index_port/simple/"
export ENCLAVE_TEST_ENVS="${ENCLAVE_TEST_ENVS:-/var/cache/enclave-test/envs}"
as_root mkdir -p "$ENCLAVE_TEST_ENVS"
for _ in $(seq 1 100); do
    if python3 -c "import urllib.request; urllib.request.urlopen('$ENCLAVE_TEST_INDEX_URL', timeout=1)" 2>/dev/null; then
        break
    fi
    sleep 0.2
done

log "cargo test"
cargo test --workspace --quiet

log "browser tests (headless chromium)"
# `cargo test` has built target/debug/enclave for the end-to-end tests; a separate
# `cargo build -p enclave` would resolve features differently and link a second copy.
test -x target/debug/enclave
node tests/browser/console.mjs target/debug/enclave
node tests/browser/notebook.mjs target/debug/enclave
node tests/browser/passkey.mjs target/debug/enclave

log "all tests passed"
