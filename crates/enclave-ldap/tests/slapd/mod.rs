//! Test harness: a private OpenLDAP `slapd` in a temporary directory, listening only on
//! 127.0.0.1 (plain+StartTLS port and LDAPS port), with a certificate signed by a CA the
//! harness generates, the `memberof` overlay, and `tests/directory.ldif` loaded through
//! `ldapadd`. The process is killed on drop, also when a test fails.
//!
//! Needs the Debian packages `slapd` and `ldap-utils`.

#![allow(dead_code)]

use std::fs;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Suffix of the test directory.
pub const SUFFIX: &str = "dc=corp,dc=test";
/// The directory manager (rootdn) of the test directory.
pub const ADMIN_DN: &str = "cn=admin,dc=corp,dc=test";
/// The rootdn's password.
pub const ADMIN_PW: &str = "admin-secret";
/// Enclave's service account in `directory.ldif`.
pub const SERVICE_DN: &str = "cn=enclave,ou=service,dc=corp,dc=test";
/// Its password.
pub const SERVICE_PW: &str = "service-secret";

/// A running private slapd.
pub struct Slapd {
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// Port of `ldap://127.0.0.1` (plain and StartTLS).
    pub ldap_port: u16,
    /// Port of `ldaps://127.0.0.1`.
    pub ldaps_port: u16,
    /// PEM of the CA that signed slapd's certificate.
    pub ca_pem: String,
    /// PEM of an unrelated CA (for "untrusted certificate" cases).
    pub other_ca_pem: String,
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind 127.0.0.1:0: {e}"))?;
    l.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

fn ca(name: &str) -> Result<(rcgen::Certificate, rcgen::KeyPair), String> {
    let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(|e| e.to_string())?;
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    p.distinguished_name.push(rcgen::DnType::CommonName, name);
    p.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let cert = p.self_signed(&key).map_err(|e| e.to_string())?;
    Ok((cert, key))
}

impl Slapd {
    /// Generate certificates and configuration, start slapd, load `directory.ldif`.
    pub fn start() -> Result<Slapd, String> {
        let dir = tempfile::Builder::new()
            .prefix("enclave-ldap-slapd-")
            .tempdir()
            .map_err(|e| format!("tempdir: {e}"))?;
        let (ca_cert, ca_key) = ca("enclave-ldap test CA")?;
        let (other_ca, _) = ca("enclave-ldap unrelated CA")?;
        let srv_key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
        let mut p = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .map_err(|e| e.to_string())?;
        p.subject_alt_names
            .push(rcgen::SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "127.0.0.1");
        let srv_cert = p
            .signed_by(&srv_key, &ca_cert, &ca_key)
            .map_err(|e| e.to_string())?;
        let d = dir.path();
        write(&d.join("cert.pem"), &srv_cert.pem())?;
        write(&d.join("key.pem"), &srv_key.serialize_pem())?;
        fs::create_dir(d.join("data")).map_err(|e| e.to_string())?;
        let conf = format!(
            r#"include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload memberof
pidfile {d}/slapd.pid
TLSCertificateFile {d}/cert.pem
TLSCertificateKeyFile {d}/key.pem
sizelimit unlimited
database mdb
suffix "{SUFFIX}"
rootdn "{ADMIN_DN}"
rootpw {ADMIN_PW}
directory {d}/data
maxsize 67108864
overlay memberof
access to attrs=userPassword
  by anonymous auth
  by * none
access to *
  by dn.exact="{SERVICE_DN}" read
  by * none
"#,
            d = d.display()
        );
        write(&d.join("slapd.conf"), &conf)?;
        let mut s = Slapd {
            ldap_port: free_port()?,
            ldaps_port: free_port()?,
            ca_pem: ca_cert.pem(),
            other_ca_pem: other_ca.pem(),
            child: None,
            dir,
        };
        s.spawn()?;
        let ldif = ldif_path();
        s.admin("ldapadd", &["-f", &ldif.to_string_lossy()])?;
        Ok(s)
    }

    fn spawn(&mut self) -> Result<(), String> {
        let d = self.dir.path();
        let log = fs::File::create(d.join("slapd.log")).map_err(|e| e.to_string())?;
        let log2 = log.try_clone().map_err(|e| e.to_string())?;
        let urls = format!(
            "ldap://127.0.0.1:{}/ ldaps://127.0.0.1:{}/",
            self.ldap_port, self.ldaps_port
        );
        // With util-linux's setpriv, slapd also dies if the test process is killed outright
        // (Drop covers every normal and panicking exit).
        let mut cmd = if Path::new("/usr/bin/setpriv").exists() {
            let mut c = Command::new("/usr/bin/setpriv");
            c.args(["--pdeathsig", "KILL", "--", "/usr/sbin/slapd"]);
            c
        } else {
            Command::new("/usr/sbin/slapd")
        };
        let child = cmd
            .arg("-f")
            .arg(d.join("slapd.conf"))
            .args(["-h", &urls, "-d", "0"])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| {
                format!("cannot run /usr/sbin/slapd ({e}): apt-get install -y slapd ldap-utils")
            })?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    self.child = None;
                    return Err(format!(
                        "slapd exited ({status}) during start:\n{}",
                        self.log()
                    ));
                }
            }
            let up = |p: u16| TcpStream::connect(("127.0.0.1", p)).is_ok();
            if up(self.ldap_port) && up(self.ldaps_port) {
                return Ok(());
            }
            if Instant::now() > deadline {
                self.stop();
                return Err(format!("slapd did not listen within 15 s:\n{}", self.log()));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// slapd's output so far.
    pub fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = fs::File::open(self.dir.path().join("slapd.log")) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// Kill slapd (the data stays for `restart`).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start slapd again on the same ports with the same data.
    pub fn restart(&mut self) -> Result<(), String> {
        self.stop();
        self.spawn()
    }

    /// `ldap://127.0.0.1:<port>`.
    pub fn ldap_url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.ldap_port)
    }

    /// `ldaps://127.0.0.1:<port>`.
    pub fn ldaps_url(&self) -> String {
        format!("ldaps://127.0.0.1:{}", self.ldaps_port)
    }

    /// Run an ldap-utils tool (`ldapadd`, `ldapdelete`, `ldapmodify`) as the rootdn over
    /// the plain loopback port.
    pub fn admin(&self, tool: &str, args: &[&str]) -> Result<(), String> {
        let out = Command::new(tool)
            .args(["-x", "-H", &self.ldap_url(), "-D", ADMIN_DN, "-w", ADMIN_PW])
            .args(args)
            .output()
            .map_err(|e| format!("cannot run {tool} ({e}): apt-get install -y ldap-utils"))?;
        if !out.status.success() {
            return Err(format!(
                "{tool} failed: {}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(())
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.stop();
    }
}

fn write(path: &Path, content: &str) -> Result<(), String> {
    fs::write(path, content).map_err(|e| format!("write {}: {e}", path.display()))
}

/// Path of the test LDIF.
pub fn ldif_path() -> PathBuf {
    // Through the crates directory, so the end-to-end tests of `enclave` can include this
    // harness too.
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../enclave-ldap/tests/directory.ldif"
    ))
}
