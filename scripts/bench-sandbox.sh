#!/usr/bin/env bash
# Sandbox start benchmark: start-to-exit latency of /bin/true through fork/exec, plain runc
# (a hand-written bundle, with and without a user namespace) and Enclave's runc sandbox,
# interleaved in one run (p50/p99 and the ratios), then a burst of concurrent sandboxes
# (throughput, errors) and a leak check. See crates/enclave-sandbox/benches/start.rs and the
# "Sandbox start" section of bench/README.md.
#
# Needs root (runc, user namespaces, cgroups) and runc (installed with apt-get if missing).
# Settings: START_N (starts per side, default 200), BURST (concurrent sandboxes, default 50).
# The JSON summary is saved to bench/results/sandbox-start-<UTC time>.json.
# Exits non-zero when the burst had errors or something was left behind.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
    echo "error: run as root (sudo bash scripts/bench-sandbox.sh): sandboxes need it" >&2
    exit 1
fi
if ! command -v runc >/dev/null 2>&1 && [ ! -x /usr/sbin/runc ]; then
    echo "==> installing runc"
    DEBIAN_FRONTEND=noninteractive apt-get install -y runc >/dev/null
fi

export START_N=${START_N:-200} BURST=${BURST:-50}
mkdir -p bench/results
export BENCH_OUT
BENCH_OUT="$PWD/bench/results/sandbox-start-$(date -u +%Y-%m-%dT%H%M%SZ).json"

echo "==> cargo bench -p enclave-sandbox --bench start (START_N=$START_N, BURST=$BURST)"
cargo bench -p enclave-sandbox --bench start
echo "==> summary saved to $BENCH_OUT"
