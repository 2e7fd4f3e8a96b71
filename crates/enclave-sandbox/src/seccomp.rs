//! The sandbox's seccomp profile, as data.
//!
//! The profile is an allow-list: every system call not named here fails with `EPERM`
//! (`SCMP_ACT_ERRNO`), as in Docker's and containerd's default profile. The list is that
//! default profile's unconditional allow-list *minus* everything the default profile only
//! allows to holders of a capability (a sandbox has none), and minus calls a batch workload
//! does not need. Notably refused:
//!
//! - namespaces and mounts: `mount`, `umount2`, `pivot_root`, `unshare`, `setns`, `clone3`
//!   (refused with `ENOSYS`, so the C library falls back to `clone`), and `clone` with any
//!   `CLONE_NEW*` flag (the argument filter below lets plain `fork`/thread clones through);
//! - kernel surfaces: `bpf`, `perf_event_open`, `kexec_load`, `kexec_file_load`,
//!   `init_module`, `finit_module`, `delete_module`, `userfaultfd`, `io_uring_*`,
//!   `keyctl`, `add_key`, `request_key`, `lookup_dcookie`, `fanotify_init`,
//!   `open_by_handle_at`, `name_to_handle_at`, `quotactl`, `acct`, `swapon`/`swapoff`,
//!   `reboot`, `syslog`, `settimeofday`/`clock_settime`/`adjtimex`, `iopl`/`ioperm`,
//!   `personality` (beyond the default), `ptrace`, `process_vm_readv`/`writev`,
//!   `kcmp`, `vm86`, `uselib`, `ustat`, `sysfs`, `nfsservctl`, `mbind`/`migrate_pages`/
//!   `move_pages`/`set_mempolicy`, `chroot`.

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArgBuilder, LinuxSeccompBuilder,
    LinuxSeccompOperator, LinuxSyscallBuilder,
};

use crate::{Error, Result};

/// `EPERM`: what a refused system call returns.
const EPERM: u32 = 1;
/// `ENOSYS`: what `clone3` returns, so that the C library falls back to `clone`, whose flags
/// this profile can inspect.
const ENOSYS: u32 = 38;
/// `CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER |
/// CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWTIME` (`0x80`): `clone` with any of these is refused.
const CLONE_NAMESPACE_FLAGS: u64 = 0x7E02_0080;

/// System calls a sandboxed process may make without conditions.
pub const ALLOWED_SYSCALLS: &[&str] = &[
    "accept",
    "accept4",
    "access",
    "alarm",
    "arch_prctl",
    "bind",
    "brk",
    "capget",
    "capset",
    "chdir",
    "chmod",
    "chown",
    "clock_getres",
    "clock_gettime",
    "clock_nanosleep",
    "close",
    "close_range",
    "connect",
    "copy_file_range",
    "creat",
    "dup",
    "dup2",
    "dup3",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_wait",
    "eventfd",
    "eventfd2",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "faccessat",
    "faccessat2",
    "fadvise64",
    "fallocate",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fchown",
    "fchownat",
    "fcntl",
    "fdatasync",
    "fgetxattr",
    "flistxattr",
    "flock",
    "fork",
    "fremovexattr",
    "fsetxattr",
    "fstat",
    "fstatfs",
    "fsync",
    "ftruncate",
    "futex",
    "futex_waitv",
    "futimesat",
    "get_mempolicy",
    "get_robust_list",
    "getcpu",
    "getcwd",
    "getdents",
    "getdents64",
    "getegid",
    "geteuid",
    "getgid",
    "getgroups",
    "getitimer",
    "getpeername",
    "getpgid",
    "getpgrp",
    "getpid",
    "getppid",
    "getpriority",
    "getrandom",
    "getresgid",
    "getresuid",
    "getrlimit",
    "getrusage",
    "getsid",
    "getsockname",
    "getsockopt",
    "gettid",
    "gettimeofday",
    "getuid",
    "getxattr",
    "inotify_add_watch",
    "inotify_init",
    "inotify_init1",
    "inotify_rm_watch",
    "ioctl",
    "ioprio_get",
    "kill",
    "lchown",
    "lgetxattr",
    "link",
    "linkat",
    "listen",
    "listxattr",
    "llistxattr",
    "lremovexattr",
    "lseek",
    "lsetxattr",
    "lstat",
    "madvise",
    "membarrier",
    "memfd_create",
    "mincore",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "mlock",
    "mlock2",
    "mlockall",
    "mmap",
    "mprotect",
    "mq_getsetattr",
    "mq_notify",
    "mq_open",
    "mq_timedreceive",
    "mq_timedsend",
    "mq_unlink",
    "mremap",
    "msgctl",
    "msgget",
    "msgrcv",
    "msgsnd",
    "msync",
    "munlock",
    "munlockall",
    "munmap",
    "nanosleep",
    "newfstatat",
    "open",
    "openat",
    "openat2",
    "pause",
    "pidfd_open",
    "pidfd_send_signal",
    "pipe",
    "pipe2",
    "poll",
    "ppoll",
    "prctl",
    "pread64",
    "preadv",
    "preadv2",
    "prlimit64",
    "pselect6",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "read",
    "readahead",
    "readlink",
    "readlinkat",
    "readv",
    "recvfrom",
    "recvmmsg",
    "recvmsg",
    "remap_file_pages",
    "removexattr",
    "rename",
    "renameat",
    "renameat2",
    "restart_syscall",
    "rmdir",
    "rseq",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_tgsigqueueinfo",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_getaffinity",
    "sched_getattr",
    "sched_getparam",
    "sched_getscheduler",
    "sched_rr_get_interval",
    "sched_setaffinity",
    "sched_setattr",
    "sched_setparam",
    "sched_setscheduler",
    "sched_yield",
    "select",
    "semctl",
    "semget",
    "semop",
    "semtimedop",
    "sendfile",
    "sendmmsg",
    "sendmsg",
    "sendto",
    "set_robust_list",
    "set_tid_address",
    "setfsgid",
    "setfsuid",
    "setgid",
    "setgroups",
    "setitimer",
    "setpgid",
    "setpriority",
    "setregid",
    "setresgid",
    "setresuid",
    "setreuid",
    "setrlimit",
    "setsid",
    "setsockopt",
    "setuid",
    "setxattr",
    "shmat",
    "shmctl",
    "shmdt",
    "shmget",
    "shutdown",
    "sigaltstack",
    "signalfd",
    "signalfd4",
    "socket",
    "socketpair",
    "splice",
    "stat",
    "statfs",
    "statx",
    "symlink",
    "symlinkat",
    "sync",
    "sync_file_range",
    "syncfs",
    "sysinfo",
    "tee",
    "tgkill",
    "time",
    "timer_create",
    "timer_delete",
    "timer_getoverrun",
    "timer_gettime",
    "timer_settime",
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_settime",
    "times",
    "tkill",
    "truncate",
    "umask",
    "uname",
    "unlink",
    "unlinkat",
    "utime",
    "utimensat",
    "utimes",
    "vfork",
    "vmsplice",
    "wait4",
    "waitid",
    "write",
    "writev",
];

