//! Certificates: self-signed generation, PEM loading, rustls configuration.

use std::fs;
use std::io::{self, Write};
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyPair, KeyUsagePurpose,
};
use rustls::client::danger::ServerCertVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::{CertificateError, RootCertStore, ServerConfig};
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use zeroize::Zeroizing;

use crate::ListenError;

pub(crate) const CERT_FILE: &str = "cert.pem";
pub(crate) const KEY_FILE: &str = "key.pem";

/// Self-signed certificates are valid this long.
const SELF_SIGNED_VALIDITY_DAYS: i64 = 365;
/// A self-signed certificate expiring sooner than this is regenerated.
const RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 3600);

/// The aws-lc-rs provider; never ring, never the process-wide default.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Builds the server configuration: aws-lc-rs, TLS 1.3 + 1.2, ALPN `http/1.1`.
pub(crate) fn server_config(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<ServerConfig, rustls::Error> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Where the certificate and key come from.
#[derive(Debug, Clone)]
pub(crate) enum Source {
    SelfSigned {
        dir: PathBuf,
        cert: PathBuf,
        key: PathBuf,
        /// Listen IP to add to the SANs (when not unspecified).
        extra_ip: Option<IpAddr>,
        /// More DNS names to add to the SANs.
        names: Vec<String>,
    },
    Files {
        cert: PathBuf,
        key: PathBuf,
    },
}

impl Source {
    pub(crate) fn self_signed(dir: PathBuf, extra_ip: Option<IpAddr>, names: Vec<String>) -> Self {
        Source::SelfSigned {
            cert: dir.join(CERT_FILE),
            key: dir.join(KEY_FILE),
            dir,
            extra_ip,
            names,
        }
    }

    fn cert_path(&self) -> &Path {
        match self {
            Source::SelfSigned { cert, .. } | Source::Files { cert, .. } => cert,
        }
    }

    fn load(&self) -> Result<ServerConfig, ListenError> {
        match self {
            Source::SelfSigned {
                dir,
                cert,
                key,
                extra_ip,
                names,
            } => {
                ensure_self_signed(dir, cert, key, *extra_ip, names)?;
                load_pair(cert, key)
            }
            Source::Files { cert, key } => load_pair(cert, key),
        }
    }
}

/// The certificate source and the configuration currently handed to new
/// connections.
#[derive(Debug)]
pub(crate) struct TlsState {
    source: Source,
    current: RwLock<Arc<ServerConfig>>,
}

impl TlsState {
    pub(crate) fn new(source: Source) -> Result<Self, ListenError> {
        let config = source.load()?;
        Ok(TlsState {
            source,
            current: RwLock::new(Arc::new(config)),
        })
    }

    pub(crate) fn cert_path(&self) -> &Path {
        self.source.cert_path()
    }

    /// The configuration for a new connection (a read lock and an `Arc` clone).
    pub(crate) fn current(&self) -> Arc<ServerConfig> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Loads the files again; swaps only on success.
    pub(crate) fn reload(&self) -> Result<(), ListenError> {
        let fresh = Arc::new(self.source.load()?);
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = fresh;
        tracing::info!(cert = %self.cert_path().display(), "TLS certificate reloaded");
        Ok(())
    }
}

fn file_err<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> ListenError + 'a {
    move |source| ListenError::File {
        action,
        path: path.to_path_buf(),
        source,
    }
}

fn read_file(path: &Path) -> Result<Vec<u8>, ListenError> {
    fs::read(path).map_err(file_err("read", path))
}

/// Loads a PEM certificate chain and private key and builds the config.
fn load_pair(cert_path: &Path, key_path: &Path) -> Result<ServerConfig, ListenError> {
    let cert_pem = read_file(cert_path)?;
    let certs = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ListenError::InvalidPem {
            path: cert_path.to_path_buf(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(ListenError::NoCertificate {
            path: cert_path.to_path_buf(),
        });
    }

    let key_pem = Zeroizing::new(read_file(key_path)?);
    warn_if_world_readable(key_path);
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| match e {
        pem::Error::NoItemsFound => ListenError::NoPrivateKey {
            path: key_path.to_path_buf(),
        },
        other => ListenError::InvalidPem {
            path: key_path.to_path_buf(),
            reason: other.to_string(),
        },
    })?;

    server_config(certs, key).map_err(|source| ListenError::Tls {
        cert: cert_path.to_path_buf(),
        key: key_path.to_path_buf(),
        source,
    })
}

fn warn_if_world_readable(key_path: &Path) {
    if let Ok(meta) = fs::metadata(key_path) {
        if meta.permissions().mode() & 0o004 != 0 {
            tracing::warn!(
                key = %key_path.display(),
                "TLS private key file is world-readable; chmod 600 it"
            );
        }
    }
}

fn exists(path: &Path) -> Result<bool, ListenError> {
    path.try_exists().map_err(file_err("inspect", path))
}

