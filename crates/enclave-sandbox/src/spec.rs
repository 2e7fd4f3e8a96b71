//! What a sandbox is, and its OCI runtime spec (pure: no IO).

use std::path::{Path, PathBuf};
use std::time::Duration;

use enclave_core::secrets::{InjectionTarget, ResolvedSecret, SECRET_FILE_DIR};
use oci_spec::runtime::{
    LinuxBuilder, LinuxCapabilities, LinuxCpuBuilder, LinuxDeviceCgroupBuilder,
    LinuxIdMappingBuilder, LinuxMemoryBuilder, LinuxNamespaceBuilder, LinuxNamespaceType,
    LinuxPidsBuilder, LinuxResourcesBuilder, Mount, MountBuilder, PosixRlimitBuilder,
    PosixRlimitType, ProcessBuilder, RootBuilder, Spec, SpecBuilder, UserBuilder,
};
use zeroize::Zeroizing;

use crate::{seccomp, Error, Result};

/// First host uid of the first project's range: below it lie the host's own users.
pub const UID_BASE: u32 = 100_000;
/// Size of each project's uid range (uids 0–65535 inside the sandbox).
pub const UID_RANGE_SIZE: u32 = 65_536;
/// Most projects the uid scheme can hold: the ranges end below 2^32 - 1 (`(u32::MAX -
/// UID_BASE) / UID_RANGE_SIZE`, rounded down, minus one to keep clear of `-1`).
pub const MAX_PROJECT_INDEX: u32 = (u32::MAX - UID_BASE) / UID_RANGE_SIZE - 1;

/// Where a sandbox sees its Python environment (read-only), when it has one.
pub const ENV_DIR: &str = "/opt/enclave/env";

/// Host directories bind-mounted read-only as the sandbox's system image (those that exist).
pub const IMAGE_DIRS: &[&str] = &["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64"];

/// Paths hidden from the sandbox (an empty file or tmpfs is mounted over them), as in the
/// container ecosystem's default.
pub const MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths the sandbox sees read-only, as in the container ecosystem's default.
pub const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// The unprivileged host uid (and gid) range a project's sandboxes run in.
///
/// Project number `n` (its index, handed out once and never reused) owns host uids
/// `UID_BASE + n * UID_RANGE_SIZE` .. `+ UID_RANGE_SIZE`: root inside a sandbox is
/// `UID_BASE + n * UID_RANGE_SIZE` on the host, a user that owns nothing on the host. Two
/// projects never share a uid, so their files and processes stay apart even if a sandbox
/// escaped to the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UidRange {
    /// The host uid that root (uid 0) of the sandbox is.
    pub host_base: u32,
    /// How many uids (from 0 inside) are mapped.
    pub size: u32,
}

impl UidRange {
    /// The range of project number `index` (0 ..= [`MAX_PROJECT_INDEX`]).
    pub fn for_project_index(index: u32) -> Result<UidRange> {
        if index > MAX_PROJECT_INDEX {
            return Err(Error::Invalid(format!(
                "project index {index} is past the last uid range ({MAX_PROJECT_INDEX})"
            )));
        }
        Ok(UidRange {
            host_base: UID_BASE + index * UID_RANGE_SIZE,
            size: UID_RANGE_SIZE,
        })
    }
}

/// Resource limits of one sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Memory (and memory + swap): the kernel kills the workload past it.
    pub memory_bytes: u64,
    /// CPU time per wall-clock second, in thousandths of a CPU (1000 = one CPU).
    pub cpu_millis: u64,
    /// Most processes and threads at once.
    pub pids: u32,
    /// Wall-clock limit: the workload is killed after it.
    pub timeout: Duration,
    /// Size of the `/tmp` tmpfs (counted in the memory limit).
    pub tmp_bytes: u64,
    /// Most bytes of stdout and stderr kept; the rest is dropped.
    pub log_bytes: u64,
    /// Most open files per process.
    pub open_files: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 1 << 30,
            cpu_millis: 1000,
            pids: 256,
            timeout: Duration::from_secs(3600),
            tmp_bytes: 64 << 20,
            log_bytes: 8 << 20,
            open_files: 1024,
        }
    }
}

