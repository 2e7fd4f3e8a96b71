#!/usr/bin/env bash
# Notebook start benchmark: time from "start a notebook server" to "it answers", for
# (a) JupyterHub 6.1 with SimpleLocalProcessSpawner (JupyterLab as a plain local process of
#     the hub's user: no sandbox, no user switching), DummyAuthenticator, through its
#     configurable-http-proxy, and
# (b) Enclave: `POST /api/v1/projects/P/notebooks` until `GET …/notebooks/NAME` says `ready`
#     (JupyterLab in a runc sandbox on a private network), then until the first answer
#     through Enclave's gateway.
# The two sides alternate run by run (warm-up runs first), so that load from elsewhere on a
# shared machine falls on both. Both run the same JupyterLab (jupyterlab 4.6.6, ipykernel
# 7.4.0 from the test wheelhouse, tests/notebooks/wheels.txt) on the same /usr/bin/python3.11.
# See the "Notebook start" section of bench/README.md.
#
#   sudo bash scripts/bench-notebook-start.sh
#
# Needs root (Enclave's sandboxes; the anchor then runs JupyterLab with --allow-root), runc,
# /usr/bin/python3.11, pypi-server and uv (scripts/test.sh installs them), and the wheelhouse
# in $WHEELS (scripts/test.sh downloads it). JupyterHub is pip-installed from PyPI (the one
# download) into $BENCH_CACHE/jupyterhub-venv together with JupyterLab from the wheelhouse
# (--no-index); configurable-http-proxy goes into bench/.node (npm), as in bench/api.sh.
# Everything listens on 127.0.0.1 (free ports; the index on PYPI_PORT); every server runs in
# its own process group and is stopped on exit.
#
# Settings (environment): RUNS (5 measured starts per side), WARMUP_RUNS (1 unmeasured start
# per side first), ONLY ("jupyterhub enclave"), WHEELS (/var/cache/enclave-test/wheels),
# BENCH_CACHE (/var/cache/enclave-bench), ENVS_DIR ($BENCH_CACHE/envs: Enclave's built
# environments), PYPI_PORT (38411: the loopback index's port, part of an environment's
# fingerprint, so fixed), JUPYTERHUB_SPEC (jupyterhub==6.1.*),
# ENV_BUILD_TIMEOUT (900 s), START_TIMEOUT (180 s), SKIP_BUILD (1: use target/release/enclave).
# Results: a table on stdout and bench/results/notebook-start-<UTC time>.json.
set -euo pipefail

# shellcheck source=bench/common.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/bench/common.sh"

RUNS=${RUNS:-5}
WARMUP_RUNS=${WARMUP_RUNS:-1}
ONLY=${ONLY:-jupyterhub enclave}
WHEELS=${WHEELS:-/var/cache/enclave-test/wheels}
BENCH_CACHE=${BENCH_CACHE:-/var/cache/enclave-bench}
ENVS_DIR=${ENVS_DIR:-$BENCH_CACHE/envs}
# An environment's fingerprint includes the index URL: a fixed port lets later runs reuse the
# environment built by the first one.
PYPI_PORT=${PYPI_PORT:-38411}
JUPYTERHUB_SPEC=${JUPYTERHUB_SPEC:-jupyterhub==6.1.*}
ENV_BUILD_TIMEOUT=${ENV_BUILD_TIMEOUT:-900}
START_TIMEOUT=${START_TIMEOUT:-180}
LAB_PYTHON=/usr/bin/python3.11
check_uint RUNS "$RUNS"
check_uint ENV_BUILD_TIMEOUT "$ENV_BUILD_TIMEOUT"
check_uint START_TIMEOUT "$START_TIMEOUT"
check_uint PYPI_PORT "$PYPI_PORT"
[[ $WARMUP_RUNS =~ ^[0-9]+$ ]] || die "WARMUP_RUNS must be a whole number"
want() { [[ " $ONLY " == *" $1 "* ]]; }

[[ $EUID -eq 0 ]] || die "run as root (sudo bash $0): Enclave's sandboxes need it"
need curl
need "$SYS_PYTHON"
[[ -x $LAB_PYTHON ]] || die "$LAB_PYTHON is required (both sides run JupyterLab on it)"
ls "$WHEELS"/jupyterlab-4.6.6-*.whl >/dev/null 2>&1 ||
    die "no JupyterLab wheel in $WHEELS: run scripts/test.sh (it downloads tests/notebooks/wheels.txt) or set WHEELS"