/// System calls refused even though a capability-less process would be refused most of them
/// anyway: listed so that a test can check that none slips into [`ALLOWED_SYSCALLS`].
pub const REFUSED_SYSCALLS: &[&str] = &[
    "mount",
    "umount2",
    "pivot_root",
    "unshare",
    "setns",
    "clone3",
    "bpf",
    "perf_event_open",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "userfaultfd",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "keyctl",
    "add_key",
    "request_key",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "open_by_handle_at",
    "name_to_handle_at",
    "fanotify_init",
    "quotactl",
    "acct",
    "swapon",
    "swapoff",
    "reboot",
    "syslog",
    "settimeofday",
    "clock_settime",
    "adjtimex",
    "clock_adjtime",
    "iopl",
    "ioperm",
    "kcmp",
    "chroot",
    "uselib",
    "ustat",
    "sysfs",
    "lookup_dcookie",
    "mbind",
    "migrate_pages",
    "move_pages",
    "set_mempolicy",
    "personality",
    "fsopen",
    "fsmount",
    "fsconfig",
    "fspick",
    "move_mount",
    "open_tree",
    "mount_setattr",
    "pidfd_getfd",
];

/// The architectures the filter is built for: the machine's own (system calls made through
/// another architecture's ABI, such as 32-bit `int 0x80` on x86-64, kill the process).
fn architectures() -> Vec<Arch> {
    if cfg!(target_arch = "aarch64") {
        vec![Arch::ScmpArchAarch64]
    } else {
        vec![Arch::ScmpArchX86_64]
    }
}

/// The profile, ready for `linux.seccomp` of the OCI spec.
pub fn profile() -> Result<LinuxSeccomp> {
    let spec_err = |e: oci_spec::OciSpecError| Error::Spec(format!("seccomp profile: {e}"));
    let allow = LinuxSyscallBuilder::default()
        .names(
            ALLOWED_SYSCALLS
                .iter()
                .map(|s| (*s).to_string())
                .collect::<Vec<_>>(),
        )
        .action(LinuxSeccompAction::ScmpActAllow)
        .build()
        .map_err(spec_err)?;
    // `clone` without namespace flags: (flags & CLONE_NAMESPACE_FLAGS) == 0.
    let clone = LinuxSyscallBuilder::default()
        .names(vec!["clone".to_string()])
        .action(LinuxSeccompAction::ScmpActAllow)
        .args(vec![LinuxSeccompArgBuilder::default()
            .index(0usize)
            .value(CLONE_NAMESPACE_FLAGS)
            .value_two(0u64)
            .op(LinuxSeccompOperator::ScmpCmpMaskedEq)
            .build()
            .map_err(spec_err)?])
        .build()
        .map_err(spec_err)?;
    let clone3 = LinuxSyscallBuilder::default()
        .names(vec!["clone3".to_string()])
        .action(LinuxSeccompAction::ScmpActErrno)
        .errno_ret(ENOSYS)
        .build()
        .map_err(spec_err)?;
    LinuxSeccompBuilder::default()
        .default_action(LinuxSeccompAction::ScmpActErrno)
        .default_errno_ret(EPERM)
        .architectures(architectures())
        .syscalls(vec![allow, clone, clone3])
        .build()
        .map_err(spec_err)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn nothing_refused_is_allowed() {
        for name in REFUSED_SYSCALLS {
            assert!(!ALLOWED_SYSCALLS.contains(name), "{name} is allowed");
        }
        assert!(
            !ALLOWED_SYSCALLS.contains(&"clone"),
            "clone is only allowed with a filter"
        );
    }

    #[test]
    fn default_denies() {
        let p = profile().unwrap();
        assert_eq!(p.default_action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(p.default_errno_ret(), Some(EPERM));
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(json["syscalls"][1]["args"][0]["op"], "SCMP_CMP_MASKED_EQ");
    }
}