impl Limits {
    /// Checks that each limit is in its allowed range.
    pub fn check(&self) -> Result<()> {
        let bad = |what: &str, range: &str| {
            Err(Error::Invalid(format!(
                "the {what} limit must be {range}; change it and try again"
            )))
        };
        if !(4 << 20..=1 << 40).contains(&self.memory_bytes) {
            return bad("memory", "between 4 MiB and 1 TiB");
        }
        if !(10..=256_000).contains(&self.cpu_millis) {
            return bad("CPU", "between 0.01 and 256 CPUs");
        }
        if !(8..=65_536).contains(&self.pids) {
            return bad("process", "between 8 and 65536");
        }
        if self.timeout.is_zero() || self.timeout > Duration::from_secs(30 * 24 * 3600) {
            return bad("time", "between 1 second and 30 days");
        }
        if !(1 << 20..=self.memory_bytes).contains(&self.tmp_bytes) {
            return bad("/tmp size", "between 1 MiB and the memory limit");
        }
        if self.log_bytes > 1 << 30 {
            return bad("log", "at most 1 GiB");
        }
        if !(64..=1 << 20).contains(&self.open_files) {
            return bad("open files", "between 64 and 1048576");
        }
        Ok(())
    }
}

/// One workload to run in a sandbox.
#[derive(Debug)]
pub struct SandboxSpec {
    /// Unique id of the sandbox (also the container id and the cgroup name): 1–64 of
    /// `a-z`, `0-9`, `-`, starting with a letter or digit.
    pub id: String,
    /// The project's name (the sandbox's hostname).
    pub project: String,
    /// The command and its arguments; the command is looked up in `PATH`.
    pub command: Vec<String>,
    /// Environment variables, besides `PATH`, `HOME` and the secrets.
    pub env: Vec<(String, String)>,
    /// Working directory inside the sandbox (absolute).
    pub cwd: String,
    /// The project's host uid range.
    pub uid_range: UidRange,
    /// Resource limits.
    pub limits: Limits,
    /// The project's persistent work volume, mounted read-write at `/work`.
    pub work_volume: Option<PathBuf>,
    /// A built Python environment, mounted read-only (executable) at [`ENV_DIR`].
    pub environment: Option<PathBuf>,
    /// Secrets to inject, as resolved from the workload's injection plan.
    pub secrets: Vec<ResolvedSecret>,
    /// The network the sandbox joins.
    pub network: NetworkMode,
}

/// Which network a sandbox gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkMode {
    /// Its own network namespace with only loopback.
    Isolated,
    /// Its project's private network (project number `index`, the same number that picks the
    /// uid range): it reaches the project's other workloads and nothing else.
    Project {
        /// The project's number.
        index: u32,
    },
}

/// Where the driver put the parts of a bundle the spec refers to (host paths).
#[derive(Debug, Clone)]
pub struct BundlePaths {
    /// The empty directory that is the sandbox's (read-only) root.
    pub rootfs: PathBuf,
    /// The generated `/etc` (see [`etc_files`]).
    pub etc: PathBuf,
    /// The directory of secret files, on a tmpfs, mounted read-only at `/run/secrets`.
    pub secrets: Option<PathBuf>,
    /// The host image directories that exist (a subset of [`IMAGE_DIRS`]).
    pub image_dirs: Vec<PathBuf>,
    /// The network namespace to join (made by [`crate::net::Networks`]) for
    /// [`NetworkMode::Project`]; `None` for [`NetworkMode::Isolated`], where runc makes a
    /// fresh namespace with only `lo`.
    pub netns: Option<PathBuf>,
}

/// A secret file to create: its name inside `/run/secrets` and its value.
pub struct SecretFile {
    /// File name (no directories).
    pub name: String,
    /// Contents.
    pub value: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for SecretFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretFile")
            .field("name", &self.name)
            .field("value", &"<hidden>")
            .finish()
    }
}

/// Environment names the sandbox sets itself.
const RESERVED_ENV: &[&str] = &["PATH", "HOME", "HOSTNAME"];

fn check_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "sandbox id {id:?} must be 1-64 of a-z, 0-9 and '-', starting with a letter or digit"
        )))
    }
}

