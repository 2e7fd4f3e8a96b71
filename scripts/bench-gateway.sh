#!/usr/bin/env bash
# Notebook gateway benchmark. Five targets in front of (or being) the same upstream nginx
# serving a 100-byte file, measured in turns:
#   front    Enclave's real notebook front (crates/enclave/examples/front_bench.rs): the whole
#            router, session cookie lookup, `notebook.open` decided by the policy chokepoint,
#            then the gateway; set up through the application's use cases, with a sandbox
#            backend whose `dial` reaches the upstream;
#   gateway  the gateway alone (crates/enclave-gateway/examples/gateway_bench.rs), no auth;
#   nginx    nginx as a reverse proxy; chp: configurable-http-proxy (JupyterHub's proxy);
#   direct   the upstream itself;
# then websocket churn through the gateway (memory before, half-way and after, open
# websockets at the end). See the "Notebook gateway" section of bench/README.md.
#
#   sudo bash scripts/bench-gateway.sh      # about 5 minutes after the build
#
# Everything listens on 127.0.0.1 (free ports, the package index on PYPI_PORT); every server
# runs in its own process group and is stopped on exit. Root is needed to apt-get install
# wrk/nginx/npm when missing and for the front's project volume (owned by the project's
# sandbox uid range); configurable-http-proxy goes into bench/.node (npm), as in bench/api.sh.
# The front needs the JupyterLab environment that bench-notebook-start.sh builds (the same
# pins, index URL and ENVS_DIR, so a build is reused); it is built once from the test
# wheelhouse through pypi-server on loopback when missing.
#
# Settings (environment): DURATION (15 s per measured wrk run), WARMUP (2 s), THREADS (2),
# CONNECTIONS (64), ROUNDS (2: every target is measured ROUNDS times, interleaved),
# ONLY ("front gateway nginx chp direct"), WS_SOCKETS (10000), WS_CONCURRENCY (50),
# NGINX_WORKERS (proxy nginx worker_processes, default 2 = cores), UPSTREAM_WORKERS (1),
# BODY_BYTES (100), SKIP_BUILD (1: use the examples already built), WHEELS
# (/var/cache/enclave-test/wheels), BENCH_CACHE (/var/cache/enclave-bench), ENVS_DIR
# ($BENCH_CACHE/envs), PYPI_PORT (38411).
# Results: a table on stdout and bench/results/gateway-<UTC time>.json.
set -euo pipefail

# shellcheck source=bench/common.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/bench/common.sh"

CONNECTIONS=${CONNECTIONS:-64}
ROUNDS=${ROUNDS:-2}
ONLY=${ONLY:-front gateway nginx chp direct}
WHEELS=${WHEELS:-/var/cache/enclave-test/wheels}
BENCH_CACHE=${BENCH_CACHE:-/var/cache/enclave-bench}
ENVS_DIR=${ENVS_DIR:-$BENCH_CACHE/envs}
# Part of the environment's fingerprint: the same as bench-notebook-start.sh, to reuse its build.
PYPI_PORT=${PYPI_PORT:-38411}
WS_SOCKETS=${WS_SOCKETS:-10000}
WS_CONCURRENCY=${WS_CONCURRENCY:-50}
NGINX_WORKERS=${NGINX_WORKERS:-$NPROC}
UPSTREAM_WORKERS=${UPSTREAM_WORKERS:-1}
BODY_BYTES=${BODY_BYTES:-100}
for v in DURATION THREADS CONNECTIONS ROUNDS WS_CONCURRENCY NGINX_WORKERS UPSTREAM_WORKERS BODY_BYTES; do
    check_uint "$v" "${!v}"
done
[[ $WS_SOCKETS =~ ^[0-9]+$ ]] || die "WS_SOCKETS must be a whole number"
[[ $WARMUP =~ ^[0-9]+$ ]] || die "WARMUP must be a whole number"
GW_BIN="$TARGET_DIR/release/examples/gateway_bench"
FRONT_BIN="$TARGET_DIR/release/examples/front_bench"
# The path every proxy is asked for (the gateway passes paths through unchanged, as behind
# Enclave's /p/{project}/nb/{name}/ routes).
BENCH_PATH=/p/demo/nb/n1/static/bench.txt
# Every target gets the same Cookie header: Enclave's session cookie (the front's real session
# once it runs; stripped by the gateway) and Jupyter's _xsrf (passed). wrk reads it from a Lua
# file, so the session secret is never on a command line or in a log.
XSRF='_xsrf=2|abcdef|0123456789|1700000000'
SESSION_SECRET=0123456789abcdef0123456789abcdef0123456789abcdef

