# shellcheck shell=bash
# Shared helpers for bench/api.sh and bench/login.sh. Sourced, not run.
#
# Every server is started in its own process group (setsid) and every group and temporary
# directory is registered, so that the EXIT trap stops exactly the processes these scripts
# started and removes exactly the directories they created.

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$BENCH_DIR/.." && pwd)
VENV="$BENCH_DIR/.venv"
NODE_PREFIX="$BENCH_DIR/.node"
# shellcheck disable=SC2034 # used by the scripts that source this file
RESULTS_DIR="$BENCH_DIR/results"
TARGET_DIR=${CARGO_TARGET_DIR:-$REPO_DIR/target}
ENCLAVE_BIN="$TARGET_DIR/release/enclave"
HELLO_BIN="$TARGET_DIR/release/examples/hello_tls"
SYS_PYTHON=${PYTHON:-python3}
NPROC=$(nproc)

# Knobs shared by the benchmarks (durations in whole seconds).
DURATION=${DURATION:-15}
WARMUP=${WARMUP:-2}
THREADS=${THREADS:-2}

# Only loopback traffic: never send the benchmark requests through a configured proxy.
export NO_PROXY='*' no_proxy='*'
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY ALL_PROXY all_proxy

# Enclave reads ENCLAVE_* settings from the environment: run it with its defaults only.
while read -r var; do
    unset "$var"
done < <(compgen -e | grep '^ENCLAVE_' || true)

BENCH_PGIDS=()
BENCH_TMPDIRS=()
BG_PID=

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

# helper SUBCOMMAND ARGS...: the standard-library helpers in lib.py.
helper() { "$SYS_PYTHON" "$BENCH_DIR/lib.py" "$@"; }

# new_tmpdir VAR: create a temporary directory, removed on exit, and store its path in VAR.
new_tmpdir() {
    local dir
    dir=$(mktemp -d "${TMPDIR:-/tmp}/enclave-bench.XXXXXX")
    BENCH_TMPDIRS+=("$dir")
    printf -v "$1" '%s' "$dir"
}

# stop_group PGID: SIGTERM the process group, SIGKILL it after 10 s.
stop_group() {
    local pgid=$1 i
    kill -TERM -- "-$pgid" 2>/dev/null || return 0
    for ((i = 0; i < 100; i++)); do
        helper alive "$pgid" || break
        sleep 0.1
    done
    if helper alive "$pgid"; then
        log "process group $pgid did not stop on SIGTERM: SIGKILL"
        kill -KILL -- "-$pgid" 2>/dev/null || true
    fi
    wait "$pgid" 2>/dev/null || true
}

# stop_server PGID: stop a group started by start_bg and forget it.
stop_server() {
    stop_group "$1"
    forget_pgid "$1"
}

# forget_pgid PGID: drop PGID from the groups the EXIT trap stops.
forget_pgid() {
    local pgid=$1 kept=() p
    for p in ${BENCH_PGIDS[@]+"${BENCH_PGIDS[@]}"}; do
        [[ $p == "$pgid" ]] || kept+=("$p")
    done
    BENCH_PGIDS=(${kept[@]+"${kept[@]}"})
}

bench_cleanup() {
    local rc=$? pgid dir
    trap - EXIT INT TERM
    for pgid in ${BENCH_PGIDS[@]+"${BENCH_PGIDS[@]}"}; do
        stop_group "$pgid"
    done
    for dir in ${BENCH_TMPDIRS[@]+"${BENCH_TMPDIRS[@]}"}; do
        rm -rf -- "$dir"
    done
    exit "$rc"
}
trap bench_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start_bg LOGFILE CMD ARGS...: run CMD in a new process group (its PGID is its PID, in BG_PID).
# In a script (no job control) a background child is not a group leader, so setsid does not
# fork: $! is the server itself and the leader of its new group.
start_bg() {
    local logfile=$1
    shift
    setsid "$@" >"$logfile" 2>&1 </dev/null &
    BG_PID=$!
    BENCH_PGIDS+=("$BG_PID")
}