/// Makes sure `dir` holds a usable self-signed pair, generating one if the
/// certificate is missing or expires within [`RENEW_BEFORE`].
fn ensure_self_signed(
    dir: &Path,
    cert: &Path,
    key: &Path,
    extra_ip: Option<IpAddr>,
    names: &[String],
) -> Result<(), ListenError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(file_err("create directory", dir))?;

    if exists(cert)? {
        if !exists(key)? {
            return Err(ListenError::File {
                action: "read",
                path: key.to_path_buf(),
                source: io::Error::new(
                    io::ErrorKind::NotFound,
                    format!(
                        "private key missing next to {}; delete that certificate \
                         to generate a new pair",
                        cert.display()
                    ),
                ),
            });
        }
        let missing = names_missing(cert, names)?;
        if !expires_soon(cert)? && missing.is_empty() {
            return Ok(());
        }
        if missing.is_empty() {
            tracing::info!(
                cert = %cert.display(),
                "self-signed TLS certificate expired or expiring soon; generating a new one"
            );
        } else {
            tracing::info!(
                cert = %cert.display(),
                names = %missing.join(" "),
                "self-signed TLS certificate does not cover every name; generating a new one"
            );
        }
    }
    generate_self_signed(cert, key, extra_ip, names)
}

/// The names of `names` the certificate in `cert_path` does not cover (a wildcard is checked
/// with one label in its place). An unreadable certificate covers everything here, so that
/// loading it reports the precise error.
fn names_missing(cert_path: &Path, names: &[String]) -> Result<Vec<String>, ListenError> {
    let mut missing = Vec::new();
    for n in names {
        let probe = match n.strip_prefix("*.") {
            Some(rest) => format!("probe.{rest}"),
            None => n.clone(),
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let covered = match verify_at(cert_path, &probe, now)? {
            Some(Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            ))) => false,
            // Unparseable, or a name that is not a DNS name: not ours to judge here.
            Some(_) | None => true,
        };
        if !covered {
            missing.push(n.clone());
        }
    }
    Ok(missing)
}

/// Whether the (self-signed) certificate in `cert` is invalid at now +
/// [`RENEW_BEFORE`]. Unparseable files return `false` so that loading them
/// reports the precise error instead of silently replacing them.
fn expires_soon(cert_path: &Path) -> Result<bool, ListenError> {
    let horizon = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .saturating_add(RENEW_BEFORE);
    Ok(matches!(
        verify_at(cert_path, "localhost", horizon)?,
        Some(Err(rustls::Error::InvalidCertificate(
            CertificateError::Expired | CertificateError::ExpiredContext { .. }
        )))
    ))
}

/// Verifies the (self-signed) certificate in `cert_path` for `name` at `when` (since the
/// epoch), trusting itself; `None` when it cannot be parsed or `name` is no server name.
fn verify_at(
    cert_path: &Path,
    name: &str,
    when: Duration,
) -> Result<Option<Result<(), rustls::Error>>, ListenError> {
    let pem = read_file(cert_path)?;
    let Some(Ok(cert)) = CertificateDer::pem_slice_iter(&pem).next() else {
        return Ok(None);
    };
    let mut roots = RootCertStore::empty();
    if roots.add(cert.clone()).is_err() {
        return Ok(None);
    }
    let Ok(verifier) =
        WebPkiServerVerifier::builder_with_provider(roots.into(), provider()).build()
    else {
        return Ok(None);
    };
    let Ok(name) = ServerName::try_from(name.to_string()) else {
        return Ok(None);
    };
    let result = verifier
        .verify_server_cert(&cert, &[], &name, &[], UnixTime::since_unix_epoch(when))
        .map(|_| ());
    Ok(Some(result))
}

fn generate_self_signed(
    cert_path: &Path,
    key_path: &Path,
    extra_ip: Option<IpAddr>,
    names: &[String],
) -> Result<(), ListenError> {
    let key_pair = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut sans = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    if let Some(ip) = extra_ip {
        let ip = ip.to_string();
        if !sans.contains(&ip) {
            sans.push(ip);
        }
    }
    for n in names {
        if !sans.contains(n) {
            sans.push(n.clone());
        }
    }
    let mut params = CertificateParams::new(sans)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Enclave");
    dn.push(DnType::CommonName, "Enclave self-signed certificate");
    params.distinguished_name = dn;
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(SELF_SIGNED_VALIDITY_DAYS);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.self_signed(&key_pair)?;

    let key_pem = Zeroizing::new(key_pair.serialize_pem());
    // Key first: the certificate's presence marks a complete pair.
    write_atomic(key_path, key_pem.as_bytes(), 0o600)?;
    write_atomic(cert_path, cert.pem().as_bytes(), 0o644)?;
    tracing::info!(cert = %cert_path.display(), "generated self-signed TLS certificate");
    Ok(())
}

/// Writes `data` to `path` via a temporary file created with `mode` (so the
/// content is never exposed with wider permissions) and a rename.
fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<(), ListenError> {
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(file_err("remove", &tmp)(e)),
    }
    let result = (|| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        // The creation mode is filtered by the umask; make it exact.
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.write_all(data)?;
        file.sync_all()
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(file_err("write", &tmp)(e));
    }
    fs::rename(&tmp, path).map_err(file_err("write", path))
}
