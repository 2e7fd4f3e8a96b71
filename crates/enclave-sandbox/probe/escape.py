#!/usr/bin/env python3
"""Escape probe: runs INSIDE an Enclave sandbox and tries things that must all fail.

Usage:
    python3 escape.py local [--forbid-read PATH]... [--outside-pid N] [--abstract-socket NAME]
    python3 escape.py net HOST:PORT... [--dns-name NAME]
    python3 escape.py forkbomb [--seconds S]
    python3 escape.py memhog [--max-mib N]

Each check prints one JSON line: {"check": NAME, "blocked": BOOL, "detail": TEXT}.
A check is "blocked" only when the attempt failed the way a sandbox makes it fail (EPERM,
EACCES, EROFS, ENETUNREACH, ...). Anything else -- the attempt succeeded, failed with an
unexpected errno, or the probe itself raised -- counts as NOT blocked, so a bug in the probe
shows up as a failure, never as a pass. The last line is a summary; the exit code is 0 only
when every check was blocked (and at least one ran), 1 otherwise, 2 on bad usage.

Only the standard library and ctypes. Nothing here writes bytes into a kernel knob: write
checks only open files for writing (and close them at once); the hostname and clock checks
set the values they already have; reboot uses an invalid command, which the kernel rejects
after the permission check. Network checks only contact the targets given on the command
line (and the DNS check resolves a name under the reserved `.invalid` TLD).
"""

import ctypes
import ctypes.util
import errno
import json
import os
import platform
import signal
import socket
import stat
import struct
import subprocess
import sys
import time

RESULTS = []

# errnos that mean "the sandbox refused this".
DENIED = {errno.EPERM, errno.EACCES}
DENIED_FS = DENIED | {errno.EROFS, errno.ENOENT}

ARCH = platform.machine()

# System call numbers (x86_64 and aarch64).
SYSCALLS = {
    "x86_64": {
        "mount": 165, "umount2": 166, "pivot_root": 155, "chroot": 161,
        "unshare": 272, "setns": 308, "ptrace": 101, "keyctl": 250,
        "add_key": 248, "bpf": 321, "perf_event_open": 298, "userfaultfd": 323,
        "kexec_load": 246, "kexec_file_load": 320, "init_module": 175,
        "finit_module": 313, "delete_module": 176, "open_by_handle_at": 304,
        "sethostname": 170, "clock_settime": 227, "settimeofday": 164,
        "reboot": 169, "iopl": 172, "ioperm": 173, "io_uring_setup": 425,
        "syslog": 103, "clone": 56, "clone3": 435, "capset": 126,
        "process_vm_readv": 310, "swapon": 167, "acct": 163, "fsopen": 430,
        "open_tree": 428, "mknodat": 259,
    },
    "aarch64": {
        "mount": 40, "umount2": 39, "pivot_root": 41, "chroot": 51,
        "unshare": 97, "setns": 268, "ptrace": 117, "keyctl": 219,
        "add_key": 217, "bpf": 280, "perf_event_open": 241, "userfaultfd": 282,
        "kexec_load": 104, "kexec_file_load": 294, "init_module": 105,
        "finit_module": 273, "delete_module": 106, "open_by_handle_at": 265,
        "sethostname": 161, "clock_settime": 112, "settimeofday": 170,
        "reboot": 142, "io_uring_setup": 425, "syslog": 116, "clone": 220,
        "clone3": 435, "capset": 91, "process_vm_readv": 270, "swapon": 224,
        "acct": 89, "fsopen": 430, "open_tree": 428, "mknodat": 33,
    },
}

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_BIND = 0x1000
MNT_DETACH = 2
PTRACE_ATTACH = 16
AT_FDCWD = -100

LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
LIBC.syscall.restype = ctypes.c_long


def report(check, blocked, detail):
    RESULTS.append((check, bool(blocked)))
    print(json.dumps({"check": check, "blocked": bool(blocked), "detail": str(detail)}), flush=True)


def run_check(name, fn, *args):
    """Runs one check; a Python exception inside it is a probe bug and counts as not blocked."""
    try:
        blocked, detail = fn(*args)
    except Exception as e:  # noqa: BLE001 -- any error here is a failure of the probe
        blocked, detail = False, "probe error: %s: %s" % (type(e).__name__, e)
    report(name, blocked, detail)


def errname(n):
    return errno.errorcode.get(n, str(n))


def syscall(name, *args):
    """Calls a system call by name; returns (result, errno)."""
    table = SYSCALLS.get(ARCH)
    if table is None:
        raise RuntimeError("no system call table for %s" % ARCH)
    nr = table[name]
    cargs = []
    for a in args:
        if isinstance(a, int):
            cargs.append(ctypes.c_long(a))
        else:
            cargs.append(a)
    ctypes.set_errno(0)
    r = LIBC.syscall(ctypes.c_long(nr), *cargs)
    return r, ctypes.get_errno()