fn check_env_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !ok {
        return Err(Error::Invalid(format!(
            "environment variable name {name:?} must be letters, digits and '_', not starting with a digit"
        )));
    }
    if RESERVED_ENV.contains(&name) || name.starts_with("LD_") {
        return Err(Error::Invalid(format!(
            "environment variable {name} is set by the sandbox; choose another name"
        )));
    }
    Ok(())
}

/// The file name of a secret file target (`/run/secrets/NAME`, no subdirectories).
fn secret_file_name(path: &str) -> Result<String> {
    let name = path
        .strip_prefix(SECRET_FILE_DIR)
        .and_then(|rest| rest.strip_prefix('/'))
        .unwrap_or("");
    let ok = !name.is_empty()
        && name != "."
        && name != ".."
        && name.len() <= 255
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(name.to_string())
    } else {
        Err(Error::Invalid(format!(
            "secret file {path:?} must be {SECRET_FILE_DIR}/NAME, NAME of letters, digits, '_', '-' and '.'"
        )))
    }
}

impl SandboxSpec {
    /// Checks the spec: id, command, cwd, environment, limits, secret targets.
    pub fn check(&self) -> Result<()> {
        check_id(&self.id)?;
        if self.command.is_empty() || self.command[0].is_empty() {
            return Err(Error::Invalid(
                "the command is empty; give the program to run and its arguments".into(),
            ));
        }
        if self.command.iter().any(|a| a.contains('\0')) {
            return Err(Error::Invalid(
                "a command argument contains a NUL byte".into(),
            ));
        }
        if !self.cwd.starts_with('/') || self.cwd.contains('\0') {
            return Err(Error::Invalid(format!(
                "the working directory {:?} must be an absolute path",
                self.cwd
            )));
        }
        if self.project.is_empty() || self.project.len() > 63 {
            return Err(Error::Invalid(
                "the project name must be 1-63 characters".into(),
            ));
        }
        if self.uid_range.size == 0 || self.uid_range.host_base < UID_BASE {
            return Err(Error::Invalid(format!(
                "the uid range must start at or above {UID_BASE} (host users live below it)"
            )));
        }
        for (name, value) in &self.env {
            check_env_name(name)?;
            if value.contains('\0') {
                return Err(Error::Invalid(format!(
                    "variable {name} contains a NUL byte"
                )));
            }
        }
        let mut names = Vec::new();
        for s in &self.secrets {
            let name = match &s.target {
                InjectionTarget::Env(v) => {
                    check_env_name(v)?;
                    if s.value.contains(&0) || std::str::from_utf8(&s.value).is_err() {
                        return Err(Error::Invalid(format!(
                            "secret {} is not text without NUL bytes and cannot be an environment variable; inject it as a file",
                            s.secret
                        )));
                    }
                    format!("env:{v}")
                }
                InjectionTarget::File(p) => format!("file:{}", secret_file_name(p)?),
            };
            if names.contains(&name) || self.env.iter().any(|(n, _)| format!("env:{n}") == name) {
                return Err(Error::Invalid(format!("{name} is given twice")));
            }
            names.push(name);
        }
        self.limits.check()
    }

    /// The secret files to create in the secrets directory.
    pub fn secret_files(&self) -> Result<Vec<SecretFile>> {
        let mut out = Vec::new();
        for s in &self.secrets {
            if let InjectionTarget::File(p) = &s.target {
                out.push(SecretFile {
                    name: secret_file_name(p)?,
                    value: s.value.clone(),
                });
            }
        }
        Ok(out)
    }