# run_fg OUTFILE CMD ARGS...: run CMD in its own process group and wait for it. Waiting on a
# background job (not a foreground one) lets INT/TERM reach the traps at once, and the group
# is stopped by the EXIT trap if the script is interrupted.
run_fg() {
    local outfile=$1 pid rc=0
    shift
    start_bg "$outfile" "$@"
    pid=$BG_PID
    wait "$pid" || rc=$?
    forget_pgid "$pid"
    return "$rc"
}

# wait_http PGID TIMEOUT_S LOGFILE URL [CURL ARGS...]: poll URL until it answers 2xx.
wait_http() {
    local pgid=$1 timeout=$2 logfile=$3 url=$4
    shift 4
    local deadline=$((SECONDS + timeout))
    until curl -ksf -o /dev/null --max-time 2 "$@" "$url"; do
        if ! helper alive "$pgid"; then
            cat "$logfile" >&2 || true
            die "the server exited before $url answered (log above)"
        fi
        if ((SECONDS >= deadline)); then
            cat "$logfile" >&2 || true
            die "$url did not answer within ${timeout}s (log above)"
        fi
        sleep 0.2
    done
}

need() {
    command -v "$1" >/dev/null 2>&1 || die "$1 is required${2:+: $2}"
}

apt_install() {
    [[ $EUID -eq 0 ]] || die "$* missing: run as root (sudo bash $0) to install it with apt-get, or install it yourself"
    log "installing $* with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q "$@" >&2 || { apt-get update -q >&2 && apt-get install -y -q "$@" >&2; }
}

ensure_wrk() {
    command -v wrk >/dev/null 2>&1 || apt_install wrk
    need wrk
}