def expect_denied(name, *args, ok=None):
    """The system call must fail with one of `ok` (default EPERM/EACCES)."""
    ok = DENIED if ok is None else ok
    r, e = syscall(name, *args)
    if r != -1:
        return False, "%s succeeded (returned %d)" % (name, r)
    if e in ok:
        return True, "%s failed: %s" % (name, errname(e))
    return False, "%s failed with unexpected %s (not a refusal)" % (name, errname(e))


def cstr(s):
    return ctypes.c_char_p(s.encode())


def fork_syscall(name, *args):
    """For calls that create a process (clone): the child exits at once."""
    r, e = syscall(name, *args)
    if r == 0:
        os._exit(0)
    if r > 0:
        os.waitpid(r, 0)
        return False, "%s created process %d" % (name, r)
    if e in DENIED or (name == "clone3" and e == errno.ENOSYS):
        return True, "%s failed: %s" % (name, errname(e))
    return False, "%s failed with unexpected %s" % (name, errname(e))


# ---------------------------------------------------------------- local checks

def check_caps():
    status = open("/proc/self/status").read()
    fields = dict(
        line.split(":", 1) for line in status.splitlines() if ":" in line
    )
    bad = []
    for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        v = fields[k].strip()
        if int(v, 16) != 0:
            bad.append("%s=%s" % (k, v))
    if fields["NoNewPrivs"].strip() != "1":
        bad.append("NoNewPrivs=%s" % fields["NoNewPrivs"].strip())
    if fields["Seccomp"].strip() != "2":
        bad.append("Seccomp=%s" % fields["Seccomp"].strip())
    if bad:
        return False, "privileges present: " + ", ".join(bad)
    return True, "all capability sets empty, NoNewPrivs=1, Seccomp=2 (filter)"


def check_socket(family, typ, proto, what):
    try:
        s = socket.socket(family, typ, proto)
    except OSError as e:
        if e.errno in DENIED | {errno.EAFNOSUPPORT}:
            return True, "%s socket refused: %s" % (what, errname(e.errno))
        return False, "%s socket failed with unexpected %s" % (what, errname(e.errno))
    s.close()
    return False, "%s socket opened" % what


def scratch_dir(name):
    path = "/tmp/escape-probe-%d-%s" % (os.getpid(), name)
    os.makedirs(path, exist_ok=True)
    return path


def check_mount_tmpfs():
    target = scratch_dir("mnt")
    r = expect_denied("mount", cstr("none"), cstr(target), cstr("tmpfs"), 0, None)
    if not r[0]:
        syscall("umount2", cstr(target), MNT_DETACH)
    return r


def check_mount_bind():
    target = scratch_dir("bind")
    r = expect_denied("mount", cstr("/usr"), cstr(target), None, MS_BIND, None)
    if not r[0]:
        syscall("umount2", cstr(target), MNT_DETACH)
    return r


def check_umount(path):
    if not os.path.ismount(path):
        # Not a mount point here: umount2 would fail with EINVAL even if it were allowed.
        return False, "%s is not a mount point; the check cannot tell" % path
    return expect_denied("umount2", cstr(path), MNT_DETACH)


def check_pivot_root():
    new = scratch_dir("pivot")
    old = os.path.join(new, "old")
    os.makedirs(old, exist_ok=True)
    return expect_denied("pivot_root", cstr(new), cstr(old))


def check_unshare(flag):
    return expect_denied("unshare", flag)


def check_setns(ns):
    """setns into the sandbox's own namespaces (those of its pid 1; host processes are not
    visible to name theirs). Where setns is allowed, joining one's own mount namespace
    succeeds and joining one's own user namespace fails with EINVAL: only a refusal (seccomp,
    no capability) counts as blocked."""
    path = "/proc/self/ns/" + ns
    if os.path.exists("/proc/1/ns/" + ns):
        try:
            fd = os.open("/proc/1/ns/" + ns, os.O_RDONLY)
            path = "/proc/1/ns/" + ns
        except OSError:
            fd = os.open(path, os.O_RDONLY)
    else:
        fd = os.open(path, os.O_RDONLY)
    try:
        r, d = expect_denied("setns", fd, 0)
        return r, "%s (%s)" % (d, path)
    finally:
        os.close(fd)


def check_ptrace(pid):
    return expect_denied("ptrace", PTRACE_ATTACH, pid, 0, 0, ok=DENIED | {errno.ESRCH})


def check_kill_outside(pid):
    try:
        os.kill(pid, 0)
    except OSError as e:
        if e.errno in (errno.ESRCH, errno.EPERM):
            return True, "kill(%d, 0): %s" % (pid, errname(e.errno))
        raise
    return False, "kill(%d, 0) succeeded: the process is visible and signalable" % pid