# The pins, exactly as in the wheelhouse list.
LAB_PINS=$(grep -E '^(jupyterlab|ipykernel)==' "$REPO_DIR/tests/notebooks/wheels.txt" | tr '\n' ' ')
[[ $LAB_PINS == *jupyterlab==* && $LAB_PINS == *ipykernel==* ]] ||
    die "cannot find the jupyterlab and ipykernel pins in tests/notebooks/wheels.txt"

WORK=''
new_tmpdir WORK
chmod 755 "$WORK"
mkdir -p "$RESULTS_DIR"
RESULTS="$RESULTS_DIR/notebook-start-$(date -u +%Y-%m-%dT%H%M%SZ).json"
RESULTS_TMP="$WORK/results.json"
machine_meta_nb() {
    local model commit
    model=$(awk -F': *' '/^model name/ {print $2; exit}' /proc/cpuinfo)
    commit=$(git -C "$REPO_DIR" rev-parse --short HEAD 2>/dev/null || echo unknown)
    [[ -z $(git -C "$REPO_DIR" status --porcelain -- crates 2>/dev/null) ]] || commit="$commit+uncommitted"
    helper meta "$RESULTS_TMP" date "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    helper meta "$RESULTS_TMP" host_nproc "$NPROC"
    helper meta "$RESULTS_TMP" host_cpu "${model:-unknown}"
    helper meta "$RESULTS_TMP" host_kernel "$(uname -r)"
    helper meta "$RESULTS_TMP" git_commit "$commit"
    helper meta-json "$RESULTS_TMP" settings "{\"runs\": $RUNS, \"warmup_runs\": $WARMUP_RUNS}"
}
machine_meta_nb

# The timing client (standard library only): setup calls and the timed loops of both sides.
cat >"$WORK/nbstart.py" <<'PY'
"""Times notebook starts. Usage: nbstart.py enclave-setup|run|report ... (see the end)."""
import http.client
import json
import os
import ssl
import statistics
import sys
import time
import urllib.parse

POLL = 0.05


class Client:
    """One keep-alive connection to a loopback server; reconnects when needed."""

    def __init__(self, base, cafile=None, token=None, scheme="Bearer"):
        u = urllib.parse.urlsplit(base)
        assert u.hostname == "127.0.0.1", f"loopback only, not {base}"
        self.host, self.port, self.https = u.hostname, u.port, u.scheme == "https"
        self.ctx = None
        if self.https:
            self.ctx = ssl.create_default_context(cafile=cafile)
            self.ctx.check_hostname = False  # Enclave's self-signed certificate, on loopback
        self.auth = f"{scheme} {token}" if token else None
        self.conn = None

    def call(self, method, path, body=None, auth=True):
        headers = {"Accept": "application/json"}
        if auth and self.auth:
            headers["Authorization"] = self.auth
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        for attempt in range(2):
            if self.conn is None:
                if self.https:
                    self.conn = http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=30)
                else:
                    self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
            try:
                self.conn.request(method, path, body=data, headers=headers)
                r = self.conn.getresponse()
                raw = r.read()
                if r.getheader("Connection", "").lower() == "close":
                    self.conn.close()
                    self.conn = None
                try:
                    value = json.loads(raw) if raw else None
                except ValueError:
                    value = raw.decode(errors="replace")[:300]
                return r.status, value
            except (ConnectionError, http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")


def wait(what, cond, timeout):
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise SystemExit(f"error: timed out waiting for {what}")
        time.sleep(POLL)


def summary(name, runs, warmup):
    measured = runs[warmup:]
    out = {"runs": runs, "measured": measured}
    for key in measured[0]:
        vals = [r[key] for r in measured]
        out[f"{key}_p50"] = round(statistics.median(vals), 3)
        out[f"{key}_min"] = round(min(vals), 3)
        out[f"{key}_max"] = round(max(vals), 3)
    return out


def save(path, key, value):
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    data[key] = value
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2)
    os.replace(path + ".tmp", path)