# ensure_venv IMPORT PIP_SPEC [IMPORT PIP_SPEC ...]: a venv in bench/.venv with these packages.
ensure_venv() {
    if [[ ! -x $VENV/bin/python ]]; then
        log "creating the virtual environment $VENV"
        "$SYS_PYTHON" -m venv "$VENV" || die "cannot create $VENV (is python3-venv installed?)"
    fi
    local missing=()
    while (($# >= 2)); do
        "$VENV/bin/python" -c "import $1" 2>/dev/null || missing+=("$2")
        shift 2
    done
    if ((${#missing[@]})); then
        log "pip install ${missing[*]} into $VENV"
        "$VENV/bin/python" -m pip install -q --disable-pip-version-check "${missing[@]}" >&2
    fi
}

ensure_proxy() {
    if [[ -x $NODE_PREFIX/node_modules/.bin/configurable-http-proxy ]]; then
        return 0
    fi
    command -v npm >/dev/null 2>&1 || apt_install nodejs npm
    log "npm install configurable-http-proxy into $NODE_PREFIX"
    npm install --prefix "$NODE_PREFIX" --no-audit --no-fund --loglevel=error \
        configurable-http-proxy >&2
}

build_release() {
    if [[ ${SKIP_BUILD:-0} == 1 ]]; then
        log "SKIP_BUILD=1: using the binaries in $TARGET_DIR/release"
    else
        need cargo "build as your user first and rerun with SKIP_BUILD=1, or keep PATH under sudo"
        log "cargo build --release (enclave, hello_tls)"
        # `--examples` alone would build only the examples: `--bins` adds the enclave binary.
        (cd "$REPO_DIR" && cargo build --release -p enclave -p enclave-listener --bins --examples) >&2
    fi
    [[ -x $ENCLAVE_BIN ]] || die "$ENCLAVE_BIN is missing"
    [[ -x $HELLO_BIN ]] || die "$HELLO_BIN is missing"
}

# start_enclave WORKDIR USERNAME PASSWORD: bootstrap an admin in a fresh data directory under
# WORKDIR and start `enclave serve` on a free port. Sets ENCLAVE_URL, ENCLAVE_PGID, ENCLAVE_DATA.
start_enclave() {
    local work=$1 user=$2 password=$3 port
    ENCLAVE_DATA="$work/data"
    (umask 077 && printf '%s\n' "$password" >"$work/password")
    if ! "$ENCLAVE_BIN" admin bootstrap --data-dir "$ENCLAVE_DATA" --username "$user" \
        --password-file "$work/password" >"$work/bootstrap.log" 2>&1; then
        cat "$work/bootstrap.log" >&2
        die "enclave admin bootstrap failed"
    fi
    port=$(helper free-port)
    ENCLAVE_URL="https://127.0.0.1:$port"
    start_bg "$work/enclave.log" "$ENCLAVE_BIN" serve --data-dir "$ENCLAVE_DATA" \
        --listen "127.0.0.1:$port"
    ENCLAVE_PGID=$BG_PID
    wait_http "$ENCLAVE_PGID" 60 "$work/enclave.log" "$ENCLAVE_URL/readyz"
    log "Enclave ready at $ENCLAVE_URL (data $ENCLAVE_DATA)"
}

# run_wrk NAME PGID RESULTS WORKDIR URL [WRK ARGS...]: a warm-up run, then the measured run
# with --latency; records req/s, latency and the CPU split into the JSON file RESULTS.
run_wrk() {
    local name=$1 pgid=$2 results=$3 work=$4 url=$5
    shift 5
    local threads=$THREADS
    ((threads <= CONNECTIONS)) || threads=$CONNECTIONS
    local args=(-t"$threads" -c"$CONNECTIONS" --latency "$@" "$url")
    if ((WARMUP > 0)); then
        log "$name: warm-up ${WARMUP}s"
        run_fg "$work/$name.warmup" wrk -d"${WARMUP}s" "${args[@]}" ||
            { cat "$work/$name.warmup" >&2; die "wrk failed (warm-up of $name)"; }
    fi
    local shown
    shown=$(printf '%s ' "$@" | sed -E 's/(Bearer|token) [^ ]+/\1 <secret>/g')
    log "$name: wrk -t$threads -c$CONNECTIONS -d${DURATION}s --latency $shown$url"
    local cpu0 cpu1
    cpu0=$(helper cpu "$pgid")
    run_fg "$work/$name.wrk" "$SYS_PYTHON" "$BENCH_DIR/lib.py" rusage "$work/$name.rusage" -- \
        wrk -d"${DURATION}s" "${args[@]}" || { cat "$work/$name.wrk" >&2; die "wrk failed ($name)"; }
    cpu1=$(helper cpu "$pgid")
    sed 's/^/    /' "$work/$name.wrk" >&2
    helper record "$results" "$name" "$work/$name.wrk" "$cpu0" "$cpu1" \
        "$work/$name.rusage" "$DURATION"
}

# machine_meta RESULTS: date, machine and versions into the JSON file RESULTS.
machine_meta() {
    local results=$1 model commit
    model=$(awk -F': *' '/^model name/ {print $2; exit}' /proc/cpuinfo)
    commit=$(git -C "$REPO_DIR" rev-parse --short HEAD 2>/dev/null || echo unknown)
    if [[ -n $(git -C "$REPO_DIR" status --porcelain -- crates 2>/dev/null) ]]; then
        commit="$commit+uncommitted"
    fi
    helper meta "$results" date "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    helper meta "$results" host_nproc "$NPROC"
    helper meta "$results" host_cpu "${model:-unknown}"
    helper meta "$results" host_kernel "$(uname -r)"
    helper meta "$results" git_commit "$commit"
    helper meta "$results" wrk_version "$(wrk -v 2>&1 | head -n1 || true)"
    helper meta-json "$results" settings \
        "{\"duration_s\": $DURATION, \"warmup_s\": $WARMUP, \"threads\": $THREADS, \"connections\": $CONNECTIONS}"
}

check_uint() {
    if ! [[ $2 =~ ^[1-9][0-9]*$ ]]; then
        die "$1 must be a positive whole number (got '$2')"
    fi
}
