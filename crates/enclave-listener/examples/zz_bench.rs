#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! Temporary local benchmark (not committed).
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args[1].as_str() {
        "server" => {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
            rt.block_on(async {
                let l = enclave_listener::bind(enclave_listener::ListenConfig {
                    addr: args[2].parse().unwrap(),
                    tls: enclave_listener::TlsMode::Files { cert: args[3].clone().into(), key: args[4].clone().into() },
                }).await.unwrap();
                let router = axum::Router::new().route("/", axum::routing::get(|| async { "hello" }));
                enclave_listener::serve(l, router, std::future::pending()).await.unwrap();
            });
        }
        "client" => {
            let addr: std::net::SocketAddr = args[2].parse().unwrap();
            let ca = &args[3];
            let conns: usize = args[4].parse().unwrap();
            let secs: u64 = args[5].parse().unwrap();
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
            rt.block_on(async move {
                let mut roots = rustls::RootCertStore::empty();
                for c in CertificateDer::pem_file_iter(ca).unwrap() { roots.add(c.unwrap()).unwrap(); }
                let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
                    .with_safe_default_protocol_versions().unwrap().with_root_certificates(roots).with_no_client_auth();
                cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
                let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
                let count = Arc::new(AtomicU64::new(0));
                let stop = Instant::now() + Duration::from_secs(secs);
                let mut tasks = vec![];
                for _ in 0..conns {
                    let connector = connector.clone();
                    let count = count.clone();
                    tasks.push(tokio::spawn(async move {
                        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
                        tcp.set_nodelay(true).unwrap();
                        let mut s = connector.connect(ServerName::try_from("localhost").unwrap(), tcp).await.unwrap();
                        let req = b"GET / HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer abcdefabcdefabcdefabcdef\r\n\r\n";
                        let mut buf = vec![0u8; 4096];
                        while Instant::now() < stop {
                            s.write_all(req).await.unwrap();
                            let mut have = 0;
                            loop {
                                let n = s.read(&mut buf[have..]).await.unwrap();
                                assert!(n > 0);
                                have += n;
                                if let Some(p) = buf[..have].windows(4).position(|w| w == b"\r\n\r\n") {
                                    if have >= p + 4 + 5 { break; }
                                }
                            }
                            count.fetch_add(1, Ordering::Relaxed);
                        }
                    }));
                }
                for t in tasks { t.await.unwrap(); }
                let n = count.load(Ordering::Relaxed);
                println!("{n} requests in {secs}s = {:.0} req/s", n as f64 / secs as f64);
            });
        }
        _ => panic!(),
    }
}
