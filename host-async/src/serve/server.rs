//! The connection loop: TLS, a cap on open connections, a time limit on request headers
//! (against slow and idle clients), and a drain deadline at shutdown.
//!
//! axum's own `serve` has none of the limits, so connections are served here with hyper
//! directly: each accepted socket takes a connection permit (more wait in the kernel's
//! backlog), optionally completes a TLS handshake within the header timeout, and is served
//! by hyper's HTTP/1 connection with that header timeout. At shutdown the listener closes,
//! every connection is asked to finish its request in flight and close, and whatever is
//! still open at the drain deadline is dropped.

use std::future::Future;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use super::metrics::Metrics;

/// How connections are accepted and bounded.
#[derive(Clone)]
pub struct ConnectionOptions {
    /// TLS: with it, the service speaks only HTTPS.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Longest a connection may take to deliver a request's headers, counted from when it
    /// opened or its previous answer was sent (and to finish a TLS handshake): it bounds
    /// slow clients and idle keep-alive connections alike.
    pub header_timeout: Duration,
    /// Most connections open at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// After the shutdown signal, how long requests in flight may take before the
    /// connections still open are closed.
    pub drain_timeout: Duration,
}

impl Default for ConnectionOptions {
    fn default() -> Self {
        ConnectionOptions {
            tls: None,
            header_timeout: Duration::from_secs(10),
            max_connections: 4096,
            drain_timeout: Duration::from_secs(10),
        }
    }
}

/// A certificate and key that cannot serve TLS.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TlsConfigError(String);

/// A TLS server configuration from PEM files: the certificate chain (leaf first) and its
/// private key (PKCS#8, PKCS#1 or SEC1).
pub fn tls_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, TlsConfigError> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|err| {
            TlsConfigError(format!(
                "--tls-cert {}: cannot read certificates (PEM): {err}",
                cert.display()
            ))
        })?;
    if chain.is_empty() {
        return Err(TlsConfigError(format!(
            "--tls-cert {}: no certificate in the file (PEM expected)",
            cert.display()
        )));
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|err| {
        TlsConfigError(format!(
            "--tls-key {}: no private key read (PEM): {err}",
            key.display()
        ))
    })?;
    // ring, as the PostgreSQL client: no cmake or assembler at build time.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| TlsConfigError(format!("TLS: {err}")))?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|err| {
            TlsConfigError(format!(
                "--tls-cert/--tls-key: the key does not fit the certificate, or is unusable: {err}"
            ))
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serves `app` on `listener` until `shutdown` completes, then drains.
pub(super) async fn run(
    listener: TcpListener,
    app: Router,
    options: ConnectionOptions,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let permits = Arc::new(Semaphore::new(options.max_connections.max(1)));
    let (stop_sender, stop) = watch::channel(false);
    let mut connections = JoinSet::new();
    let tls = options.tls.clone().map(tokio_rustls::TlsAcceptor::from);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let (socket, _peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(target: "ads::http", "accept failed: {err}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = socket.set_nodelay(true);
        let (app, tls, stop, metrics) = (app.clone(), tls.clone(), stop.clone(), metrics.clone());
        let header_timeout = options.header_timeout;
        connections.spawn(async move {
            let _permit = permit;
            metrics.connection_opened();
            serve_connection(socket, app, tls, header_timeout, stop).await;
            metrics.connection_closed();
        });
        // Reap finished connections so the set does not grow with the process's life.
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    let _ = stop_sender.send(true);
    let drained = tokio::time::timeout(options.drain_timeout, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            target: "ads::http",
            "closing {} connection(s) still open after the {} ms drain deadline",
            connections.len(),
            options.drain_timeout.as_millis()
        );
        connections.shutdown().await;
    }
    Ok(())
}

/// One connection: TLS (if configured), then HTTP/1 until it closes or shutdown asks it to.
async fn serve_connection(
    socket: TcpStream,
    app: Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
    header_timeout: Duration,
    stop: watch::Receiver<bool>,
) {
    match tls {
        None => http(TokioIo::new(socket), app, header_timeout, stop).await,
        Some(acceptor) => {
            let handshake = async {
                if !starts_with_tls(&socket).await? {
                    refuse_plain_http(socket).await;
                    return Ok(None);
                }
                acceptor.accept(socket).await.map(Some)
            };
            match tokio::time::timeout(header_timeout, handshake).await {
                Ok(Ok(Some(stream))) => http(TokioIo::new(stream), app, header_timeout, stop).await,
                Ok(Ok(None)) => {}
                Ok(Err(err)) => {
                    tracing::debug!(target: "ads::http", "TLS handshake failed: {err}");
                }
                Err(_) => tracing::debug!(target: "ads::http", "TLS handshake timed out"),
            }
        }
    }
}

/// Whether the client's first byte opens a TLS handshake record (0x16), without reading it.
async fn starts_with_tls(socket: &TcpStream) -> io::Result<bool> {
    let mut first = [0u8; 1];
    let read = socket.peek(&mut first).await?;
    Ok(read == 1 && first[0] == 0x16)
}

/// A plain-HTTP request on the TLS port: a plain-HTTP answer saying so, then close.
async fn refuse_plain_http(mut socket: TcpStream) {
    let body =
        r#"{"error":{"kind":"tls_required","message":"this port speaks HTTPS: use https://"}}"#;
    let answer = format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = socket.write_all(answer.as_bytes()).await;
    let _ = socket.shutdown().await;
}

async fn http<I>(io: I, app: Router, header_timeout: Duration, mut stop: watch::Receiver<bool>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = TowerToHyperService::new(app);
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(true)
        .serve_connection(io, service);
    let mut connection = std::pin::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => log_end(result),
        () = stopped(&mut stop) => {
            // Finish the request in flight (if any), then close.
            connection.as_mut().graceful_shutdown();
            log_end(connection.await);
        }
    }
}

/// Completes once shutdown is signalled (or the signaller is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    while !*stop.borrow_and_update() {
        if stop.changed().await.is_err() {
            return;
        }
    }
}

fn log_end(result: Result<(), hyper::Error>) {
    if let Err(err) = result {
        tracing::debug!(target: "ads::http", "connection ended: {err}");
    }
}