# ------------------------------------------------------------------ prerequisites

ensure_wrk
command -v nginx >/dev/null 2>&1 || [[ -x /usr/sbin/nginx ]] || apt_install nginx
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
if [[ " $ONLY " == *" chp "* ]]; then
    ensure_proxy
fi
CHP="$NODE_PREFIX/node_modules/.bin/configurable-http-proxy"

if [[ ${SKIP_BUILD:-0} == 1 ]]; then
    log "SKIP_BUILD=1: using $GW_BIN"
else
    need cargo "build as your user first and rerun with SKIP_BUILD=1, or keep PATH under sudo"
    log "cargo build --release -p enclave-gateway --example gateway_bench"
    (cd "$REPO_DIR" && cargo build --release -p enclave-gateway --example gateway_bench) >&2
    if [[ " $ONLY " == *" front "* ]]; then
        log "cargo build --release -p enclave --example front_bench"
        (cd "$REPO_DIR" && cargo build --release -p enclave --example front_bench) >&2
    fi
fi
[[ -x $GW_BIN ]] || die "$GW_BIN is missing"
if [[ " $ONLY " == *" front "* ]]; then
    [[ -x $FRONT_BIN ]] || die "$FRONT_BIN is missing"
    need pypi-server "scripts/test.sh installs it (pip install pypiserver)"
    ls "$WHEELS"/jupyterlab-*.whl >/dev/null 2>&1 ||
        die "no JupyterLab wheel in $WHEELS: run scripts/test.sh (it downloads tests/notebooks/wheels.txt) or set WHEELS"
    LAB_PINS=$(grep -E '^(jupyterlab|ipykernel)==' "$REPO_DIR/tests/notebooks/wheels.txt" | tr '\n' ' ')
    [[ -n $LAB_PINS ]] || die "cannot find the jupyterlab and ipykernel pins in tests/notebooks/wheels.txt"
fi

WORK=''
new_tmpdir WORK
# nginx workers may run as nobody when started by root: let them read the served file.
chmod 755 "$WORK"
mkdir -p "$WORK/www${BENCH_PATH%/*}" "$WORK/www/p/demo/nb/n1/api" "$WORK/nginx-tmp"
head -c "$BODY_BYTES" /dev/zero | tr '\0' 'x' >"$WORK/www$BENCH_PATH"
# JupyterLab's status endpoint, which Enclave polls before it calls a notebook server ready.
echo '{"started": "bench"}' >"$WORK/www/p/demo/nb/n1/api/status"
chmod -R a+rX "$WORK/www"

mkdir -p "$RESULTS_DIR"
RESULTS="$RESULTS_DIR/gateway-$(date -u +%Y-%m-%dT%H%M%SZ).json"
RESULTS_TMP="$WORK/results.json"
machine_meta "$RESULTS_TMP"
helper meta-json "$RESULTS_TMP" gateway_settings \
    "{\"rounds\": $ROUNDS, \"body_bytes\": $BODY_BYTES, \"nginx_workers\": $NGINX_WORKERS, \"upstream_workers\": $UPSTREAM_WORKERS, \"ws_sockets\": $WS_SOCKETS, \"ws_concurrency\": $WS_CONCURRENCY}"
helper meta "$RESULTS_TMP" nginx_version "$("$NGINX" -v 2>&1)"

# nginx_conf NAME WORKERS SERVER_BLOCK [HTTP_EXTRA]: a self-contained nginx.conf in $WORK/NAME.
nginx_conf() {
    local name=$1 workers=$2 server=$3 extra=${4:-}
    local user_line=
    [[ $EUID -eq 0 ]] && user_line="user nobody nogroup;"
    cat >"$WORK/$name.conf" <<EOF
$user_line
worker_processes $workers;
daemon off;
pid $WORK/$name.pid;
error_log $WORK/$name.error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx-tmp/$name-body;
    proxy_temp_path $WORK/nginx-tmp/$name-proxy;
    fastcgi_temp_path $WORK/nginx-tmp/$name-fastcgi;
    uwsgi_temp_path $WORK/nginx-tmp/$name-uwsgi;
    scgi_temp_path $WORK/nginx-tmp/$name-scgi;
    # Keep client connections open for the whole run (nginx closes one after 1000
    # requests by default; the gateway and configurable-http-proxy have no such limit).
    keepalive_requests 10000000;
    keepalive_timeout 120s;
    $extra
    $server
}
EOF
}