def check_outside_visible(pid):
    if os.path.exists("/proc/%d" % pid):
        try:
            cmd = open("/proc/%d/cmdline" % pid, "rb").read().replace(b"\0", b" ")
        except OSError:
            cmd = b"?"
        return False, "/proc/%d exists (%r)" % (pid, cmd[:80])
    return True, "/proc/%d does not exist" % pid


def check_process_vm_readv(pid):
    buf = ctypes.create_string_buffer(8)
    local = struct.pack("PL", ctypes.addressof(buf), 8)
    remote = struct.pack("PL", 0x400000, 8)
    lbuf = ctypes.create_string_buffer(local)
    rbuf = ctypes.create_string_buffer(remote)
    return expect_denied("process_vm_readv", pid, lbuf, 1, rbuf, 1, 0, ok=DENIED | {errno.ESRCH})


def check_abstract_socket(name):
    """A host process listens on the abstract unix socket `name`; abstract sockets belong to
    the network namespace, so the sandbox must not reach it."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(2.0)
    try:
        s.connect("\0" + name)
    except OSError as e:
        if e.errno in {errno.ECONNREFUSED, errno.ENOENT} | DENIED:
            return True, "abstract socket @%s: %s" % (name, errname(e.errno))
        raise
    finally:
        s.close()
    return False, "connected to the host's abstract socket @%s" % name


def check_read_denied(path):
    try:
        os.lstat(path)
    except OSError as e:
        if e.errno == errno.ENOENT:
            return True, "%s does not exist here" % path
        if e.errno in DENIED:
            return True, "%s: %s" % (path, errname(e.errno))
        raise
    try:
        if os.path.isdir(path):
            names = os.listdir(path)
            return False, "%s listed: %d entries %r" % (path, len(names), names[:5])
        with open(path, "rb") as f:
            data = f.read(64)
        return False, "%s read: %d bytes" % (path, len(data))
    except OSError as e:
        if e.errno in DENIED_FS:
            return True, "%s: %s" % (path, errname(e.errno))
        raise


def check_open_write(path):
    """Opens for writing (no bytes written); must fail."""
    try:
        os.lstat(path)
    except OSError as e:
        if e.errno == errno.ENOENT:
            return True, "%s does not exist here" % path
        if e.errno in DENIED:
            return True, "%s: %s" % (path, errname(e.errno))
        raise
    try:
        fd = os.open(path, os.O_WRONLY)
    except OSError as e:
        if e.errno in DENIED_FS:
            return True, "%s: %s" % (path, errname(e.errno))
        raise
    os.close(fd)
    return False, "%s opened for writing" % path


def check_write_value(path, value):
    """Writes `value` (for files that open for writing but must refuse the write)."""
    try:
        with open(path, "w") as f:
            f.write(value)
    except OSError as e:
        if e.errno in DENIED_FS:
            return True, "writing %r to %s: %s" % (value, path, errname(e.errno))
        raise
    return False, "wrote %r to %s" % (value, path)


def check_create(dirpath):
    path = os.path.join(dirpath, ".escape-probe-%d" % os.getpid())
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as e:
        if e.errno in DENIED_FS:
            return True, "create in %s: %s" % (dirpath, errname(e.errno))
        raise
    os.close(fd)
    os.unlink(path)
    return False, "created %s" % path


def check_writable_tree(roots, limit=20000):
    """No file under `roots` may open for writing. Stops after `limit` files."""
    tried = 0
    opened = []
    for root in roots:
        if not os.path.isdir(root):
            continue
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            for name in filenames:
                p = os.path.join(dirpath, name)
                try:
                    st = os.lstat(p)
                except OSError:
                    continue
                if not stat.S_ISREG(st.st_mode):
                    continue
                tried += 1
                try:
                    fd = os.open(p, os.O_WRONLY | os.O_NONBLOCK)
                except OSError as e:
                    if e.errno in DENIED_FS | {errno.EINVAL, errno.EIO, errno.ENXIO,
                                               errno.EOPNOTSUPP, errno.EBUSY}:
                        continue
                    raise
                os.close(fd)
                opened.append(p)
                if tried >= limit:
                    break
            if tried >= limit:
                break
    if opened:
        return False, "%d of %d files writable, e.g. %s" % (len(opened), tried, opened[:5])
    return True, "none of %d files under %s opens for writing" % (tried, ", ".join(roots))


def mount_table():
    """(mount point, options) from /proc/self/mountinfo, longest first."""
    out = []
    for line in open("/proc/self/mountinfo"):
        parts = line.split()
        point = parts[4].replace("\\040", " ")
        opts = set(parts[5].split(","))
        out.append((point, opts))
    out.sort(key=lambda m: len(m[0]), reverse=True)
    return out


def mount_of(path, table):
    for point, opts in table:
        if path == point or path.startswith(point.rstrip("/") + "/"):
            return point, opts
    return "/", set()


def setuid_files():
    found = []
    for d in ("/usr/bin", "/usr/sbin", "/bin", "/sbin", "/usr/lib", "/usr/libexec"):
        if not os.path.isdir(d):
            continue
        for dirpath, _, files in os.walk(d):
            for f in files:
                p = os.path.join(dirpath, f)
                try:
                    st = os.lstat(p)
                except OSError:
                    continue
                if stat.S_ISREG(st.st_mode) and st.st_mode & (stat.S_ISUID | stat.S_ISGID):
                    found.append(p)
    return sorted(set(os.path.realpath(p) for p in found))


def check_setuid_mounts():
    files = setuid_files()
    if not files:
        return True, "no setuid/setgid files visible"
    table = mount_table()
    bad = [p for p in files if "nosuid" not in mount_of(p, table)[1]]
    if bad:
        return False, "setuid files on mounts without nosuid: %s" % bad[:5]
    return True, "%d setuid/setgid files, all on nosuid mounts" % len(files)


def status_of(pid):
    fields = {}
    for line in open("/proc/%d/status" % pid):
        k, _, v = line.partition(":")
        fields[k] = v.strip()
    return fields


def check_setuid_exec():
    """Runs setuid/setgid binaries and reads their credentials while they run: euid/egid and
    capabilities must be those of the probe (no_new_privs, nosuid, empty bounding set)."""
    me = status_of(os.getpid())
    my_uid, my_gid = me["Uid"].split(), me["Gid"].split()
    observed, gained = [], []
    for path in setuid_files()[:12]:
        name = os.path.basename(path)[:15]
        args = [path]
        if name == "ssh-agent":
            args = [path, "-D", "-a", "/tmp/escape-probe-agent-%d" % os.getpid()]
        p = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, cwd="/tmp")
        seen = None
        try:
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline and p.poll() is None:
                try:
                    st = status_of(p.pid)
                except OSError:
                    break
                if st.get("Name") == name:
                    seen = st
                    # Look a little longer: credentials are set during exec.
                    time.sleep(0.01)
                    try:
                        seen = status_of(p.pid)
                    except OSError:
                        pass
                    break
        finally:
            if p.poll() is None:
                p.kill()
            p.wait()
            p.stdin.close()
        if seen is None:
            continue
        observed.append(name)
        uid, gid = seen["Uid"].split(), seen["Gid"].split()
        caps = [k for k in ("CapPrm", "CapEff") if int(seen[k], 16) != 0]
        if uid[1] != my_uid[1] or gid[1] != my_gid[1] or caps:
            gained.append("%s: euid %s egid %s %s" % (name, uid[1], gid[1], caps))
    if gained:
        return False, "privilege gained through exec: %s" % gained
    if not observed:
        return check_setuid_mounts()
    return True, "ran %s: euid/egid unchanged (%s/%s), no capabilities" % (
        observed, my_uid[1], my_gid[1])


def check_exec_caps():
    out = subprocess.run(["/bin/cat", "/proc/self/status"], capture_output=True, timeout=10)
    if out.returncode != 0:
        return False, "cat failed: %r" % out.stderr[:200]
    bad = []
    for line in out.stdout.decode().splitlines():
        k, _, v = line.partition(":")
        if k in ("CapInh", "CapPrm", "CapEff", "CapAmb") and int(v.strip(), 16) != 0:
            bad.append("%s=%s" % (k, v.strip()))
    if bad:
        return False, "an exec'd child has capabilities: %s" % bad
    return True, "an exec'd child has no capabilities"


def check_chroot():
    return expect_denied("chroot", cstr(scratch_dir("chroot")))


def check_mknod(dirpath):
    path = os.path.join(dirpath, "escape-probe-null-%d" % os.getpid())
    mode = stat.S_IFCHR | 0o666
    r, e = syscall("mknodat", AT_FDCWD, cstr(path), mode, os.makedev(1, 3))
    if r == 0:
        os.unlink(path)
        return False, "mknod of a character device in %s succeeded" % dirpath
    if e in DENIED | {errno.EROFS}:
        return True, "mknod in %s: %s" % (dirpath, errname(e))
    return False, "mknod failed with unexpected %s" % errname(e)


def check_sethostname():
    name = socket.gethostname().encode()
    buf = ctypes.create_string_buffer(name)
    return expect_denied("sethostname", buf, len(name))


def check_clock_settime():
    class Timespec(ctypes.Structure):
        _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]

    now = time.clock_gettime(time.CLOCK_REALTIME)
    ts = Timespec(int(now), int((now % 1) * 1e9))
    return expect_denied("clock_settime", 0, ctypes.byref(ts))


def check_settimeofday():
    class Timeval(ctypes.Structure):
        _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long)]

    now = time.time()
    tv = Timeval(int(now), int((now % 1) * 1e6))
    return expect_denied("settimeofday", ctypes.byref(tv), None)


def check_reboot():
    # Valid magic numbers and an invalid command: an allowed caller gets EINVAL (after the
    # CAP_SYS_BOOT check), a refused one EPERM. Nothing reboots either way.
    return expect_denied("reboot", 0xFEE1DEAD, 672274793, 0x0BADC0DE, None)


def check_bpf():
    # BPF_MAP_CREATE of a 1-entry array: succeeds where bpf is allowed.
    attr = ctypes.create_string_buffer(struct.pack("IIIII", 2, 4, 4, 1, 0) + b"\0" * 108)
    r = expect_denied("bpf", 0, attr, 128)
    return r


def check_perf_event_open():
    # A software CPU-clock counter on this process.
    size = 128
    attr = bytearray(size)
    struct.pack_into("II", attr, 0, 1, size)  # PERF_TYPE_SOFTWARE, size
    struct.pack_into("Q", attr, 8, 0)  # PERF_COUNT_SW_CPU_CLOCK
    struct.pack_into("Q", attr, 40, 1 << 0 | 1 << 5 | 1 << 6)  # disabled, exclude_kernel, hv
    buf = ctypes.create_string_buffer(bytes(attr))
    r, e = syscall("perf_event_open", buf, 0, -1, -1, 0)
    if r >= 0:
        os.close(r)
        return False, "perf_event_open succeeded"
    if e in DENIED | {errno.ENOENT, errno.ENODEV}:
        # ENOENT/ENODEV: no perf support in this kernel at all.
        return True, "perf_event_open failed: %s" % errname(e)
    return False, "perf_event_open failed with unexpected %s" % errname(e)


def check_fd_call(name, *args):
    r, e = syscall(name, *args)
    if r >= 0:
        os.close(r)
        return False, "%s succeeded" % name
    if e in DENIED:
        return True, "%s failed: %s" % (name, errname(e))
    return False, "%s failed with unexpected %s" % (name, errname(e))


def check_open_by_handle_at():
    # struct file_handle { u32 handle_bytes; int handle_type; u8 f_handle[8]; }
    handle = ctypes.create_string_buffer(struct.pack("Ii", 8, 1) + b"\0" * 8)
    fd = os.open("/", os.O_RDONLY)
    try:
        return expect_denied("open_by_handle_at", fd, handle, os.O_RDONLY)
    finally:
        os.close(fd)


def check_init_module():
    return expect_denied("init_module", cstr("\0" * 16), 16, cstr(""))


def check_finit_module():
    fd = os.open("/bin/true", os.O_RDONLY)
    try:
        return expect_denied("finit_module", fd, cstr(""), 0)
    finally:
        os.close(fd)


def check_keyctl():
    # KEYCTL_JOIN_SESSION_KEYRING (1) with a new anonymous keyring.
    return expect_denied("keyctl", 1, None)


def check_add_key():
    payload = b"probe"
    return expect_denied("add_key", cstr("user"), cstr("escape-probe"), ctypes.c_char_p(payload),
                         len(payload), -3)


def check_syslog():
    buf = ctypes.create_string_buffer(256)
    return expect_denied("syslog", 3, buf, 256)


def check_io_uring():
    params = ctypes.create_string_buffer(120)
    return check_fd_call("io_uring_setup", 1, params)


def check_fsopen():
    return check_fd_call("fsopen", cstr("tmpfs"), 0)


def check_open_tree():
    # OPEN_TREE_CLONE (1) makes a detached copy of a mount: needs CAP_SYS_ADMIN.
    return check_fd_call("open_tree", AT_FDCWD, cstr("/usr"), 1)


def check_capset():
    # struct __user_cap_header_struct { u32 version; int pid; }, v3 = 0x20080522
    hdr = ctypes.create_string_buffer(struct.pack("Ii", 0x20080522, 0))
    # CAP_NET_RAW (bit 13) effective and permitted: what a raw socket needs.
    want = 1 << 13
    full = ctypes.create_string_buffer(struct.pack("III", want, want, 0) + struct.pack("III", 0, 0, 0))
    return expect_denied("capset", hdr, full)


def check_raise_rlimit():
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NPROC)
    if hard == resource.RLIM_INFINITY:
        return False, "RLIMIT_NPROC has no hard limit"
    try:
        resource.setrlimit(resource.RLIMIT_NPROC, (hard + 1000, hard + 1000))
    except ValueError as e:
        # Python turns EPERM into ValueError("not allowed to raise maximum limit").
        if "not allowed" in str(e):
            return True, "raising RLIMIT_NPROC past %d refused: %s" % (hard, e)
        raise
    except OSError as e:
        if e.errno in DENIED:
            return True, "raising RLIMIT_NPROC past %d refused: %s" % (hard, errname(e.errno))
        raise
    resource.setrlimit(resource.RLIMIT_NPROC, (soft, hard))
    return False, "RLIMIT_NPROC raised past %d" % hard


def check_oom_score_adj():
    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("-1000")
    except OSError as e:
        if e.errno in DENIED_FS:
            return True, "lowering oom_score_adj refused: %s" % errname(e.errno)
        raise
    return False, "oom_score_adj lowered to -1000"


def check_iopl():
    if ARCH != "x86_64":
        return True, "no iopl on %s" % ARCH
    # ENOSYS: this kernel is built without iopl/ioperm.
    return expect_denied("iopl", 3, ok=DENIED | {errno.ENOSYS})


def check_ioperm():
    if ARCH != "x86_64":
        return True, "no ioperm on %s" % ARCH
    return expect_denied("ioperm", 0x80, 1, 1, ok=DENIED | {errno.ENOSYS})


def check_swapon():
    return expect_denied("swapon", cstr("/tmp/none"), 0)


def check_acct():
    return expect_denied("acct", cstr("/tmp/acct"))


def check_host_devices():
    allowed = {"null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "mqueue",
               "ptmx", "console", "fd", "stdin", "stdout", "stderr", "core"}
    extra = sorted(set(os.listdir("/dev")) - allowed)
    if extra:
        return False, "unexpected /dev entries: %s" % extra
    return True, "/dev holds only the standard nodes"


def check_kill_all():
    """kill(-1, 0) reaches only this sandbox's processes: every pid it could reach is in our
    /proc (a host process would not be listed)."""
    pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
    if len(pids) > 64:
        return False, "%d processes visible: %s..." % (len(pids), pids[:10])
    return True, "only %d processes visible (pids %s)" % (len(pids), pids)


def local(args):
    forbid, outside, abstract = [], [], []
    i = 0
    while i < len(args):
        if args[i] == "--forbid-read" and i + 1 < len(args):
            forbid.append(args[i + 1])
            i += 2
        elif args[i] == "--outside-pid" and i + 1 < len(args):
            outside.append(int(args[i + 1]))
            i += 2
        elif args[i] == "--abstract-socket" and i + 1 < len(args):
            abstract.append(args[i + 1])
            i += 2
        else:
            usage("unknown argument %r" % args[i])
    run_check("capabilities_empty", check_caps)
    run_check("exec_gains_no_capabilities", check_exec_caps)
    run_check("setuid_no_effect", check_setuid_exec)
    run_check("setuid_mounts_nosuid", check_setuid_mounts)
    run_check("raw_socket", check_socket, socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP,
              "raw")
    run_check("packet_socket", check_socket, socket.AF_PACKET, socket.SOCK_RAW,
              socket.htons(0x0003), "packet")
    run_check("mount_tmpfs", check_mount_tmpfs)
    run_check("mount_bind", check_mount_bind)
    run_check("fsopen", check_fsopen)
    run_check("open_tree", check_open_tree)
    run_check("umount_proc", check_umount, "/proc")
    if os.path.isdir("/work"):
        run_check("umount_work", check_umount, "/work")
    run_check("pivot_root", check_pivot_root)
    run_check("chroot", check_chroot)
    for ns, flag in [("user", CLONE_NEWUSER), ("mount", CLONE_NEWNS), ("net", CLONE_NEWNET),
                     ("pid", CLONE_NEWPID), ("ipc", CLONE_NEWIPC), ("uts", CLONE_NEWUTS),
                     ("cgroup", CLONE_NEWCGROUP)]:
        run_check("unshare_" + ns, check_unshare, flag)
    run_check("clone_newuser", fork_syscall, "clone", CLONE_NEWUSER | signal.SIGCHLD, 0, 0, 0, 0)
    run_check("clone_newns", fork_syscall, "clone", CLONE_NEWNS | signal.SIGCHLD, 0, 0, 0, 0)
    clone_args = ctypes.create_string_buffer(
        struct.pack("QQQQQQQ", CLONE_NEWUSER, 0, 0, 0, signal.SIGCHLD, 0, 0) + b"\0" * 24)
    run_check("clone3_newuser", fork_syscall, "clone3", clone_args, 64)
    for ns in ("user", "mnt", "net", "pid", "ipc", "uts", "cgroup"):
        run_check("setns_" + ns, check_setns, ns)
    # The sandbox's own init: ptrace must be refused even inside.
    if os.getpid() != 1:
        run_check("ptrace_attach_init", check_ptrace, 1)
    for pid in outside:
        run_check("outside_pid_invisible", check_outside_visible, pid)
        run_check("ptrace_attach_outside", check_ptrace, pid)
        run_check("kill_outside", check_kill_outside, pid)
        run_check("process_vm_readv_outside", check_process_vm_readv, pid)
    for name in abstract:
        run_check("abstract_socket_outside", check_abstract_socket, name)
    run_check("few_processes_visible", check_kill_all)
    run_check("read_etc_shadow", check_read_denied, "/etc/shadow")
    for path in forbid:
        run_check("read_forbidden", check_read_denied, path)
    for path in ("/proc/sys/kernel/hostname", "/proc/sys/vm/drop_caches",
                 "/proc/sys/kernel/core_pattern", "/proc/sysrq-trigger",
                 "/sys/kernel/uevent_helper", "/sys/kernel/mm/transparent_hugepage/enabled"):
        run_check("write_" + path.strip("/").replace("/", "_"), check_open_write, path)
    # Already written by runc: a second write must be refused (maps are set once).
    run_check("write_proc_self_uid_map", check_write_value, "/proc/self/uid_map", "0 0 1\n")
    run_check("write_proc_self_gid_map", check_write_value, "/proc/self/gid_map", "0 0 1\n")
    run_check("cgroup_files_read_only", check_writable_tree, ["/sys/fs/cgroup"])
    run_check("sys_files_read_only", check_writable_tree, ["/sys/kernel", "/sys/class",
                                                           "/sys/module"])
    run_check("proc_sys_read_only", check_writable_tree, ["/proc/sys"])
    for d in ("/usr", "/usr/bin", "/etc", "/bin", "/lib", "/"):
        if os.path.isdir(d):
            run_check("create_in_" + (d.strip("/").replace("/", "_") or "root"), check_create, d)
    run_check("write_usr_binary", check_open_write, os.path.realpath(sys.executable))
    run_check("keyctl", check_keyctl)
    run_check("add_key", check_add_key)
    run_check("bpf", check_bpf)
    run_check("perf_event_open", check_perf_event_open)
    run_check("userfaultfd", check_fd_call, "userfaultfd", 0)
    run_check("io_uring_setup", check_io_uring)
    run_check("kexec_load", expect_denied, "kexec_load", 0, 0, None, 0)
    run_check("kexec_file_load", expect_denied, "kexec_file_load", -1, -1, 0, None, 2)
    run_check("init_module", check_init_module)
    run_check("finit_module", check_finit_module)
    run_check("delete_module", expect_denied, "delete_module", cstr("escape_probe_none"), 0)
    run_check("open_by_handle_at", check_open_by_handle_at)
    run_check("mknod_tmp", check_mknod, "/tmp")
    run_check("mknod_dev_shm", check_mknod, "/dev/shm")
    if os.path.isdir("/work"):
        run_check("mknod_work", check_mknod, "/work")
    run_check("sethostname", check_sethostname)
    run_check("clock_settime", check_clock_settime)
    run_check("settimeofday", check_settimeofday)
    run_check("reboot", check_reboot)
    run_check("syslog_read", check_syslog)
    run_check("capset", check_capset)
    run_check("raise_rlimit_nproc", check_raise_rlimit)
    run_check("lower_oom_score_adj", check_oom_score_adj)
    run_check("iopl", check_iopl)
    run_check("ioperm", check_ioperm)
    run_check("swapon", check_swapon)
    run_check("acct", check_acct)
    run_check("host_devices_absent", check_host_devices)


# ---------------------------------------------------------------- network checks

NET_BLOCKED = {errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ECONNREFUSED, errno.EACCES,
               errno.EPERM, errno.ETIMEDOUT, errno.EADDRNOTAVAIL}


def parse_target(t):
    host, _, port = t.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit():
        raise ValueError("target %r is not HOST:PORT" % t)
    return host, int(port)


def check_tcp(host, port):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(2.0)
    try:
        s.connect((host, port))
    except socket.timeout:
        return True, "tcp %s:%d timed out" % (host, port)
    except OSError as e:
        if e.errno in NET_BLOCKED:
            return True, "tcp %s:%d: %s" % (host, port, errname(e.errno))
        raise
    finally:
        s.close()
    return False, "tcp %s:%d connected" % (host, port)


def check_udp(host, port):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.settimeout(2.0)
    try:
        try:
            s.sendto(b"escape-probe", (host, port))
        except OSError as e:
            if e.errno in NET_BLOCKED:
                return True, "udp send to %s:%d: %s" % (host, port, errname(e.errno))
            raise
        try:
            data, peer = s.recvfrom(2048)
        except socket.timeout:
            return True, "udp %s:%d: sent, no answer in 2 s" % (host, port)
        except OSError as e:
            if e.errno in NET_BLOCKED:
                return True, "udp %s:%d: %s" % (host, port, errname(e.errno))
            raise
        return False, "udp %s:%d answered %r from %s" % (host, port, data[:32], peer)
    finally:
        s.close()


def check_resolv_conf():
    try:
        text = open("/etc/resolv.conf").read()
    except FileNotFoundError:
        return True, "no /etc/resolv.conf"
    servers = [l for l in text.splitlines() if l.split()[:1] == ["nameserver"]]
    if servers:
        return False, "resolv.conf names servers: %s" % servers
    return True, "resolv.conf names no server"


def check_dns(name):
    try:
        infos = socket.getaddrinfo(name, 80, proto=socket.IPPROTO_TCP)
    except socket.gaierror as e:
        return True, "getaddrinfo(%s) failed: %s" % (name, e)
    return False, "getaddrinfo(%s) resolved: %s" % (name, sorted({i[4][0] for i in infos}))


def net(args):
    targets, dns_name = [], "escape-probe.enclave.invalid"
    i = 0
    while i < len(args):
        if args[i] == "--dns-name" and i + 1 < len(args):
            dns_name = args[i + 1]
            i += 2
        else:
            targets.append(parse_target(args[i]))
            i += 1
    if not targets:
        usage("net needs at least one HOST:PORT target")
    for host, port in targets:
        run_check("tcp_connect %s:%d" % (host, port), check_tcp, host, port)
        run_check("udp_exchange %s:%d" % (host, port), check_udp, host, port)
    run_check("resolv_conf_empty", check_resolv_conf)
    run_check("dns_lookup", check_dns, dns_name)


# ---------------------------------------------------------------- resource checks

def forkbomb(args):
    """Forks without end. Every process keeps forking; the pids limit must refuse forks
    (EAGAIN). The first process reports once it saw a refusal, then keeps going until it is
    killed (or for --seconds S, after which it kills every process it can and exits)."""
    seconds = 0.0
    if args[:1] == ["--seconds"] and len(args) == 2:
        seconds = float(args[1])
    elif args:
        usage("forkbomb takes only --seconds S")
    start = time.monotonic()
    root = os.getpid()
    reported = False
    refused = 0
    while True:
        try:
            pid = os.fork()
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.ENOMEM):
                raise
            refused += 1
            if os.getpid() == root and not reported:
                n = sum(1 for p in os.listdir("/proc") if p.isdigit())
                report("forkbomb_refused", True,
                       "fork refused (%s) with %d processes running" % (errname(e.errno), n))
                reported = True
            if os.getpid() == root and seconds and time.monotonic() - start > seconds:
                break
            continue
        if pid == 0:
            # The child: keep forking too (a bomb), never return to the caller.
            root = -1
            continue
        if root == os.getpid() and seconds and time.monotonic() - start > seconds:
            break
    if not reported:
        report("forkbomb_refused", False, "ran %.1f s and no fork was refused" % seconds)
    try:
        os.kill(-1, signal.SIGKILL)
    except OSError:
        pass


def memhog(args):
    """Allocates and touches memory in 8 MiB steps up to --max-mib (default 4096). The memory
    limit must kill it (the sandbox exits 137) before it gets there."""
    max_mib = 4096
    if args[:1] == ["--max-mib"] and len(args) == 2:
        max_mib = int(args[1])
    elif args:
        usage("memhog takes only --max-mib N")
    held = []
    step = 8
    for n in range(step, max_mib + 1, step):
        try:
            held.append(bytearray(b"\x5a") * (step << 20))
        except MemoryError:
            report("memhog_refused", True, "allocation refused at %d MiB" % n)
            return
        print(json.dumps({"progress_mib": n}), flush=True)
    report("memhog_refused", False, "allocated %d MiB without being stopped" % max_mib)


# ---------------------------------------------------------------- main

def usage(msg):
    print("escape.py: %s\n%s" % (msg, __doc__), file=sys.stderr)
    sys.exit(2)


def main():
    if len(sys.argv) < 2:
        usage("give a mode: local, net, forkbomb or memhog")
    mode, args = sys.argv[1], sys.argv[2:]
    modes = {"local": local, "net": net, "forkbomb": forkbomb, "memhog": memhog}
    if mode not in modes:
        usage("unknown mode %r" % mode)
    try:
        modes[mode](args)
    except Exception as e:  # noqa: BLE001
        report("probe_" + mode, False, "probe error: %s: %s" % (type(e).__name__, e))
    failed = [c for c, b in RESULTS if not b]
    summary = {"summary": mode, "checks": len(RESULTS), "blocked": len(RESULTS) - len(failed),
               "not_blocked": failed}
    print(json.dumps(summary), flush=True)
    sys.exit(0 if RESULTS and not failed else 1)


if __name__ == "__main__":
    main()
