#!/usr/bin/env python3
"""Helpers for the shell benchmarks in this directory (standard library only).

Subcommands:
  free-port                      print a free TCP port on 127.0.0.1
  token                          print a random 64-hex-digit secret
  json-field KEY                 print KEY of the JSON object on stdin
  json-count KEY                 print len() of the list KEY of the JSON object on stdin
  cpu PGID                       print "<group CPU s> <machine busy CPU s>" (cumulative)
  alive PGID                     exit 0 if a live (non-zombie) process is in group PGID
  rusage OUT -- CMD...           run CMD, write "<CPU s (user+sys)> <wall s>" to OUT
  wrk-parse FILE                 print wrk output FILE (with --latency) as JSON
  record OUT NAME WRK CPU0 CPU1 RUSAGE DURATION
                                 add one wrk run to the JSON file OUT (created if absent)
  log-errors OUT NAME LOGFILE    count the ERROR lines of a server log into run NAME of OUT
  meta OUT KEY VALUE             set a top-level string field of the JSON file OUT
  meta-json OUT KEY JSON         set a top-level field of the JSON file OUT to a JSON value
  api-report OUT                 print the API table and ratios; add ratios to OUT
  login-report OUT               print the login table and ratio; add it to OUT
  argon2-rate SECONDS PROCS      bare argon2id verifications/s (argon2-cffi, PROCS processes)
"""

import json
import multiprocessing
import os
import re
import secrets
import socket
import subprocess
import sys
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")

# Targets (ratios) checked by the reports.
TARGET_VS_JUPYTERHUB = 20.0
TARGET_VS_BARE = 0.5
TARGET_LOGIN_VS_ARGON2 = 0.9

