#!/usr/bin/env bash
# API throughput: Enclave's authenticated project list against a bare hyper+rustls "hello"
# server (the ceiling) and JupyterHub's user list (the incumbent), each loaded by wrk on
# loopback, one after the other.
#
#   sudo bash bench/api.sh
#
# Environment (all optional):
#   DURATION=15      seconds of each measured wrk run
#   CONNECTIONS=64   wrk connections
#   THREADS=2        wrk threads
#   WARMUP=2         seconds of an unmeasured wrk run before each measured one (0: none)
#   PROJECTS=20      projects created in Enclave (the list returns up to 50)
#   JH_USERS=20      users in JupyterHub's list (default: as many as PROJECTS)
#   JUPYTERHUB_SPEC='jupyterhub>=5,<6'   what pip installs when JupyterHub is missing
#   JH_TOKEN=generated   the token wrk sends to JupyterHub: "generated" (made by the hub for an
#                    admin user: hashed with 1 SHA-512 round, the fast case) or "config" (the
#                    service api_token from jupyterhub_config.py: 16384 rounds on every request)
#   SKIP_BUILD=1     do not run cargo build (use the release binaries already in target/)
#   ONLY='enclave bare jupyterhub'       run a subset
#
# As root it installs what is missing: wrk (apt-get), JupyterHub (pip, into bench/.venv) and
# configurable-http-proxy (npm, into bench/.node). All traffic stays on 127.0.0.1.
# Results: a table on stdout and bench/results/api-<UTC date and time>.json.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

CONNECTIONS=${CONNECTIONS:-64}
PROJECTS=${PROJECTS:-20}
JH_USERS=${JH_USERS:-$PROJECTS}
JUPYTERHUB_SPEC=${JUPYTERHUB_SPEC:-jupyterhub>=5,<6}
JH_TOKEN=${JH_TOKEN:-generated}
[[ $JH_TOKEN == generated || $JH_TOKEN == config ]] || die "JH_TOKEN must be generated or config"
ONLY=${ONLY:-enclave bare jupyterhub}
for knob in DURATION CONNECTIONS THREADS PROJECTS JH_USERS; do
    check_uint "$knob" "${!knob}"
done
[[ $WARMUP =~ ^[0-9]+$ ]] || die "WARMUP must be a whole number of seconds"
((PROJECTS <= 200)) || die "PROJECTS must be at most 200"

want() { [[ " $ONLY " == *" $1 "* ]]; }

need curl
need "$SYS_PYTHON"
ensure_wrk
if want jupyterhub; then
    ensure_venv jupyterhub "$JUPYTERHUB_SPEC"
    ensure_proxy
fi
if want enclave || want bare; then
    build_release
fi

WORK=''
new_tmpdir WORK
# Results are collected in the work directory and land in bench/results only when complete.
RESULTS="$WORK/results.json"
FINAL="$RESULTS_DIR/api-$(date -u +%Y-%m-%dT%H%M%SZ).json"
machine_meta "$RESULTS"
helper meta "$RESULTS" benchmark api

ADMIN="admin"
ADMIN_PASSWORD="bench-$(helper token | cut -c1-24)"

# Enclave's TLS certificate and key, for hello_tls (kept after Enclave stops).
CERT=''
KEY=''

bench_enclave() {
    local work="$WORK/enclave" token i code count
    mkdir -p "$work"
    start_enclave "$work" "$ADMIN" "$ADMIN_PASSWORD"
    CERT="$ENCLAVE_DATA/tls/cert.pem"
    KEY="$ENCLAVE_DATA/tls/key.pem"

    token=$(curl -ksSf -X POST "$ENCLAVE_URL/api/v1/auth/token" \
        -H 'Content-Type: application/json' \
        -d "{\"username\":\"$ADMIN\",\"password\":\"$ADMIN_PASSWORD\",\"name\":\"bench\"}" |
        helper json-field token)
    for ((i = 1; i <= PROJECTS; i++)); do
        code=$(curl -ks -o "$work/create.out" -w '%{http_code}' -X POST \
            "$ENCLAVE_URL/api/v1/projects" -H "Authorization: Bearer $token" \
            -H 'Content-Type: application/json' \
            -d "$(printf '{"name":"bench-%03d","description":"benchmark project %d"}' "$i" "$i")")
        [[ $code == 201 ]] || { cat "$work/create.out" >&2; die "creating project $i: HTTP $code"; }
    done
    count=$(curl -ksSf "$ENCLAVE_URL/api/v1/projects" -H "Authorization: Bearer $token" |
        helper json-count items)
    ((count == (PROJECTS < 50 ? PROJECTS : 50))) || die "the project list has $count items"
    log "Enclave: $PROJECTS projects, the list returns $count"

    run_wrk enclave "$ENCLAVE_PGID" "$RESULTS" "$work" "$ENCLAVE_URL/api/v1/projects" \
        -H "Authorization: Bearer $token"
    stop_server "$ENCLAVE_PGID"
    helper log-errors "$RESULTS" enclave "$work/enclave.log"
}

