//! A real package index for tests: `pypi-server` serving a directory of wheels on a free
//! loopback port, with no fallback to pypi.org (tests never leave the machine). Stopped when the
//! [`PyPi`] is dropped.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// Where the test wheels are when `ENCLAVE_TEST_WHEELS` is not set.
pub const DEFAULT_WHEELS: &str = "/var/cache/enclave-test/wheels";

/// A running `pypi-server`.
pub struct PyPi {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: TempDir,
}

impl PyPi {
    /// The test wheelhouse: `ENCLAVE_TEST_WHEELS`, or [`DEFAULT_WHEELS`]. Panics with what to
    /// do when it is missing.
    pub fn wheels_dir() -> PathBuf {
        let dir = std::env::var_os("ENCLAVE_TEST_WHEELS")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_WHEELS));
        let has_wheels = std::fs::read_dir(&dir).is_ok_and(|mut entries| {
            entries.any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".whl")))
        });
        assert!(
            has_wheels,
            "no test wheels in {}: run scripts/test.sh, which downloads them (tests/notebooks/wheels.txt), or set ENCLAVE_TEST_WHEELS",
            dir.display()
        );
        dir
    }

    /// Starts `pypi-server` on 127.0.0.1 serving `wheels_dir`, and waits until `/simple/`
    /// answers.
    pub fn start(wheels_dir: &Path) -> PyPi {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("pypi-server.log");
        let mut last_log = String::new();
        for _ in 0..3 {
            let port = free_port();
            let log_file = std::fs::File::create(&log).unwrap();
            let err_file = log_file.try_clone().unwrap();
            let mut child = match Command::new("pypi-server")
                .args(["run", "-i", "127.0.0.1", "-p", &port.to_string()])
                .arg("--disable-fallback")
                .args(["--backend", "simple-dir"])
                .arg(wheels_dir)
                .stdin(Stdio::null())
                .stdout(log_file)
                .stderr(err_file)
                .spawn()
            {
                Ok(c) => c,
                Err(e) => panic!(
                    "cannot start pypi-server ({e}): run scripts/test.sh, which installs it (pip install pypiserver)"
                ),
            };
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if child.try_wait().unwrap().is_some() {
                    break;
                }
                if simple_answers(port) {
                    return PyPi {
                        child,
                        port,
                        log,
                        _dir: dir,
                    };
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
            last_log = std::fs::read_to_string(&log).unwrap_or_default();
        }
        panic!("pypi-server did not answer on /simple/; its log:\n{last_log}");
    }

    /// The index URL, `http://127.0.0.1:PORT/simple/`.
    pub fn index_url(&self) -> String {
        format!("http://127.0.0.1:{}/simple/", self.port)
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for PyPi {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nobody listens on (bound and released; good enough for tests).
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn simple_answers(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    if s.write_all(b"GET /simple/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.") && &head[9..12] == b"200"
}