start_nginx() {
    local name=$1
    start_bg "$WORK/$name.log" "$NGINX" -p "$WORK" -e "$WORK/$name.error.log" -c "$WORK/$name.conf"
}

# rss_kib PGID: the summed VmRSS (KiB) of the live processes in the group (for nginx:
# master + workers, which double-counts the pages they share).
rss_kib() {
    local pgid=$1 total=0 pid v
    for pid in $(pgrep -g "$pgid" || true); do
        v=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
        total=$((total + ${v:-0}))
    done
    echo "$total"
}

# ------------------------------------------------------------------ servers

UP_PORT=$(helper free-port)
nginx_conf upstream "$UPSTREAM_WORKERS" "server { listen 127.0.0.1:$UP_PORT; root $WORK/www; }"
start_nginx upstream
UP_PGID=$BG_PID
UP_URL="http://127.0.0.1:$UP_PORT$BENCH_PATH"
wait_http "$UP_PGID" 20 "$WORK/upstream.error.log" "$UP_URL"

declare -A PGID URL
PGID[direct]=$UP_PGID
URL[direct]=$UP_URL

if [[ " $ONLY " == *" front "* ]]; then
    if ! "$SYS_PYTHON" -c 'import socket, sys; socket.create_server(("127.0.0.1", int(sys.argv[1])))' \
        "$PYPI_PORT" 2>/dev/null; then
        PYPI_PORT=$(helper free-port)
        log "port 38411 is taken: pypi-server on $PYPI_PORT (the environment will be built again)"
    fi
    start_bg "$WORK/pypi-server.log" pypi-server run -i 127.0.0.1 -p "$PYPI_PORT" \
        --disable-fallback --backend simple-dir "$WHEELS"
    PYPI_PGID=$BG_PID
    wait_http "$PYPI_PGID" 30 "$WORK/pypi-server.log" "http://127.0.0.1:$PYPI_PORT/simple/"
    mkdir -p "$ENVS_DIR"
    port=$(helper free-port)
    log "front: setting up Enclave (admin, user, project, environment $LAB_PINS, notebook)"
    start_bg "$WORK/front.log" "$FRONT_BIN" --listen "127.0.0.1:$port" \
        --upstream "127.0.0.1:$UP_PORT" --data "$WORK/front-data" --envs "$ENVS_DIR" \
        --index "http://127.0.0.1:$PYPI_PORT/simple/" --pins "$LAB_PINS" \
        --cookie-file "$WORK/front.cookie"
    PGID[front]=$BG_PID
    URL[front]="http://127.0.0.1:$port$BENCH_PATH"
    deadline=$((SECONDS + 900))
    until grep -q '^READY ' "$WORK/front.log" 2>/dev/null; do
        helper alive "${PGID[front]}" || { cat "$WORK/front.log" >&2; die "the front exited during set-up (log above)"; }
        ((SECONDS < deadline)) || { cat "$WORK/front.log" >&2; die "the front's set-up took over 900 s"; }
        sleep 0.5
    done
    stop_server "$PYPI_PGID"
    SESSION_SECRET=$(cat "$WORK/front.cookie")
fi
(
    umask 077
    printf 'wrk.headers["Cookie"] = "__Host-enclave_session=%s; %s"\n' "$SESSION_SECRET" "$XSRF" >"$WORK/cookie.lua"
    printf 'Cookie: __Host-enclave_session=%s; %s\n' "$SESSION_SECRET" "$XSRF" >"$WORK/cookie.hdr"
)
if [[ -n ${PGID[front]:-} ]]; then
    wait_http "${PGID[front]}" 20 "$WORK/front.log" "${URL[front]}" -H "@$WORK/cookie.hdr"
    helper meta "$RESULTS_TMP" front_rss_idle_kib "$(rss_kib "${PGID[front]}")"
fi

if [[ " $ONLY " == *" nginx "* ]]; then
    port=$(helper free-port)
    nginx_conf proxy "$NGINX_WORKERS" "server {
        listen 127.0.0.1:$port;
        location / {
            proxy_pass http://bench_upstream;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_set_header Authorization \"token 0123456789abcdef0123456789abcdef0123456789abcdef\";
        }
    }" "upstream bench_upstream { server 127.0.0.1:$UP_PORT; keepalive 64; keepalive_requests 10000000; }"
    start_nginx proxy
    PGID[nginx]=$BG_PID
    URL[nginx]="http://127.0.0.1:$port$BENCH_PATH"
    wait_http "${PGID[nginx]}" 20 "$WORK/proxy.error.log" "${URL[nginx]}"
