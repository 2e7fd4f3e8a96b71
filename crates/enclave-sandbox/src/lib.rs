//! Enclave's workload sandbox.
//!
//! [`spec`] turns a [`SandboxSpec`] (command, project uid range, limits, work volume, resolved
//! secrets) into an OCI runtime spec — pure and unit-tested; [`seccomp`] holds the seccomp
//! allow-list as data; [`runc`] is the driver that writes the bundle and runs it with `runc`;
//! [`net`] makes the private project networks (a bridge per project, a namespace and veth pair
//! per workload) that sandboxes join.
//! Backends implement [`Runtime`], so Slurm or Kubernetes can plug in later.

pub mod net;
pub mod runc;
pub mod seccomp;
pub mod spec;

use std::time::Duration;

pub use net::NetConfig;
pub use spec::{Limits, NetworkMode, SandboxSpec, UidRange, ENV_DIR};

/// Errors of the sandbox.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The sandbox spec is not acceptable; the message says what to change.
    #[error("invalid sandbox: {0}")]
    Invalid(String),
    /// The OCI spec could not be built (a bug, or limits the spec types cannot hold).
    #[error("cannot build the OCI spec: {0}")]
    Spec(String),
    /// The runtime is missing or failed; the message says what to do.
    #[error("sandbox runtime: {0}")]
    Runtime(String),
    /// A file or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
}

impl Error {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let what = what.into();
        move |source| Error::Io { what, source }
    }
}

/// Result with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// How a workload ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The command exited with this code (128 + N when killed by signal N: 137 when the
    /// memory limit's OOM killer struck).
    Exited {
        /// Exit code.
        code: i32,
    },
    /// Killed after its time limit.
    TimedOut,
    /// Killed on request.
    Cancelled,
}

/// Whether a workload is still running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Still running.
    Running,
    /// Finished.
    Finished(Outcome),
}

/// A backend that runs sandboxes (runc now; Slurm or Kubernetes later).
pub trait Runtime: Send + Sync {
    /// Starts the workload; nothing is left behind if this fails.
    fn start(&self, spec: SandboxSpec) -> Result<Box<dyn Workload>>;
    /// Where the output of sandbox `id` is kept; it stays after the workload is deleted.
    fn log_path(&self, id: &str) -> std::path::PathBuf;
    /// Opens a TCP connection to `port` at `address` on the project network of running
    /// sandbox `id`, from inside its network namespace (what [`Workload::connect`] does,
    /// without holding the workload). An error when the backend has no project networks.
    fn dial(
        &self,
        id: &str,
        address: std::net::Ipv4Addr,
        port: u16,
        timeout: Duration,
    ) -> Result<std::net::TcpStream> {
        let _ = (address, port, timeout);
        Err(Error::Runtime(format!(
            "sandbox {id} is not on a project network"
        )))
    }
}

/// A started workload. Dropping it kills it and removes everything it used.
pub trait Workload: Send {
    /// The sandbox id.
    fn id(&self) -> &str;
    /// Running or finished (does not block).
    fn status(&mut self) -> Result<Status>;
    /// Blocks until the workload ends (or its timeout kills it, or it is cancelled).
    fn wait(&mut self) -> Result<Outcome>;
    /// A handle that cancels the workload from another thread.
    fn canceller(&self) -> Canceller;
    /// The workload's address on its project network (`None` when isolated).
    fn address(&self) -> Option<std::net::Ipv4Addr> {
        None
    }
    /// Opens a TCP connection to `port` of the workload on its project network, from inside
    /// the workload's network namespace (the host has no address on project networks, so
    /// this is the only way in; Enclave's gateway uses it). An error when the workload is
    /// isolated or has ended.
    fn connect(&self, port: u16, timeout: Duration) -> Result<std::net::TcpStream> {
        let _ = (port, timeout);
        Err(Error::Runtime(format!(
            "sandbox {} is not on a project network",
            self.id()
        )))
    }
    /// The output (stdout and stderr interleaved) so far, up to the log limit.
    fn logs(&self) -> Result<Vec<u8>>;
    /// Kills the workload if it runs and removes its container, cgroups, bundle and secrets
    /// (the log stays). Also done on drop; this reports errors.
    fn delete(&mut self) -> Result<()>;
}

/// Cancels a workload from another thread: its `wait` returns [`Outcome::Cancelled`].
#[derive(Debug, Clone, Default)]
pub struct Canceller(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Canceller {
    /// Asks for the workload to be killed; `wait` notices within [`POLL`].
    pub fn cancel(&self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Whether the workload was asked to be killed.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// How often a waiting workload checks its process, deadline and cancel flag.
pub const POLL: Duration = Duration::from_millis(20);
