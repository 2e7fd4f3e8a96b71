//! Serves the SCIM router over [`enclave_scim::MemoryBackend`] on 127.0.0.1 for compliance tests.
//!
//! Usage: `SCIM_TOKEN=<token> memory_server <port>` (port 0 picks a free one). Prints
//! `ready <port>` once listening; the SCIM root is `http://127.0.0.1:<port>/scim/v2/test`.

use std::sync::Arc;

use enclave_scim::{router, MemoryBackend, ScimConfig};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = match std::env::args().nth(1) {
        Some(p) => p
            .parse()
            .map_err(|_| "the port must be a number (0 picks a free one)")?,
        None => return Err("usage: SCIM_TOKEN=<token> memory_server <port>".into()),
    };
    let token = std::env::var("SCIM_TOKEN")
        .map_err(|_| "set SCIM_TOKEN to the bearer token clients must send")?;
    if token.is_empty() {
        return Err("SCIM_TOKEN is empty".into());
    }
    let backend = Arc::new(MemoryBackend::new(token));
    let app = axum::Router::new().nest("/scim/v2/{source}", router(backend, ScimConfig::default()));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let port = listener.local_addr()?.port();
    println!("ready {port}");
    axum::serve(listener, app).await?;
    Ok(())
}
