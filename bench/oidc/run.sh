#!/usr/bin/env bash
# OIDC sign-in round trip (browser redirect to session cookie) p50/p99 through Enclave against
# the local OpenID provider (tests/idp: the OpenID-certified oidc-provider), next to the anchor:
# the same provider round trip without Enclave (authorization request, login form, code, code
# exchange). The difference is what Enclave adds: the pending login, PKCE, the ID token checks,
# admission, the account and its mappings, the session and the audit records.
#
#   bash bench/oidc/run.sh            # COUNT=200 round trips each, ROUNDS=3 alternating
#
# Prerequisites: node and npm (the script runs `npm ci` in tests/idp when needed). All traffic
# stays on 127.0.0.1. SKIP_BUILD=1 uses target/release/enclave as it is.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
COUNT=${COUNT:-200}
ROUNDS=${ROUNDS:-3}
check_uint COUNT "$COUNT"
check_uint ROUNDS "$ROUNDS"
need node
need curl
export ENCLAVE_NOTEBOOKS_BUILD_ON_START=false
if [[ ${SKIP_BUILD:-0} != 1 ]]; then
    (cd "$REPO_DIR" && cargo build --release -p enclave) >&2
fi
[[ -x $ENCLAVE_BIN ]] || die "$ENCLAVE_BIN is missing"
IDP_DIR="$REPO_DIR/tests/idp"
[[ -d $IDP_DIR/node_modules/oidc-provider ]] || (cd "$IDP_DIR" && npm ci --no-audit --no-fund --loglevel=error)

WORK=''
new_tmpdir WORK
ADMIN_PASSWORD="bench-$(helper token | cut -c1-24)"
start_enclave "$WORK" admin "$ADMIN_PASSWORD"
export NODE_EXTRA_CA_CERTS="$ENCLAVE_DATA/tls/cert.pem"
SECRET="bench-$(helper token | cut -c1-32)"
ANCHOR_REDIRECT="http://127.0.0.1:9/anchor-callback"
config=$(printf '{"port":0,"clients":[{"client_id":"enclave","client_secret":"%s","redirect_uris":["%s/auth/oidc/corp/callback"],"token_endpoint_auth_method":"client_secret_basic"},{"client_id":"anchor","client_secret":"%s","redirect_uris":["%s"],"token_endpoint_auth_method":"client_secret_basic"}]}' \
    "$SECRET" "$ENCLAVE_URL" "$SECRET" "$ANCHOR_REDIRECT")
# The IdP exits when its stdin closes: keep a pipe open for it.
mkfifo "$WORK/idp.in"
setsid sleep infinity >"$WORK/idp.in" 2>/dev/null </dev/null &
BENCH_PGIDS+=("$!")
setsid node "$IDP_DIR/oidc-provider.mjs" "$config" <"$WORK/idp.in" >"$WORK/idp.log" 2>&1 &
IDP_PGID=$!
BENCH_PGIDS+=("$IDP_PGID")
for _ in $(seq 1 100); do grep -q '^ready ' "$WORK/idp.log" 2>/dev/null && break; sleep 0.1; done
IDP_PORT=$(awk '/^ready /{print $2; exit}' "$WORK/idp.log")
[[ -n $IDP_PORT ]] || { cat "$WORK/idp.log" >&2; die "the IdP did not start"; }
ISSUER="http://127.0.0.1:$IDP_PORT"

TOKEN=$(curl -ks -X POST "$ENCLAVE_URL/api/v1/auth/token" -H 'Content-Type: application/json' \
    -d "{\"username\":\"admin\",\"password\":\"$ADMIN_PASSWORD\",\"name\":\"bench\"}" | helper json-field token)
curl -ksf -X PUT "$ENCLAVE_URL/api/v1/identity-sources/corp" -H "Authorization: Bearer $TOKEN" \
    -H 'Content-Type: application/json' \
    -d "{\"kind\":\"oidc\",\"display_name\":\"Corp\",\"oidc\":{\"issuer\":\"$ISSUER\",\"client_id\":\"enclave\",\"client_secret\":\"$SECRET\",\"scopes\":[\"openid\",\"email\",\"profile\",\"groups\"],\"internal\":true,\"use_userinfo\":true}}" >/dev/null

log "warm-up"
node "$BENCH_DIR/oidc/login.mjs" enclave "$ENCLAVE_URL" corp alice alice-password 10 >/dev/null
node "$BENCH_DIR/oidc/login.mjs" idp "$ISSUER" anchor "$SECRET" "$ANCHOR_REDIRECT" alice alice-password 10 >/dev/null
: >"$WORK/runs.jsonl"
for ((r = 1; r <= ROUNDS; r++)); do
    log "round $r: $COUNT through Enclave, $COUNT at the provider alone"
    node "$BENCH_DIR/oidc/login.mjs" enclave "$ENCLAVE_URL" corp alice alice-password "$COUNT" >>"$WORK/runs.jsonl"
    node "$BENCH_DIR/oidc/login.mjs" idp "$ISSUER" anchor "$SECRET" "$ANCHOR_REDIRECT" alice alice-password "$COUNT" >>"$WORK/runs.jsonl"
done
echo
echo "OIDC sign-in round trips, $(date -u +%Y-%m-%d) on $NPROC cores; $COUNT sequential round trips per run, $ROUNDS rounds alternating"
"$SYS_PYTHON" - "$WORK/runs.jsonl" <<'PY'
import json, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
def pct(xs, p):
    xs = sorted(xs); return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]
print(f"{'round':>5} {'Enclave p50':>12} {'p99':>8} {'provider p50':>13} {'p99':>8} {'p50 ratio':>9}")
for i in range(0, len(runs), 2):
    e, a = runs[i]["ms"], runs[i + 1]["ms"]
    print(f"{i // 2 + 1:>5} {pct(e, 50):>10.1f}ms {pct(e, 99):>6.1f}ms {pct(a, 50):>11.1f}ms {pct(a, 99):>6.1f}ms {pct(e, 50) / pct(a, 50):>8.2f}x")
PY