fi

if [[ " $ONLY " == *" chp "* ]]; then
    port=$(helper free-port)
    api_port=$(helper free-port)
    CONFIGPROXY_AUTH_TOKEN=$(helper token)
    export CONFIGPROXY_AUTH_TOKEN
    start_bg "$WORK/chp.log" "$CHP" --ip 127.0.0.1 --port "$port" --api-ip 127.0.0.1 \
        --api-port "$api_port" --default-target "http://127.0.0.1:$UP_PORT" --log-level warn
    PGID[chp]=$BG_PID
    URL[chp]="http://127.0.0.1:$port$BENCH_PATH"
    helper meta "$RESULTS_TMP" chp_version "$("$CHP" --version 2>/dev/null || echo '?') (node $(node --version))"
    wait_http "${PGID[chp]}" 30 "$WORK/chp.log" "${URL[chp]}"
    unset CONFIGPROXY_AUTH_TOKEN
fi

if [[ " $ONLY " == *" gateway "* || $WS_SOCKETS -gt 0 ]]; then
    ws_port=$(helper free-port)
    start_bg "$WORK/ws-echo.log" "$GW_BIN" ws-echo --listen "127.0.0.1:$ws_port"
    port=$(helper free-port)
    start_bg "$WORK/gateway.log" "$GW_BIN" serve --listen "127.0.0.1:$port" \
        --upstream "127.0.0.1:$UP_PORT" --ws-upstream "127.0.0.1:$ws_port"
    PGID[gateway]=$BG_PID
    GW_ADDR="127.0.0.1:$port"
    URL[gateway]="http://$GW_ADDR$BENCH_PATH"
    wait_http "${PGID[gateway]}" 20 "$WORK/gateway.log" "${URL[gateway]}"
    helper meta "$RESULTS_TMP" gateway_rss_idle_kib "$(rss_kib "${PGID[gateway]}")"
fi

# Every proxy must hand back the upstream's body unchanged.
for name in $ONLY; do
    [[ -n ${URL[$name]:-} ]] || die "unknown name in ONLY: $name"
    got=$(curl -sf --max-time 5 -H "@$WORK/cookie.hdr" "${URL[$name]}" | wc -c)
    [[ $got == "$BODY_BYTES" ]] || die "$name answered $got bytes instead of $BODY_BYTES"
done

# ------------------------------------------------------------------ throughput

NAMES=()
for ((round = 1; round <= ROUNDS; round++)); do
    for name in $ONLY; do
        run_wrk "$name-r$round" "${PGID[$name]}" "$RESULTS_TMP" "$WORK" "${URL[$name]}" -s "$WORK/cookie.lua"
        NAMES+=("$name-r$round")
    done
done
for name in $ONLY; do
    [[ $name == direct ]] && continue
    helper meta "$RESULTS_TMP" "rss_kib_$name" "$(rss_kib "${PGID[$name]}")"
done
if [[ -n ${PGID[gateway]:-} ]]; then
    helper meta "$RESULTS_TMP" gateway_stats_after_wrk \
        "$(curl -sf --max-time 5 "http://$GW_ADDR/_bench/stats" | tr -d '\n')"
fi

# ------------------------------------------------------------------ websocket churn

WS_OK=1
if ((WS_SOCKETS > 0)); then
    log "websocket churn: $WS_SOCKETS websockets through the gateway, $WS_CONCURRENCY at a time"
    if ! run_fg "$WORK/ws-churn.out" "$GW_BIN" ws-churn --gateway "$GW_ADDR" \
        --pid "${PGID[gateway]}" --n "$WS_SOCKETS" --concurrency "$WS_CONCURRENCY"; then
        WS_OK=0
    fi
    sed 's/^/    /' "$WORK/ws-churn.out" >&2
    helper meta "$RESULTS_TMP" ws_churn "$(grep '^RESULT ' "$WORK/ws-churn.out" | tail -n1 || true)"
    helper meta "$RESULTS_TMP" ws_churn_ok "$WS_OK"
fi
if [[ -n ${PGID[gateway]:-} ]] && grep -q ' ERROR \| WARN ' "$WORK/gateway.log"; then
    log "the gateway logged warnings or errors:"
    grep ' ERROR \| WARN ' "$WORK/gateway.log" | head -n 5 >&2
fi

# ------------------------------------------------------------------ report

"$SYS_PYTHON" - "$RESULTS_TMP" "$ONLY" <<'PY'
import json, statistics, sys

path, only = sys.argv[1], sys.argv[2].split()
with open(path, encoding="utf-8") as f:
    data = json.load(f)
