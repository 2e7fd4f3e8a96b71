//! Bare hyper 1 + tokio-rustls HTTPS "hello" server: the benchmark anchor.
//!
//! ```text
//! hello_tls --listen 127.0.0.1:8443 --cert cert.pem --key key.pem [--workers N]
//! ```
//!
//! Answers `hello` to every request. TLS settings match `enclave-listener`
//! (rustls with aws-lc-rs, TLS 1.3 + 1.2, ALPN `http/1.1`); HTTP/1.1 with
//! keep-alive, TCP_NODELAY, multi-threaded tokio runtime.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper::body::{Body, Bytes, Frame, SizeHint};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A body of one static chunk: no allocation per response.
struct Static(Option<Bytes>);

impl Body for Static {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.take().map(|b| Ok(Frame::data(b))))
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.0.as_ref().map_or(0, |b| b.len() as u64))
    }
}

struct Args {
    listen: SocketAddr,
    cert: PathBuf,
    key: PathBuf,
    workers: Option<usize>,
}

const USAGE: &str =
    "usage: hello_tls --listen ADDR:PORT --cert CERT.pem --key KEY.pem [--workers N]";

fn parse_args() -> Result<Args, BoxError> {
    let mut listen = None;
    let mut cert = None;
    let mut key = None;
    let mut workers = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))
        };
        match flag.as_str() {
            "--listen" => listen = Some(value()?.parse::<SocketAddr>()?),
            "--cert" => cert = Some(PathBuf::from(value()?)),
            "--key" => key = Some(PathBuf::from(value()?)),
            "--workers" => workers = Some(value()?.parse::<usize>()?),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}\n{USAGE}").into()),
        }
    }
    Ok(Args {
        listen: listen.ok_or(USAGE)?,
        cert: cert.ok_or(USAGE)?,
        key: key.ok_or(USAGE)?,
        workers,
    })
}

fn tls_config(args: &Args) -> Result<Arc<ServerConfig>, BoxError> {
    let certs = CertificateDer::pem_file_iter(&args.cert)
        .map_err(|e| format!("{}: {e}", args.cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", args.cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(&args.key)
        .map_err(|e| format!("{}: {e}", args.key.display()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

async fn run(args: Args) -> Result<(), BoxError> {
    let acceptor = TlsAcceptor::from(tls_config(&args)?);
    let listener = TcpListener::bind(args.listen).await?;
    println!("hello_tls listening on https://{}", listener.local_addr()?);
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                eprintln!("accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(stream).await else {
                return;
            };
            let service = service_fn(|_req: Request<hyper::body::Incoming>| async {
                Ok::<_, Infallible>(Response::new(Static(Some(Bytes::from_static(b"hello")))))
            });
            let _ = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(tls), service)
                .await;
        });
    }
}

fn main() -> Result<(), BoxError> {
    let args = parse_args()?;
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if let Some(n) = args.workers {
        runtime.worker_threads(n.max(1));
    }
    runtime.build()?.block_on(run(args))
}