bench_bare() {
    local work="$WORK/bare" port url
    mkdir -p "$work"
    if [[ -z $CERT ]]; then
        # Enclave was not benchmarked: let it generate its certificate, then stop it.
        start_enclave "$work" "$ADMIN" "$ADMIN_PASSWORD"
        stop_server "$ENCLAVE_PGID"
        CERT="$ENCLAVE_DATA/tls/cert.pem"
        KEY="$ENCLAVE_DATA/tls/key.pem"
    fi
    port=$(helper free-port)
    url="https://127.0.0.1:$port/"
    start_bg "$work/hello_tls.log" "$HELLO_BIN" --listen "127.0.0.1:$port" --cert "$CERT" --key "$KEY"
    local pgid=$BG_PID
    wait_http "$pgid" 30 "$work/hello_tls.log" "$url"
    log "hello_tls ready at $url"
    run_wrk bare "$pgid" "$RESULTS" "$work" "$url"
    stop_server "$pgid"
}

bench_jupyterhub() {
    local work="$WORK/jupyterhub" token port hub_port api_port url version count
    mkdir -p "$work"
    version=$("$VENV/bin/python" -c 'import jupyterhub; print(jupyterhub.__version__)')
    helper meta "$RESULTS" jupyterhub_version "$version"
    [[ $version == 5.* ]] || log "warning: JupyterHub $version (this benchmark targets 5.x)"
    token=$(helper token)
    port=$(helper free-port)
    hub_port=$(helper free-port)
    api_port=$(helper free-port)
    while [[ $hub_port == "$port" ]]; do hub_port=$(helper free-port); done
    while [[ $api_port == "$port" || $api_port == "$hub_port" ]]; do api_port=$(helper free-port); done

    cat >"$work/jupyterhub_config.py" <<'EOF'
# Generated by bench/api.sh. Values come from the environment set by the script.
import os

c = get_config()  # noqa: F821 (provided by JupyterHub)
work = os.environ["BENCH_JH_WORK"]
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = int(os.environ["BENCH_JH_PORT"])
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = int(os.environ["BENCH_JH_HUB_PORT"])
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:" + os.environ["BENCH_JH_API_PORT"]
c.ConfigurableHTTPProxy.pid_file = os.path.join(work, "proxy.pid")
c.JupyterHub.pid_file = os.path.join(work, "jupyterhub.pid")
c.JupyterHub.db_url = "sqlite:///" + os.path.join(work, "jupyterhub.sqlite")
c.JupyterHub.cookie_secret_file = os.path.join(work, "jupyterhub_cookie_secret")
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allowed_users = {
    f"user{i:03d}" for i in range(1, int(os.environ["BENCH_JH_USERS"]) + 1)
}
c.Authenticator.admin_users = {"user001"}
c.JupyterHub.services = [{"name": "bench", "api_token": os.environ["BENCH_JH_TOKEN"]}]
# list:users + read:users for GET /hub/api/users; tokens to create a hub-generated token.
c.JupyterHub.load_roles = [
    {
        "name": "bench-reader",
        "scopes": ["list:users", "read:users", "tokens"],
        "services": ["bench"],
    }
]
EOF
    url="http://127.0.0.1:$port/hub/api/users"
    start_bg "$work/jupyterhub.log" env -C "$work" \
        PATH="$NODE_PREFIX/node_modules/.bin:$PATH" BENCH_JH_WORK="$work" \
        BENCH_JH_PORT="$port" BENCH_JH_HUB_PORT="$hub_port" BENCH_JH_API_PORT="$api_port" \
        BENCH_JH_USERS="$JH_USERS" BENCH_JH_TOKEN="$token" \
        "$VENV/bin/jupyterhub" -f "$work/jupyterhub_config.py"
    local pgid=$BG_PID
    wait_http "$pgid" 120 "$work/jupyterhub.log" "$url" -H "Authorization: token $token"
    if [[ $JH_TOKEN == generated ]]; then
        # Tokens the hub generates are hashed with one SHA-512 round; the configured service
        # token (user-chosen, so possibly weak) with 16384 on every request. Use the fast kind.
        token=$(curl -sSf -X POST "http://127.0.0.1:$port/hub/api/users/user001/tokens" \
            -H "Authorization: token $token" -H 'Content-Type: application/json' \
            -d '{"scopes": ["list:users", "read:users"], "note": "bench"}' |
            helper json-field token)
    fi
    helper meta "$RESULTS" jupyterhub_token "$JH_TOKEN"
    count=$(curl -sSf "$url" -H "Authorization: token $token" |
        "$SYS_PYTHON" -c 'import json, sys; print(len(json.load(sys.stdin)))')
    ((count == JH_USERS)) || die "JupyterHub lists $count users, expected $JH_USERS"
    log "JupyterHub $version ready at http://127.0.0.1:$port (plain HTTP, $count users, $JH_TOKEN token)"
    run_wrk jupyterhub "$pgid" "$RESULTS" "$work" "$url" -H "Authorization: token $token"
    stop_server "$pgid"
}

want enclave && bench_enclave
want bare && bench_bare
want jupyterhub && bench_jupyterhub

echo
echo "API throughput, $(date -u +%Y-%m-%d) on $NPROC cores ($(awk -F': *' '/^model name/ {print $2; exit}' /proc/cpuinfo))"
echo "wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s --latency, after a ${WARMUP}s warm-up; one run each, noisy."
echo
helper api-report "$RESULTS"
mkdir -p "$RESULTS_DIR"
cp "$RESULTS" "$FINAL"
echo
echo "Results written to ${FINAL#"$REPO_DIR"/}"