# Argon2id parameters of Enclave's password hashes (enclave-app/src/passwords.rs).
ARGON2_MEMORY_KIB = 19456
ARGON2_TIME_COST = 2
ARGON2_PARALLELISM = 1


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def group_members(pgid):
    """(state, utime + stime ticks) of each process in process group PGID."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                stat = f.read()
        except OSError:
            continue
        # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
        fields = stat[stat.rfind(")") + 2:].split()
        # fields[0] is field 3 (state); pgrp is field 5, utime 14, stime 15.
        if int(fields[2]) == pgid:
            members.append((fields[0], int(fields[11]) + int(fields[12])))
    return members


def group_cpu_seconds(pgid):
    """CPU seconds (user + system, all threads) of the live processes in process group PGID."""
    return sum(ticks for _, ticks in group_members(pgid)) / CLK_TCK


def machine_busy_seconds():
    """CPU seconds all cores spent not idle since boot (from /proc/stat)."""
    with open("/proc/stat", encoding="ascii") as f:
        parts = f.readline().split()[1:]
    values = [int(v) for v in parts]
    # user nice system idle iowait irq softirq steal [guest guest_nice: included in user/nice]
    busy = sum(values[:8]) - values[3] - values[4]
    return busy / CLK_TCK


def to_ms(value):
    m = re.fullmatch(r"([0-9.]+)(us|ms|s|m)", value)
    if not m:
        raise ValueError(f"unknown latency value {value!r}")
    number, unit = float(m.group(1)), m.group(2)
    return number * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def to_bytes(value):
    m = re.fullmatch(r"([0-9.]+)([KMGT]?B)", value)
    if not m:
        raise ValueError(f"unknown size {value!r}")
    scale = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}[m.group(2)]
    return float(m.group(1)) * scale


def wrk_parse(path):
    """Requests/s, p50/p99 latency (ms), errors and bytes per response of one wrk run."""
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    out = {"rps": None, "p50_ms": None, "p99_ms": None, "requests": None,
           "non_2xx_3xx": 0, "socket_errors": 0, "bytes_per_response": None}
    for line in text.splitlines():
        words = line.split()
        if line.startswith("Requests/sec:"):
            out["rps"] = float(words[1])
        elif len(words) == 2 and words[0] == "50%":
            out["p50_ms"] = round(to_ms(words[1]), 3)
        elif len(words) == 2 and words[0] == "99%":
            out["p99_ms"] = round(to_ms(words[1]), 3)
        elif "requests in" in line and "read" in line:
            out["requests"] = int(words[0])
            out["_read_bytes"] = to_bytes(words[-2])
        elif line.strip().startswith("Non-2xx or 3xx responses:"):
            out["non_2xx_3xx"] = int(words[-1])
        elif line.strip().startswith("Socket errors:"):
            nums = [int(n) for n in re.findall(r"\d+", line)]
            out["socket_errors"] = sum(nums)
    if out["rps"] is None or out["p99_ms"] is None:
        raise SystemExit(f"error: cannot parse the wrk output in {path}:\n{text}")
    if out["requests"]:
        out["bytes_per_response"] = round(out.pop("_read_bytes") / out["requests"])
    out.pop("_read_bytes", None)
    return out


def load(path):
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    return {}


def save(path, data):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def record(out, name, wrk_file, cpu0, cpu1, rusage_file, duration):
    data = load(out)
    run = wrk_parse(wrk_file)
    g0, m0 = (float(v) for v in cpu0.split())
    g1, m1 = (float(v) for v in cpu1.split())
    with open(rusage_file, encoding="ascii") as f:
        wrk_cpu, wall = (float(v) for v in f.read().split())
    # The CPU snapshots are taken just around the wrk process: use its wall time.
    secs = wall if wall > 0 else float(duration)
    run["server_cores"] = round((g1 - g0) / secs, 2)
    run["wrk_cores"] = round(wrk_cpu / secs, 2)
    run["machine_busy_cores"] = round((m1 - m0) / secs, 2)
    run["other_cores"] = round(max(0.0, run["machine_busy_cores"] - run["server_cores"]
                                   - run["wrk_cores"]), 2)
    data.setdefault("runs", {})[name] = run
    save(out, data)


def log_errors(out, name, logfile):
    data = load(out)
    with open(logfile, encoding="utf-8", errors="replace") as f:
        errors = [line.rstrip("\n") for line in f if " ERROR " in line]
    run = data.setdefault("runs", {}).setdefault(name, {})
    run["server_log_errors"] = len(errors)
    if errors:
        run["server_log_first_error"] = errors[0][:300]
    save(out, data)


def ratio(a, b):
    return round(a / b, 3) if b else None


def verdict(value, target):
    if value is None:
        return "n/a"
    return "PASS" if value >= target else "MISS"


def print_runs(data, names, labels):
    print(f"{'server':<44} {'req/s':>10} {'p99 ms':>9} {'B/resp':>7} "
          f"{'srv cores':>9} {'srv us/req':>10} {'wrk cores':>9} {'other':>6} {'errors':>7}")
    for name in names:
        r = data["runs"][name]
        errors = r["non_2xx_3xx"] + r["socket_errors"]
        us = r["server_cores"] / r["rps"] * 1e6 if r["rps"] else 0.0
        r["server_cpu_us_per_request"] = round(us, 1)
        print(f"{labels[name]:<44} {r['rps']:>10.1f} {r['p99_ms']:>9.2f} "
              f"{r['bytes_per_response'] or 0:>7} {r['server_cores']:>9.2f} {us:>10.1f} "
              f"{r['wrk_cores']:>9.2f} {r['other_cores']:>6.2f} {errors:>7}")
    for name in names:
        r = data["runs"][name]
        if r.get("server_log_errors"):
            print(f"WARNING: {name}: {r['server_log_errors']} ERROR lines in the server log,"
                  f" the first: {r['server_log_first_error']}")
        if r["requests"] == 0:
            print(f"WARNING: {name}: no request completed during the run")
        if r["non_2xx_3xx"] or r["socket_errors"]:
            print(f"WARNING: {name}: {r['non_2xx_3xx']} non-2xx/3xx responses and "
                  f"{r['socket_errors']} socket errors: its rate is not a rate of successes")


def api_report(out):
    data = load(out)
    runs = data.get("runs", {})
    labels = {
        "enclave": "Enclave  GET /api/v1/projects (HTTPS)",
        "bare": "hello_tls GET / (HTTPS, bare anchor)",
        "jupyterhub": "JupyterHub GET /hub/api/users (plain HTTP)",
    }
    names = [n for n in ("enclave", "bare", "jupyterhub") if n in runs]
    print_runs(data, names, labels)
    e = runs.get("enclave", {}).get("rps")
    ratios = {
        "enclave_vs_jupyterhub": ratio(e, runs.get("jupyterhub", {}).get("rps")) if e else None,
        "enclave_vs_bare": ratio(e, runs.get("bare", {}).get("rps")) if e else None,
    }
    data["ratios"] = ratios
    data["targets"] = {"enclave_vs_jupyterhub": TARGET_VS_JUPYTERHUB,
                       "enclave_vs_bare": TARGET_VS_BARE}
    save(out, data)
    print()
    print("JupyterHub is measured over plain HTTP through its proxy (its default deployment);"
          " Enclave and hello_tls over HTTPS. Plain HTTP favours JupyterHub.")
    print("srv cores / wrk cores / other: CPU cores used on average by the server (whole process"
          " group), by wrk, and by everything else on the machine during the run;"
          " srv us/req: server CPU time per request.")
    print()
    for key, target, label in (
        ("enclave_vs_jupyterhub", TARGET_VS_JUPYTERHUB, "Enclave / JupyterHub"),
        ("enclave_vs_bare", TARGET_VS_BARE, "Enclave / bare hello_tls"),
    ):
        value = ratios[key]
        shown = f"{value:.3f}x" if value is not None else "n/a"
        print(f"{label:<26} {shown:>10}   target >= {target}x   {verdict(value, target)}")


def login_report(out):
    data = load(out)
    runs = data["runs"]
    labels = {"enclave_login": "Enclave POST /api/v1/auth/session (HTTPS)"}
    print_runs(data, ["enclave_login"], labels)
    anchor = data["argon2_anchor"]
    login = runs["enclave_login"]
    print()
    print(f"{'bare argon2id verify (argon2-cffi)':<44} {anchor['rate']:>10.1f} /s"
          f"   ({anchor['processes']} processes, m={ARGON2_MEMORY_KIB} KiB,"
          f" t={ARGON2_TIME_COST}, p={ARGON2_PARALLELISM}: {anchor['verifications']}"
          f" in {anchor['seconds']:.1f} s; {anchor['anchor_cores']:.2f} cores,"
          f" machine busy {anchor['machine_busy_cores']:.2f})")
    server_ms = login["server_cores"] / login["rps"] * 1000 if login["rps"] else None
    login["server_cpu_ms_per_request"] = round(server_ms, 2) if server_ms else None
    anchor_ms = anchor.get("cpu_ms_per_verify")
    cpu_ratio = round(anchor_ms / server_ms, 3) if server_ms and anchor_ms else None
    print()
    print("CPU time per operation (less sensitive to other load on the machine):")
    if server_ms:
        print(f"  Enclave server, per login (hash + TLS + HTTP + session): {server_ms:7.2f} ms")
    if anchor_ms:
        print(f"  argon2-cffi, per bare verification:                      {anchor_ms:7.2f} ms")
    if cpu_ratio:
        print(f"  bare CPU per verification / Enclave CPU per login:       {cpu_ratio:7.3f}")
    value = ratio(runs["enclave_login"]["rps"], anchor["rate"])
    data["ratios"] = {"enclave_login_vs_argon2": value,
                      "cpu_per_op_argon2_vs_enclave_login": cpu_ratio}
    data["targets"] = {"enclave_login_vs_argon2": TARGET_LOGIN_VS_ARGON2}
    save(out, data)
    print()
    shown = f"{value:.3f}x" if value is not None else "n/a"
    print(f"{'Enclave logins / bare argon2id':<32} {shown:>10}   target >= "
          f"{TARGET_LOGIN_VS_ARGON2}x   {verdict(value, TARGET_LOGIN_VS_ARGON2)}")


def _argon2_worker(args):
    phc, password, deadline = args
    from argon2 import PasswordHasher  # pylint: disable=import-outside-toplevel

    hasher = PasswordHasher(time_cost=ARGON2_TIME_COST, memory_cost=ARGON2_MEMORY_KIB,
                            parallelism=ARGON2_PARALLELISM)
    count = 0
    cpu0 = time.process_time()
    while time.monotonic() < deadline:
        hasher.verify(phc, password)
        count += 1
    return count, time.process_time() - cpu0


def argon2_rate(seconds, procs):
    from argon2 import PasswordHasher  # pylint: disable=import-outside-toplevel

    hasher = PasswordHasher(time_cost=ARGON2_TIME_COST, memory_cost=ARGON2_MEMORY_KIB,
                            parallelism=ARGON2_PARALLELISM)
    password = "bench-" + secrets.token_hex(8)
    phc = hasher.hash(password)
    with multiprocessing.Pool(procs) as pool:
        # Warm the workers (import, first allocation) before the timed run.
        pool.map(_argon2_worker, [(phc, password, 0.0)] * procs)
        busy0 = machine_busy_seconds()
        start = time.monotonic()
        deadline = start + seconds
        results = pool.map(_argon2_worker, [(phc, password, deadline)] * procs)
        elapsed = time.monotonic() - start
        busy1 = machine_busy_seconds()
    total = sum(n for n, _ in results)
    cpu = sum(c for _, c in results)
    return {"rate": round(total / elapsed, 2), "verifications": total,
            "seconds": round(elapsed, 3), "processes": procs,
            "anchor_cores": round(cpu / elapsed, 2),
            "machine_busy_cores": round((busy1 - busy0) / elapsed, 2),
            "cpu_ms_per_verify": round(cpu / total * 1000, 2) if total else None,
            "phc_prefix": phc[:31]}


def main(argv):
    if not argv:
        raise SystemExit(__doc__)
    cmd, args = argv[0], argv[1:]
    if cmd == "free-port":
        print(free_port())
    elif cmd == "token":
        print(secrets.token_hex(32))
    elif cmd == "json-field":
        print(json.load(sys.stdin)[args[0]])
    elif cmd == "json-count":
        print(len(json.load(sys.stdin)[args[0]]))
    elif cmd == "cpu":
        print(f"{group_cpu_seconds(int(args[0])):.2f} {machine_busy_seconds():.2f}")
    elif cmd == "alive":
        return 0 if any(state != "Z" for state, _ in group_members(int(args[0]))) else 1
    elif cmd == "rusage":
        out, rest = args[0], args[1:]
        if rest and rest[0] == "--":
            rest = rest[1:]
        start = time.monotonic()
        rc = subprocess.call(rest)
        wall = time.monotonic() - start
        import resource  # pylint: disable=import-outside-toplevel

        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        with open(out, "w", encoding="ascii") as f:
            f.write(f"{usage.ru_utime + usage.ru_stime:.3f} {wall:.3f}\n")
        return rc
    elif cmd == "wrk-parse":
        print(json.dumps(wrk_parse(args[0])))
    elif cmd == "record":
        record(*args)
    elif cmd == "log-errors":
        log_errors(*args)
    elif cmd == "meta":
        data = load(args[0])
        data[args[1]] = args[2]
        save(args[0], data)
    elif cmd == "meta-json":
        data = load(args[0])
        data[args[1]] = json.loads(args[2])
        save(args[0], data)
    elif cmd == "api-report":
        api_report(args[0])
    elif cmd == "login-report":
        login_report(args[0])
    elif cmd == "argon2-rate":
        print(json.dumps(argon2_rate(float(args[0]), int(args[1]))))
    else:
        raise SystemExit(f"unknown subcommand {cmd}\n{__doc__}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