runs = data["runs"]
summary = {}
print(f"{'proxy':<10} {'round':>5} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'srv cores':>9} "
      f"{'us/req':>7} {'wrk cores':>9} {'other':>6} {'errors':>6}")
for name in only:
    rs = sorted((k, v) for k, v in runs.items() if k.rsplit("-r", 1)[0] == name)
    for key, r in rs:
        us = r["server_cores"] / r["rps"] * 1e6 if r["rps"] else 0.0
        r["server_cpu_us_per_request"] = round(us, 1)
        errors = r["non_2xx_3xx"] + r["socket_errors"]
        print(f"{name:<10} {key.rsplit('-r', 1)[1]:>5} {r['rps']:>10.0f} {r['p50_ms']:>8.2f} "
              f"{r['p99_ms']:>8.2f} {r['server_cores']:>9.2f} {us:>7.1f} {r['wrk_cores']:>9.2f} "
              f"{r['other_cores']:>6.2f} {errors:>6}")
        if errors:
            print(f"WARNING: {key}: {errors} errors: its rate is not a rate of successes")
    if rs:
        summary[name] = {
            "rps": round(statistics.mean(r["rps"] for _, r in rs), 1),
            "p50_ms": round(statistics.median(r["p50_ms"] for _, r in rs), 3),
            "p99_ms": round(statistics.median(r["p99_ms"] for _, r in rs), 3),
            "server_cpu_us_per_request": round(
                statistics.mean(r["server_cpu_us_per_request"] for _, r in rs), 1),
            "rss_kib": int(data.get(f"rss_kib_{name}", 0)) or None,
        }
print()
print(f"{'proxy':<10} {'mean req/s':>11} {'p99 ms':>8} {'us/req':>7} {'RSS MB':>7}")
for name, s in summary.items():
    rss = f"{s['rss_kib'] / 1024:.1f}" if s["rss_kib"] else "-"
    print(f"{name:<10} {s['rps']:>11.0f} {s['p99_ms']:>8.2f} {s['server_cpu_us_per_request']:>7.1f} {rss:>7}")
ratios = {}
def ratio(a, b, target):
    if a in summary and b in summary and summary[b]["rps"]:
        value = round(summary[a]["rps"] / summary[b]["rps"], 3)
        ratios[f"{a}/{b}"] = value
        print(f"{a}/{b}: {value:.2f}x (target >= {target}x: {'met' if value >= target else 'NOT met'})")
print()
for proxy in ("front", "gateway"):
    ratio(proxy, "chp", 5)
    ratio(proxy, "nginx", 0.8)
added = {}
if "direct" in summary:
    for name, s in summary.items():
        if name != "direct":
            d = summary["direct"]
            added[name] = {"p50_ms": round(s["p50_ms"] - d["p50_ms"], 3),
                           "p99_ms": round(s["p99_ms"] - d["p99_ms"], 3)}
            print(f"{name}: added against the upstream directly: p50 {added[name]['p50_ms']:+.2f} ms, "
                  f"p99 {added[name]['p99_ms']:+.2f} ms (p99 under saturation is noisy)")
for proxy in ("front", "gateway"):
    if summary.get(proxy, {}).get("rss_kib"):
        mb = summary[proxy]["rss_kib"] / 1024
        print(f"{proxy} RSS after the runs: {mb:.1f} MB (target <= 30 MB: {'met' if mb <= 30 else 'NOT met'})")
churn = data.get("ws_churn", "")
if churn:
    fields = dict(kv.split("=", 1) for kv in churn.split()[1:])
    growth = int(fields["growth_second_half_kib"])
    print(f"websocket churn: {fields['ws_sockets']} sockets, {fields['ws_errors']} errors, "
          f"{fields['ws_per_s']}/s; RSS {int(fields['rss_before_kib']) / 1024:.1f} -> "
          f"{int(fields['rss_half_kib']) / 1024:.1f} -> {int(fields['rss_end_kib']) / 1024:.1f} MB "
          f"(second half {growth:+d} KiB); open_websockets at the end: {fields['open_websockets']}")
    data["ws_churn_fields"] = fields
data["summary"] = summary
data["ratios"] = ratios
data["added_latency_ms"] = added
with open(path, "w", encoding="utf-8") as f:
    json.dump(data, f, indent=2)
    f.write("\n")
PY
cp "$RESULTS_TMP" "$RESULTS"
log "results saved to $RESULTS"
((WS_OK == 1)) || die "the websocket churn failed (see above)"