class JupyterHubSide:
    """One spawn per run: POST /hub/api/users/USER/server until the server answers through
    configurable-http-proxy, then DELETE it and wait until the hub says it stopped."""

    name = "jupyterhub"

    def __init__(self, url, token, user, timeout):
        self.hub = Client(url, token=token, scheme="token")
        self.proxy = Client(url)  # the single-user server, through configurable-http-proxy
        self.user, self.timeout = user, timeout

    def stopped(self):
        st, u = self.hub.call("GET", f"/hub/api/users/{self.user}")
        return st == 200 and not u.get("servers")

    def once(self, i):
        user = self.user
        wait("the server to be stopped", self.stopped, self.timeout)
        t0 = time.monotonic()
        st, body = self.hub.call("POST", f"/hub/api/users/{user}/server")
        if st not in (201, 202):
            raise SystemExit(f"error: POST /hub/api/users/{user}/server: {st} {body}")
        t_post = time.monotonic() - t0

        def answers():
            # Jupyter Server's version endpoint needs no token. No redirects are followed:
            # while the server is not up, the proxy sends /user/… to the hub.
            st, body = self.proxy.call("GET", f"/user/{user}/api", auth=False)
            return st == 200 and isinstance(body, dict) and "version" in body

        wait("the single-user server to answer", answers, self.timeout)
        t_answer = time.monotonic() - t0
        st, body = self.hub.call("DELETE", f"/hub/api/users/{user}/server")
        if st not in (202, 204):
            raise SystemExit(f"error: DELETE /hub/api/users/{user}/server: {st} {body}")
        wait("the server to be stopped", self.stopped, self.timeout)
        return {"spawn_request_s": round(t_post, 3), "answers_s": round(t_answer, 3)}