    /// The OCI runtime spec (`config.json`) of this sandbox. Holds the values of environment
    /// secrets: the driver keeps it on a tmpfs only.
    pub fn to_oci(&self, paths: &BundlePaths) -> Result<Spec> {
        self.check()?;
        let e = |e: oci_spec::OciSpecError| Error::Spec(e.to_string());
        let mut env = vec![
            if self.environment.is_some() {
                format!("PATH={ENV_DIR}/bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
            } else {
                "PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin".to_string()
            },
            "HOME=/work".to_string(),
            format!("HOSTNAME={}", self.project),
        ];
        env.extend(self.env.iter().map(|(k, v)| format!("{k}={v}")));
        for s in &self.secrets {
            if let InjectionTarget::Env(name) = &s.target {
                env.push(format!("{name}={}", String::from_utf8_lossy(&s.value)));
            }
        }
        let rlimit = |typ, n: u64| {
            PosixRlimitBuilder::default()
                .typ(typ)
                .soft(n)
                .hard(n)
                .build()
                .map_err(e)
        };
        let no_caps = LinuxCapabilities::default();
        let mut caps = no_caps;
        caps.set_bounding(Some(Default::default()));
        caps.set_effective(Some(Default::default()));
        caps.set_inheritable(Some(Default::default()));
        caps.set_permitted(Some(Default::default()));
        caps.set_ambient(Some(Default::default()));
        let process = ProcessBuilder::default()
            .terminal(false)
            .user(
                UserBuilder::default()
                    .uid(0u32)
                    .gid(0u32)
                    .umask(0o022u32)
                    .build()
                    .map_err(e)?,
            )
            .args(self.command.clone())
            .env(env)
            .cwd(PathBuf::from(&self.cwd))
            .capabilities(caps)
            .no_new_privileges(true)
            .rlimits(vec![
                rlimit(PosixRlimitType::RlimitNofile, self.limits.open_files)?,
                rlimit(PosixRlimitType::RlimitNproc, u64::from(self.limits.pids))?,
                rlimit(PosixRlimitType::RlimitCore, 0)?,
            ])
            .build()
            .map_err(e)?;

        let ns = |typ| LinuxNamespaceBuilder::default().typ(typ).build().map_err(e);
        let map = LinuxIdMappingBuilder::default()
            .container_id(0u32)
            .host_id(self.uid_range.host_base)
            .size(self.uid_range.size)
            .build()
            .map_err(e)?;
        let cpu_period: u64 = 100_000;
        let memory = i64::try_from(self.limits.memory_bytes)
            .map_err(|_| Error::Invalid("memory limit too large".into()))?;
        let resources = LinuxResourcesBuilder::default()
            .devices(vec![LinuxDeviceCgroupBuilder::default()
                .allow(false)
                .access("rwm")
                .build()
                .map_err(e)?])
            .memory(
                LinuxMemoryBuilder::default()
                    .limit(memory)
                    .swap(memory)
                    .build()
                    .map_err(e)?,
            )
            .cpu(
                LinuxCpuBuilder::default()
                    .quota(
                        i64::try_from(self.limits.cpu_millis * cpu_period / 1000)
                            .unwrap_or(i64::MAX),
                    )
                    .period(cpu_period)
                    .build()
                    .map_err(e)?,
            )
            .pids(
                LinuxPidsBuilder::default()
                    .limit(i64::from(self.limits.pids))
                    .build()
                    .map_err(e)?,
            )
            .build()
            .map_err(e)?;
        let linux = LinuxBuilder::default()
            .namespaces(vec![
                ns(LinuxNamespaceType::Pid)?,
                ns(LinuxNamespaceType::Ipc)?,
                ns(LinuxNamespaceType::Uts)?,
                ns(LinuxNamespaceType::Mount)?,
                ns(LinuxNamespaceType::User)?,
                // Own cgroup namespace: /proc/self/cgroup shows `/`, not the host's path.
                ns(LinuxNamespaceType::Cgroup)?,
                self.network_namespace(paths)?,
            ])
            .uid_mappings(vec![map])
            .gid_mappings(vec![map])
            .cgroups_path(PathBuf::from(format!("/enclave/{}", self.id)))
            .resources(resources)
            .seccomp(seccomp::profile()?)
            .masked_paths(
                MASKED_PATHS
                    .iter()
                    .map(|s| s.to_string())
                    .collect::<Vec<_>>(),
            )
            .readonly_paths(
                READONLY_PATHS
                    .iter()
                    .map(|s| s.to_string())
                    .collect::<Vec<_>>(),
            )
            .rootfs_propagation("private")
            .build()
            .map_err(e)?;

        SpecBuilder::default()
            .version("1.0.2")
            .hostname(self.project.clone())
            .root(
                RootBuilder::default()
                    .path(&paths.rootfs)
                    .readonly(true)
                    .build()
                    .map_err(e)?,
            )
            .process(process)
            .mounts(self.mounts(paths)?)
            .linux(linux)
            .build()
            .map_err(e)
    }

    /// The network namespace entry: a fresh one when isolated, the project network's
    /// namespace file otherwise.
    fn network_namespace(&self, paths: &BundlePaths) -> Result<oci_spec::runtime::LinuxNamespace> {
        let e = |e: oci_spec::OciSpecError| Error::Spec(e.to_string());
        let mut b = LinuxNamespaceBuilder::default().typ(LinuxNamespaceType::Network);
        match (self.network, &paths.netns) {
            (NetworkMode::Isolated, None) => {}
            (NetworkMode::Project { .. }, Some(path)) => b = b.path(path.clone()),
            (NetworkMode::Isolated, Some(_)) => {
                return Err(Error::Spec(
                    "an isolated sandbox was given a network namespace to join".into(),
                ))
            }
            (NetworkMode::Project { .. }, None) => {
                return Err(Error::Spec(
                    "a sandbox on a project network has no network namespace to join".into(),
                ))
            }
        }
        b.build().map_err(e)
    }

    /// `/sys`: the sandbox's own sysfs when isolated. On a project network it is an empty,
    /// read-only tmpfs instead: sysfs belongs to a network namespace, and mounting it needs
    /// `CAP_SYS_ADMIN` over the user namespace that owns that network namespace — the host's,
    /// for the namespaces Enclave makes (so that root in the sandbox cannot change its
    /// addresses or routes) — so runc's mount fails with EPERM. Bind-mounting the host's
    /// `/sys` is no way out: it lists the host's interfaces and every project's bridge.
    fn sys_mount(&self) -> Result<Mount> {
        let e = |e: oci_spec::OciSpecError| Error::Spec(e.to_string());
        let (typ, opts): (&str, &[&str]) = match self.network {
            NetworkMode::Isolated => ("sysfs", &["nosuid", "noexec", "nodev", "ro"]),
            NetworkMode::Project { .. } => (
                "tmpfs",
                &["nosuid", "noexec", "nodev", "ro", "mode=755", "size=4k"],
            ),
        };
        MountBuilder::default()
            .destination("/sys")
            .typ(typ)
            .source(typ)
            .options(opts.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .build()
            .map_err(e)
    }

    fn mounts(&self, paths: &BundlePaths) -> Result<Vec<Mount>> {
        let e = |e: oci_spec::OciSpecError| Error::Spec(e.to_string());
        let m = |dest: &str, typ: &str, src: &Path, opts: &[&str]| {
            MountBuilder::default()
                .destination(dest)
                .typ(typ)
                .source(src)
                .options(opts.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .build()
                .map_err(e)
        };
        let tmp_size = format!("size={}", self.limits.tmp_bytes);
        let mut out = vec![
            m(
                "/proc",
                "proc",
                Path::new("proc"),
                &["nosuid", "noexec", "nodev"],
            )?,
            m(
                "/dev",
                "tmpfs",
                Path::new("tmpfs"),
                &["nosuid", "strictatime", "mode=755", "size=65536k"],
            )?,
            m(
                "/dev/pts",
                "devpts",
                Path::new("devpts"),
                &[
                    "nosuid",
                    "noexec",
                    "newinstance",
                    "ptmxmode=0666",
                    "mode=0620",
                ],
            )?,
            m(
                "/dev/shm",
                "tmpfs",
                Path::new("shm"),
                &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
            )?,
            m(
                "/dev/mqueue",
                "mqueue",
                Path::new("mqueue"),
                &["nosuid", "noexec", "nodev"],
            )?,
            self.sys_mount()?,
        ];
        for dir in &paths.image_dirs {
            let dest = dir.to_string_lossy();
            out.push(m(&dest, "bind", dir, &["rbind", "ro", "nosuid", "nodev"])?);
        }
        out.push(m(
            "/etc",
            "bind",
            &paths.etc,
            &["rbind", "ro", "nosuid", "nodev", "noexec"],
        )?);
        out.push(m(
            "/tmp",
            "tmpfs",
            Path::new("tmpfs"),
            &["nosuid", "nodev", "noexec", "mode=1777", &tmp_size],
        )?);
        if let Some(vol) = &self.work_volume {
            out.push(m(
                "/work",
                "bind",
                vol,
                &["rbind", "rw", "nosuid", "nodev"],
            )?);
        }
        if let Some(env) = &self.environment {
            out.push(m(
                ENV_DIR,
                "bind",
                env,
                &["rbind", "ro", "nosuid", "nodev"],
            )?);
        }
        if let Some(dir) = &paths.secrets {
            out.push(m(
                SECRET_FILE_DIR,
                "bind",
                dir,
                &["rbind", "ro", "nosuid", "nodev", "noexec"],
            )?);
        }
        Ok(out)
    }
}

/// The generated minimal `/etc`: (file name, contents). The sandbox user is root (uid 0)
/// inside, an unprivileged uid outside; there is no name service and no DNS server.
pub fn etc_files(project: &str) -> Vec<(&'static str, String)> {
    vec![
        (
            "passwd",
            "root:x:0:0:sandbox:/work:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
                .to_string(),
        ),
        ("group", "root:x:0:\nnogroup:x:65534:\n".to_string()),
        (
            "hosts",
            format!("127.0.0.1\tlocalhost {project}\n::1\tlocalhost ip6-localhost\n"),
        ),
        ("hostname", format!("{project}\n")),
        ("resolv.conf", String::new()),
        (
            "nsswitch.conf",
            "passwd: files\ngroup: files\nhosts: files\nnetworks: files\n".to_string(),
        ),
    ]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::Value;

    fn secret(target: InjectionTarget, value: &str) -> ResolvedSecret {
        ResolvedSecret {
            secret: "s".into(),
            version: 1,
            target,
            value: Zeroizing::new(value.as_bytes().to_vec()),
        }
    }

    fn spec() -> SandboxSpec {
        SandboxSpec {
            id: "job-1".into(),
            project: "demo".into(),
            command: vec!["python3".into(), "train.py".into()],
            env: vec![("MODE".into(), "fast".into())],
            cwd: "/work".into(),
            uid_range: UidRange::for_project_index(2).unwrap(),
            limits: Limits::default(),
            work_volume: Some(PathBuf::from("/srv/enclave/volumes/demo")),
            environment: None,
            secrets: vec![
                secret(InjectionTarget::Env("DB_PASSWORD".into()), "pw"),
                secret(InjectionTarget::File("/run/secrets/key.json".into()), "{}"),
            ],
            network: NetworkMode::Isolated,
        }
    }

    fn paths() -> BundlePaths {
        BundlePaths {
            rootfs: "/b/rootfs".into(),
            etc: "/b/etc".into(),
            secrets: Some("/b/secrets".into()),
            image_dirs: vec!["/usr".into(), "/lib".into()],
            netns: None,
        }
    }

    fn json() -> Value {
        serde_json::to_value(spec().to_oci(&paths()).unwrap()).unwrap()
    }

    #[test]
    fn uid_ranges_are_disjoint_and_bounded() {
        let a = UidRange::for_project_index(0).unwrap();
        let b = UidRange::for_project_index(1).unwrap();
        assert_eq!(a.host_base, 100_000);
        assert_eq!(b.host_base, 165_536);
        assert_eq!(a.host_base + a.size, b.host_base);
        let last = UidRange::for_project_index(MAX_PROJECT_INDEX).unwrap();
        assert!(u64::from(last.host_base) + u64::from(last.size) < u64::from(u32::MAX));
        assert!(UidRange::for_project_index(MAX_PROJECT_INDEX + 1).is_err());
    }

    #[test]
    fn project_network_joins_its_namespace_and_gets_no_sysfs() {
        let sys = |j: &Value| {
            j["mounts"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["destination"] == "/sys")
                .unwrap()
                .clone()
        };
        let net = |j: &Value| {
            j["linux"]["namespaces"]
                .as_array()
                .unwrap()
                .iter()
                .find(|n| n["type"] == "network")
                .unwrap()
                .clone()
        };
        let iso = json();
        assert_eq!(sys(&iso)["type"], "sysfs");
        assert!(net(&iso).get("path").is_none());

        let mut s = spec();
        s.network = NetworkMode::Project { index: 2 };
        let mut p = paths();
        assert!(
            s.to_oci(&p).is_err(),
            "a project sandbox needs its namespace"
        );
        p.netns = Some("/dev/shm/e/netns/job-1".into());
        let j = serde_json::to_value(s.to_oci(&p).unwrap()).unwrap();
        assert_eq!(net(&j)["path"], "/dev/shm/e/netns/job-1");
        let m = sys(&j);
        assert_eq!(m["type"], "tmpfs");
        assert!(
            m["options"].as_array().unwrap().contains(&"ro".into()),
            "{m}"
        );
        assert!(
            spec().to_oci(&p).is_err(),
            "an isolated sandbox joins no namespace"
        );
    }

    #[test]
    fn namespaces_and_uid_mapping() {
        let j = json();
        let mut ns: Vec<&str> = j["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["type"].as_str().unwrap())
            .collect();
        ns.sort();
        assert_eq!(
            ns,
            ["cgroup", "ipc", "mount", "network", "pid", "user", "uts"]
        );
        for n in j["linux"]["namespaces"].as_array().unwrap() {
            assert!(n.get("path").is_none(), "joins an existing namespace: {n}");
        }
        for m in ["uidMappings", "gidMappings"] {
            assert_eq!(
                j["linux"][m],
                serde_json::json!([{"containerID": 0, "hostID": 231072, "size": 65536}])
            );
        }
    }

    #[test]
    fn no_capabilities_no_new_privs_seccomp() {
        let j = json();
        let p = &j["process"];
        assert_eq!(p["noNewPrivileges"], true);
        for set in [
            "bounding",
            "effective",
            "inheritable",
            "permitted",
            "ambient",
        ] {
            assert_eq!(p["capabilities"][set], serde_json::json!([]), "{set}");
        }
        assert_eq!(p["user"]["uid"], 0);
        assert_eq!(j["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ERRNO");
        let rl: Vec<(String, u64)> = p["rlimits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["type"].as_str().unwrap().to_string(),
                    r["hard"].as_u64().unwrap(),
                )
            })
            .collect();
        assert!(rl.contains(&("RLIMIT_CORE".into(), 0)));
        assert!(rl.contains(&("RLIMIT_NOFILE".into(), 1024)));
        assert!(rl.contains(&("RLIMIT_NPROC".into(), 256)));
    }

    #[test]
    fn filesystem_layout() {
        let j = json();
        assert_eq!(j["root"]["readonly"], true);
        let mounts = j["mounts"].as_array().unwrap();
        let find = |d: &str| {
            mounts
                .iter()
                .find(|m| m["destination"] == d)
                .unwrap()
                .clone()
        };
        let opts = |m: &Value| -> Vec<String> {
            m["options"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| o.as_str().unwrap().to_string())
                .collect()
        };
        for d in ["/usr", "/lib", "/etc", "/run/secrets"] {
            assert!(opts(&find(d)).contains(&"ro".to_string()), "{d} writable");
        }
        assert!(opts(&find("/work")).contains(&"rw".to_string()));
        assert_eq!(find("/work")["source"], "/srv/enclave/volumes/demo");
        let tmp = opts(&find("/tmp"));
        for o in ["nosuid", "nodev", "noexec", "size=67108864"] {
            assert!(tmp.contains(&o.to_string()), "/tmp lacks {o}");
        }
        assert!(mounts.iter().all(|m| m["destination"] != "/sys/fs/cgroup"));
        let masked = j["linux"]["maskedPaths"].as_array().unwrap();
        for p in [
            "/proc/kcore",
            "/proc/keys",
            "/sys/firmware",
            "/proc/sched_debug",
        ] {
            assert!(masked.contains(&Value::from(p)), "{p}");
        }
        let ro = j["linux"]["readonlyPaths"].as_array().unwrap();
        for p in ["/proc/sys", "/proc/sysrq-trigger"] {
            assert!(ro.contains(&Value::from(p)), "{p}");
        }
        assert!(
            j["linux"].get("devices").is_none(),
            "only runc's standard nodes"
        );
    }

    #[test]
    fn limits_and_cgroup_path() {
        let j = json();
        let r = &j["linux"]["resources"];
        assert_eq!(r["memory"]["limit"], 1 << 30);
        assert_eq!(r["memory"]["swap"], 1 << 30);
        assert_eq!(r["cpu"]["quota"], 100_000);
        assert_eq!(r["cpu"]["period"], 100_000);
        assert_eq!(r["pids"]["limit"], 256);
        assert_eq!(r["devices"][0]["allow"], false);
        assert_eq!(j["linux"]["cgroupsPath"], "/enclave/job-1");
    }

    #[test]
    fn env_holds_secrets_and_files_are_listed() {
        let j = json();
        let env: Vec<&str> = j["process"]["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert!(env.contains(&"DB_PASSWORD=pw"));
        assert!(env.contains(&"MODE=fast"));
        assert!(env.contains(&"HOME=/work"));
        let files = spec().secret_files().unwrap();
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].name, "key.json");
        assert!(!format!("{files:?}").contains("{}"));
    }

    type Change = Box<dyn Fn(&mut SandboxSpec)>;

    #[test]
    fn bad_input_is_refused() {
        let cases: Vec<(&str, Change)> = vec![
            ("id", Box::new(|s| s.id = "Bad_Id".into())),
            ("id", Box::new(|s| s.id = "../x".into())),
            ("command is empty", Box::new(|s| s.command.clear())),
            ("absolute", Box::new(|s| s.cwd = "work".into())),
            (
                "set by the sandbox",
                Box::new(|s| s.env.push(("LD_PRELOAD".into(), "x".into()))),
            ),
            (
                "set by the sandbox",
                Box::new(|s| s.env.push(("PATH".into(), "x".into()))),
            ),
            ("name", Box::new(|s| s.env.push(("A-B".into(), "x".into())))),
            (
                "secret file",
                Box::new(|s| {
                    s.secrets.push(secret(
                        InjectionTarget::File("/run/secrets/a/b".into()),
                        "x",
                    ))
                }),
            ),
            (
                "secret file",
                Box::new(|s| {
                    s.secrets
                        .push(secret(InjectionTarget::File("/run/secrets/..".into()), "x"))
                }),
            ),
            (
                "secret file",
                Box::new(|s| {
                    s.secrets
                        .push(secret(InjectionTarget::File("/etc/x".into()), "x"))
                }),
            ),
            (
                "twice",
                Box::new(|s| {
                    s.secrets
                        .push(secret(InjectionTarget::Env("MODE".into()), "x"))
                }),
            ),
            (
                "NUL",
                Box::new(|s| {
                    s.secrets
                        .push(secret(InjectionTarget::Env("B".into()), "a\0b"))
                }),
            ),
            ("memory", Box::new(|s| s.limits.memory_bytes = 1024)),
            ("CPU", Box::new(|s| s.limits.cpu_millis = 0)),
            ("process", Box::new(|s| s.limits.pids = 1)),
            ("time", Box::new(|s| s.limits.timeout = Duration::ZERO)),
            ("/tmp", Box::new(|s| s.limits.tmp_bytes = 1 << 40)),
            ("uid range", Box::new(|s| s.uid_range.host_base = 1000)),
        ];
        for (want, change) in cases {
            let mut s = spec();
            change(&mut s);
            let err = s.to_oci(&paths()).unwrap_err().to_string();
            assert!(err.contains(want), "{want}: {err}");
        }
    }

    #[test]
    fn etc_is_minimal() {
        let files = etc_files("demo");
        let get = |n: &str| files.iter().find(|(f, _)| *f == n).unwrap().1.clone();
        assert!(get("passwd").starts_with("root:x:0:0:"));
        assert!(!get("passwd").contains("$"), "no password hashes");
        assert_eq!(get("resolv.conf"), "");
        assert!(get("hosts").contains("127.0.0.1\tlocalhost"));
        assert!(files.iter().all(|(f, _)| *f != "shadow"));
    }
}
