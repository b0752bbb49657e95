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
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
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
    /// slow clients and idle keep-alive connections alike. It is also how long an answer
    /// may make no progress because the client stopped reading.
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
        None => {
            http(
                Stalled::new(socket, header_timeout),
                app,
                header_timeout,
                stop,
            )
            .await
        }
        Some(acceptor) => {
            let handshake = async {
                if !starts_with_tls(&socket).await? {
                    refuse_plain_http(socket).await;
                    return Ok(None);
                }
                acceptor.accept(socket).await.map(Some)
            };
            match tokio::time::timeout(header_timeout, handshake).await {
                Ok(Ok(Some(stream))) => {
                    http(
                        Stalled::new(stream, header_timeout),
                        app,
                        header_timeout,
                        stop,
                    )
                    .await
                }
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

/// A plain-HTTP request on the TLS port: a plain-HTTP answer saying so, then close. The
/// request is read first (briefly, and only so much): closing a socket with unread bytes
/// resets the connection, and the client could lose the answer.
async fn refuse_plain_http(mut socket: TcpStream) {
    let mut scratch = [0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_millis(200), async {
        let mut read = 0;
        while read < 64 << 10 {
            match tokio::io::AsyncReadExt::read(&mut socket, &mut scratch).await {
                Ok(0) | Err(_) => break,
                Ok(n) => read += n,
            }
            if scratch.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
    })
    .await;
    let body =
        r#"{"error":{"kind":"tls_required","message":"this port speaks HTTPS: use https://"}}"#;
    let answer = format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = socket.write_all(answer.as_bytes()).await;
    let _ = socket.shutdown().await;
}

async fn http<S>(
    io: Stalled<S>,
    app: Router,
    header_timeout: Duration,
    mut stop: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = TowerToHyperService::new(app);
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        // Headers take at most this much memory per connection (hyper's default, 400 KiB,
        // times thousands of connections is outside every other bound).
        .max_buf_size(MAX_HEADER_BYTES)
        .keep_alive(true)
        .serve_connection(TokioIo::new(io), service);
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

/// Most bytes of request headers buffered per connection.
const MAX_HEADER_BYTES: usize = 64 << 10;

/// A socket whose writes fail once they have made no progress for a while: a client that
/// stops reading its answer would otherwise hold its connection (and its permit) forever,
/// since hyper's header timeout covers only reading.
struct Stalled<S> {
    inner: S,
    limit: Duration,
    /// Started when a write first could not proceed; cleared by progress.
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<S> Stalled<S> {
    fn new(inner: S, limit: Duration) -> Stalled<S> {
        Stalled {
            inner,
            limit,
            stalled: None,
        }
    }

    /// After a write returned `Pending`: an error once the stall has lasted the limit.
    fn check_stall(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let limit = self.limit;
        let timer = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client stopped reading its answer",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Stalled<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Stalled<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write(cx, buf) {
            Poll::Pending => self.check_stall(cx).map(|result| result.map(|()| 0)),
            ready => {
                self.stalled = None;
                ready
            }
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_flush(cx) {
            Poll::Pending => self.check_stall(cx),
            ready => {
                self.stalled = None;
                ready
            }
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write_vectored(cx, bufs) {
            Poll::Pending => self.check_stall(cx).map(|result| result.map(|()| 0)),
            ready => {
                self.stalled = None;
                ready
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

fn log_end(result: Result<(), hyper::Error>) {
    if let Err(err) = result {
        tracing::debug!(target: "ads::http", "connection ended: {err}");
    }
}