def enclave_setup(url, cafile, admin_user, admin_password, user, password, project, template,
                  build_timeout, out_token):
    anon = Client(url, cafile=cafile)
    st, body = anon.call("POST", "/api/v1/auth/token",
                         {"username": admin_user, "password": admin_password, "name": "bench"})
    assert st == 201, f"admin token: {st} {body}"
    admin = Client(url, cafile=cafile, token=body["token"])
    st, body = admin.call("POST", "/api/v1/users", {"username": user, "password": password})
    assert st == 201, f"create user: {st} {body}"
    st, body = admin.call("POST", "/api/v1/projects", {"name": project, "owner": user})
    assert st == 201, f"create project: {st} {body}"
    st, body = admin.call("PUT", "/api/v1/environments/lab", template)
    assert st == 200, f"PUT /api/v1/environments/lab: {st} {body}"
    t0 = time.monotonic()
    last = [None]

    def built():
        st, env = admin.call("GET", "/api/v1/environments/lab")
        assert st == 200, f"GET /api/v1/environments/lab: {st} {env}"
        if env["status"] == "failed":
            raise SystemExit(f"error: the environment build failed: {env.get('message')}")
        line = (env["status"], env.get("percent"), env.get("message"))
        if line != last[0]:
            print(f"environment lab: {env['status']} {env.get('percent') or ''} {env.get('message') or ''}",
                  file=sys.stderr)
            last[0] = line
        return env["status"] == "ready"

    wait("the lab environment to be built", built, build_timeout)
    build_s = round(time.monotonic() - t0, 1)
    st, body = anon.call("POST", "/api/v1/auth/token",
                         {"username": user, "password": password, "name": "bench"})
    assert st == 201, f"user token: {st} {body}"
    fd = os.open(out_token, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(body["token"])
    print(build_s)


class EnclaveSide:
    """One notebook server per run (a new name each time): POST …/notebooks until GET says
    `ready`, then until it answers through the gateway; then DELETE it (stops it first) and
    wait until it is gone."""

    name = "enclave"

    def __init__(self, url, cafile, token, project, timeout):
        self.api = Client(url, cafile=cafile, token=token)
        self.gw = Client(url, cafile=cafile, token=token)
        self.project, self.timeout = project, timeout

    def once(self, i):
        api, project, name = self.api, self.project, f"bench-{i + 1}"
        t0 = time.monotonic()
        st, nb = api.call("POST", f"/api/v1/projects/{project}/notebooks",
                          {"name": name, "environment": "lab"})
        if st != 201:
            raise SystemExit(f"error: POST /api/v1/projects/{project}/notebooks: {st} {nb}")
        t_post = time.monotonic() - t0

        def ready():
            st, nb = api.call("GET", f"/api/v1/projects/{project}/notebooks/{name}")
            if st != 200 or nb["state"] == "failed":
                raise SystemExit(f"error: notebook {name}: {st} {nb}")
            return nb["state"] == "ready"

        wait(f"notebook {name} to be ready", ready, self.timeout)
        t_ready = time.monotonic() - t0

        def answers():
            st, body = self.gw.call("GET", f"/p/{project}/nb/{name}/api")
            return st == 200 and isinstance(body, dict) and "version" in body

        wait(f"notebook {name} to answer through the gateway", answers, self.timeout)
        t_answer = time.monotonic() - t0
        st, body = api.call("DELETE", f"/api/v1/projects/{project}/notebooks/{name}")
        if st != 204:
            raise SystemExit(f"error: DELETE notebook {name}: {st} {body}")
        wait(f"notebook {name} to be gone",
             lambda: api.call("GET", f"/api/v1/projects/{project}/notebooks/{name}")[0] == 404,
             self.timeout)
        return {"create_request_s": round(t_post, 3), "ready_s": round(t_ready, 3),
                "answers_s": round(t_answer, 3)}


def run(results, config):
    """Alternates the sides run by run (the machine is shared: interleaving spreads other
    load over both), warm-up runs first."""
    with open(config, encoding="utf-8") as f:
        cfg = json.load(f)
    sides = []
    if "jupyterhub" in cfg:
        c = cfg["jupyterhub"]
        sides.append(JupyterHubSide(c["url"], c["token"], c["user"], cfg["timeout"]))
    if "enclave" in cfg:
        c = cfg["enclave"]
        sides.append(EnclaveSide(c["url"], c["cafile"], c["token"], c["project"], cfg["timeout"]))
    warmup, runs = cfg["warmup"], cfg["runs"]
    done = {side.name: [] for side in sides}
    for i in range(warmup + runs):
        for side in sides:
            r = side.once(i)
            print(f"{side.name} run {i + 1}{' (warm-up)' if i < warmup else ''}: {r}", file=sys.stderr)
            done[side.name].append(r)
    for side in sides:
        save(results, side.name, summary(side.name, done[side.name], warmup))


def report(results):
    with open(results, encoding="utf-8") as f:
        data = json.load(f)
    jh, en = data.get("jupyterhub"), data.get("enclave")
    print(f"{'side':<44} {'p50 s':>7} {'min s':>7} {'max s':>7}  runs (s)")
    rows = []
    if jh:
        rows.append(("JupyterHub: spawn request returned", jh, "spawn_request_s"))
        rows.append(("JupyterHub: server answers through the proxy", jh, "answers_s"))
    if en:
        rows.append(("Enclave: create request returned", en, "create_request_s"))
        rows.append(("Enclave: state ready", en, "ready_s"))
        rows.append(("Enclave: server answers through the gateway", en, "answers_s"))
    for label, side, key in rows:
        runs = " ".join(f"{r[key]:.2f}" for r in side["measured"])
        print(f"{label:<44} {side[key + '_p50']:>7.2f} {side[key + '_min']:>7.2f} "
              f"{side[key + '_max']:>7.2f}  {runs}")
    if jh and en:
        ratios = {
            "enclave_ready/jupyterhub_answers": round(en["ready_s_p50"] / jh["answers_s_p50"], 3),
            "enclave_answers/jupyterhub_answers": round(en["answers_s_p50"] / jh["answers_s_p50"], 3),
        }
        data["ratios"] = ratios
        for k, v in ratios.items():
            print(f"{k} (p50): {v:.2f}x (target <= 0.7x: {'met' if v <= 0.7 else 'NOT met'})")
        with open(results, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2)


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "enclave-setup":
        enclave_setup(args[0], args[1], args[2], args[3], args[4], args[5], args[6],
                      json.loads(args[7]), float(args[8]), args[9])
    elif cmd == "run":
        run(args[0], args[1])
    elif cmd == "report":
        report(args[0])
    else:
        raise SystemExit(f"unknown command {cmd}")
PY
nbstart() { "$SYS_PYTHON" "$WORK/nbstart.py" "$@"; }

# ------------------------------------------------------------------ (a) JupyterHub

start_jupyterhub() {
    local venv="$BENCH_CACHE/jupyterhub-venv" work="$WORK/jupyterhub" token port hub_port api_port
    mkdir -p "$work/home" "$BENCH_CACHE"
    if [[ ! -x $venv/bin/jupyterhub-singleuser || ! -x $venv/bin/jupyter-lab ]]; then
        log "creating $venv: JupyterLab from $WHEELS (no index), then $JUPYTERHUB_SPEC from PyPI"
        rm -rf "$venv"
        "$LAB_PYTHON" -m venv "$venv" || die "cannot create $venv (is python3.11-venv installed?)"
        # shellcheck disable=SC2086 # LAB_PINS is a list of pins
        "$venv/bin/pip" install -q --disable-pip-version-check --no-index --find-links "$WHEELS" \
            $LAB_PINS >&2
        "$venv/bin/pip" install -q --disable-pip-version-check "$JUPYTERHUB_SPEC" >&2
    fi
    ensure_proxy
    local jh_version lab_version
    jh_version=$("$venv/bin/python" -c 'import jupyterhub; print(jupyterhub.__version__)')
    lab_version=$("$venv/bin/python" -c 'import jupyterlab; print(jupyterlab.__version__)')
    helper meta "$RESULTS_TMP" jupyterhub_version "$jh_version"
    helper meta "$RESULTS_TMP" jupyterhub_jupyterlab_version "$lab_version"
    helper meta "$RESULTS_TMP" chp_version "$("$NODE_PREFIX/node_modules/.bin/configurable-http-proxy" --version 2>/dev/null || echo '?')"
    token=$(helper token)
    port=$(helper free-port)
    hub_port=$(helper free-port)
    api_port=$(helper free-port)
    while [[ $hub_port == "$port" ]]; do hub_port=$(helper free-port); done
    while [[ $api_port == "$port" || $api_port == "$hub_port" ]]; do api_port=$(helper free-port); done
    cat >"$work/jupyterhub_config.py" <<'EOF'
import os

c = get_config()  # noqa: F821 (provided by JupyterHub)
work = os.environ["BENCH_JH_WORK"]
venv = os.environ["BENCH_JH_VENV"]
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
c.Authenticator.allowed_users = {"bench"}
# Unsandboxed: the single-user server is a plain process of the hub's user.
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = os.path.join(work, "home", "{username}")
c.Spawner.cmd = [os.path.join(venv, "bin", "jupyterhub-singleuser")]
c.Spawner.default_url = "/lab"
c.Spawner.ip = "127.0.0.1"
if os.geteuid() == 0:
    c.Spawner.args = ["--allow-root"]
c.Spawner.start_timeout = 180
c.Spawner.http_timeout = 180
c.JupyterHub.services = [{"name": "bench", "api_token": os.environ["BENCH_JH_TOKEN"]}]
c.JupyterHub.load_roles = [
    {"name": "bench-spawner", "scopes": ["admin:users", "admin:servers"], "services": ["bench"]}
]
EOF
    start_bg "$work/jupyterhub.log" env -C "$work" \
        PATH="$venv/bin:$NODE_PREFIX/node_modules/.bin:$PATH" BENCH_JH_WORK="$work" \
        BENCH_JH_VENV="$venv" BENCH_JH_PORT="$port" BENCH_JH_HUB_PORT="$hub_port" \
        BENCH_JH_API_PORT="$api_port" BENCH_JH_TOKEN="$token" \
        "$venv/bin/jupyterhub" -f "$work/jupyterhub_config.py"
    JH_PGID=$BG_PID
    wait_http "$JH_PGID" 120 "$work/jupyterhub.log" "http://127.0.0.1:$port/hub/api/users/bench" \
        -H "Authorization: token $token"
    log "JupyterHub $jh_version ready on 127.0.0.1:$port (JupyterLab $lab_version)"
    SIDES+=("\"jupyterhub\": {\"url\": \"http://127.0.0.1:$port\", \"token\": \"$token\", \"user\": \"bench\"}")
}

# ------------------------------------------------------------------ (b) Enclave

start_enclave_side() {
    local work="$WORK/enclave" pypi_port admin_password user_password build_s template
    mkdir -p "$work"
    if [[ ${SKIP_BUILD:-0} == 1 ]]; then
        log "SKIP_BUILD=1: using $ENCLAVE_BIN"
    else
        need cargo "build as your user first and rerun with SKIP_BUILD=1, or keep PATH under sudo"
        log "cargo build --release -p enclave"
        (cd "$REPO_DIR" && cargo build --release -p enclave) >&2
    fi
    [[ -x $ENCLAVE_BIN ]] || die "$ENCLAVE_BIN is missing"
    need pypi-server "scripts/test.sh installs it (pip install pypiserver)"
    need runc "apt-get install runc"
    command -v uv >/dev/null 2>&1 || log "warning: uv is not on PATH (the default installer)"

    pypi_port=$PYPI_PORT
    if ! "$SYS_PYTHON" -c 'import socket, sys; socket.create_server(("127.0.0.1", int(sys.argv[1])))' \
        "$pypi_port" 2>/dev/null; then
        pypi_port=$(helper free-port)
        log "port $PYPI_PORT is taken: pypi-server on $pypi_port (the environment will be built again)"
    fi
    start_bg "$work/pypi-server.log" pypi-server run -i 127.0.0.1 -p "$pypi_port" \
        --disable-fallback --backend simple-dir "$WHEELS"
    wait_http "$BG_PID" 30 "$work/pypi-server.log" "http://127.0.0.1:$pypi_port/simple/"

    mkdir -p "$ENVS_DIR"
    # common.sh cleared every ENCLAVE_* variable: set only these (read by `enclave serve`).
    export ENCLAVE_NOTEBOOKS_INDEX_URL="http://127.0.0.1:$pypi_port/simple/"
    export ENCLAVE_NOTEBOOKS_ENVS_DIR="$ENVS_DIR"
    export ENCLAVE_NOTEBOOKS_IDLE_TIMEOUT=off
    admin_password="bench-$(helper token | cut -c1-24)"
    user_password="bench-$(helper token | cut -c1-24)"
    start_enclave "$work" admin "$admin_password"
    helper meta "$RESULTS_TMP" enclave_version "$("$ENCLAVE_BIN" --version 2>/dev/null || echo '?')"

    template=$("$SYS_PYTHON" -c 'import json, sys
print(json.dumps({"python": "3.11", "packages": sys.argv[1].split(),
                  "presets": [{"name": "small", "cpus": "1", "memory": "1G"}]}))' "$LAB_PINS")
    log "Enclave: defining the lab environment ($LAB_PINS) and waiting for its build"
    if ! build_s=$(nbstart enclave-setup "$ENCLAVE_URL" "$ENCLAVE_DATA/tls/cert.pem" admin \
        "$admin_password" nbbench "$user_password" bench "$template" "$ENV_BUILD_TIMEOUT" \
        "$work/user.token"); then
        tail -n 40 "$work/enclave.log" >&2
        die "the Enclave setup failed (server log above)"
    fi
    helper meta "$RESULTS_TMP" enclave_env_build_s "$build_s"
    log "Enclave: environment ready after ${build_s}s (about 0 when an earlier build of the same fingerprint is reused)"
    SIDES+=("\"enclave\": {\"url\": \"$ENCLAVE_URL\", \"cafile\": \"$ENCLAVE_DATA/tls/cert.pem\", \"token\": \"$(cat "$work/user.token")\", \"project\": \"bench\"}")
}

# ------------------------------------------------------------------ the runs

SIDES=()
JH_PGID=''
ENCLAVE_PGID=''
want jupyterhub && start_jupyterhub
want enclave && start_enclave_side
((${#SIDES[@]})) || die "ONLY names no side (jupyterhub, enclave)"
(
    umask 077 # it holds the tokens
    {
        printf '{"runs": %d, "warmup": %d, "timeout": %d' "$RUNS" "$WARMUP_RUNS" "$START_TIMEOUT"
        printf ', %s' "${SIDES[@]}"
        printf '}\n'
    } >"$WORK/sides.json"
)
log "$WARMUP_RUNS warm-up + $RUNS measured starts per side, alternating: $ONLY"
if ! nbstart run "$RESULTS_TMP" "$WORK/sides.json"; then
    [[ -z $JH_PGID ]] || { log "JupyterHub log:"; tail -n 30 "$WORK/jupyterhub/jupyterhub.log" >&2; }
    [[ -z $ENCLAVE_PGID ]] || { log "Enclave log:"; tail -n 30 "$WORK/enclave/enclave.log" >&2; }
    die "the runs failed (logs above)"
fi
[[ -z $ENCLAVE_PGID ]] || helper log-errors "$RESULTS_TMP" enclave "$WORK/enclave/enclave.log"
[[ -z $JH_PGID ]] || stop_server "$JH_PGID"
[[ -z $ENCLAVE_PGID ]] || stop_server "$ENCLAVE_PGID"

nbstart report "$RESULTS_TMP"
cp "$RESULTS_TMP" "$RESULTS"
log "results saved to $RESULTS"
