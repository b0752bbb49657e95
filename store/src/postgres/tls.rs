//! TLS to PostgreSQL over rustls, with libpq's `sslmode` meanings.
//!
//! | `sslmode` | encrypted | server certificate checked |
//! |---|---|---|
//! | `disable` | never | — |
//! | `prefer` (default) | if the server offers TLS | no |
//! | `require` | always | no; against `sslrootcert` if given (as libpq) |
//! | `verify-ca` | always | signed by `sslrootcert` |
//! | `verify-full` | always | signed by `sslrootcert` and naming the host |
//!
//! `sslcert` and `sslkey` (PEM) present a client certificate. tokio-postgres itself knows
//! only `disable`, `prefer` and `require`: [`TlsSettings::split_off`] takes ds's reading of
//! the parameters out of the URL and hands tokio-postgres the mode it knows, and
//! [`Connector`] does the checking. Channel binding is not offered (SCRAM runs without it).

use std::fmt;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect};

use super::StoreError;

/// How a connection uses TLS: libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SslMode {
    /// Plain TCP only.
    Disable,
    /// TLS if the server offers it, without checking its certificate (libpq's default).
    #[default]
    Prefer,
    /// TLS or no connection; the certificate is checked only if a root certificate is given.
    Require,
    /// TLS, with a server certificate signed by the root certificate.
    VerifyCa,
    /// TLS, with a server certificate signed by the root certificate and naming the host.
    VerifyFull,
}

impl SslMode {
    fn parse(text: &str) -> Result<SslMode, String> {
        Ok(match text {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            "allow" => {
                return Err(
                    "sslmode=allow is not supported: use prefer (TLS when offered) or disable"
                        .into(),
                );
            }
            other => {
                return Err(format!(
                    "sslmode {other:?} must be one of disable, prefer, require, verify-ca, verify-full"
                ));
            }
        })
    }

    /// The mode as written in a URL.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The TLS parameters of a `postgres://` URL.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsSettings {
    /// `sslmode`.
    pub mode: SslMode,
    /// `sslrootcert=PATH`: the certificates (PEM) a server certificate must chain to.
    pub root_cert: Option<PathBuf>,
    /// `sslcert=PATH`: the client certificate chain (PEM) to present.
    pub client_cert: Option<PathBuf>,
    /// `sslkey=PATH`: the client certificate's private key (PEM).
    pub client_key: Option<PathBuf>,
}

impl TlsSettings {
    /// Takes the TLS parameters out of a URL's query pairs.
    pub(super) fn split_off(pairs: &mut Vec<&str>) -> Result<TlsSettings, String> {
        let mut settings = TlsSettings::default();
        let mut error = None;
        pairs.retain(|pair| {
            let Some((name, value)) = pair.split_once('=') else {
                return true;
            };
            let path = || Some(PathBuf::from(decode(value)));
            match name {
                "sslmode" => match SslMode::parse(value) {
                    Ok(mode) => settings.mode = mode,
                    Err(err) => error = Some(err),
                },
                "sslrootcert" => settings.root_cert = path(),
                "sslcert" => settings.client_cert = path(),
                "sslkey" => settings.client_key = path(),
                _ => return true,
            }
            false
        });
        if let Some(err) = error {
            return Err(err);
        }
        if settings.client_cert.is_some() != settings.client_key.is_some() {
            return Err("sslcert and sslkey go together: give both or neither".into());
        }
        if settings.root_cert.as_deref() == Some(Path::new("system")) {
            return Err(
                "sslrootcert=system is not supported: name a PEM file of root certificates".into(),
            );
        }
        if matches!(settings.mode, SslMode::VerifyCa | SslMode::VerifyFull)
            && settings.root_cert.is_none()
        {
            return Err(format!(
                "sslmode={} needs sslrootcert=PATH: the CA certificate(s) that must have signed the server's",
                settings.mode
            ));
        }
        Ok(settings)
    }

    /// The `sslmode` to hand tokio-postgres, which knows only `disable`, `prefer` and
    /// `require`: the verifying modes are `require` there, and [`Connector`] verifies.
    pub(super) fn wire_mode(&self) -> tokio_postgres::config::SslMode {
        use tokio_postgres::config::SslMode as Wire;
        match self.mode {
            SslMode::Disable => Wire::Disable,
            SslMode::Prefer => Wire::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => Wire::Require,
        }
    }

    /// The connector these settings describe: files read and checked now, so that a missing
    /// or malformed certificate is reported when the store opens, naming the file.
    pub(super) fn connector(&self) -> Result<Connector, StoreError> {
        if self.mode == SslMode::Disable {
            return Ok(Connector { config: None });
        }
        // ring, not aws-lc-rs: no cmake or assembler at build time. (rustls deprecates it for
        // lacking post-quantum key exchange, which PostgreSQL servers do not offer yet.)
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let roots = match &self.root_cert {
            Some(path) => {
                let mut roots = RootCertStore::empty();
                for cert in read_certs(path, "sslrootcert")? {
                    roots.add(cert).map_err(|err| {
                        invalid(format!(
                            "sslrootcert {}: not a usable CA certificate: {err}",
                            path.display()
                        ))
                    })?;
                }
                Some(Arc::new(roots))
            }
            None => None,
        };
        let verifier: Arc<dyn ServerCertVerifier> = match (self.mode, roots) {
            (SslMode::Prefer, _) | (SslMode::Require, None) => Arc::new(Unchecked {
                provider: provider.clone(),
            }),
            (mode, Some(roots)) => {
                let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                    .build()
                    .map_err(|err| invalid(format!("sslrootcert: {err}")))?;
                Arc::new(Verified {
                    webpki,
                    check_name: mode == SslMode::VerifyFull,
                })
            }
            (SslMode::VerifyCa | SslMode::VerifyFull | SslMode::Disable, None) => {
                unreachable!("refused when the URL was parsed")
            }
        };
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|err| invalid(format!("TLS: {err}")))?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let config = match (&self.client_cert, &self.client_key) {
            (Some(cert), Some(key)) => {
                let chain = read_certs(cert, "sslcert")?;
                let key = PrivateKeyDer::from_pem_file(key).map_err(|err| {
                    invalid(format!(
                        "sslkey {}: no private key read (PEM): {err}",
                        key.display()
                    ))
                })?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|err| invalid(format!("sslcert/sslkey: {err}")))?
            }
            _ => builder.with_no_client_auth(),
        };
        Ok(Connector {
            config: Some((Arc::new(config), self.mode == SslMode::VerifyFull)),
        })
    }
}

/// Percent-decodes a URL parameter's value (a path may hold `%2F` and the like).
fn decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn invalid(message: String) -> StoreError {
    StoreError::Unavailable(message)
}

fn read_certs(path: &Path, parameter: &str) -> Result<Vec<CertificateDer<'static>>, StoreError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|err| {
            invalid(format!(
                "{parameter} {}: cannot read certificates (PEM): {err}",
                path.display()
            ))
        })?;
    if certs.is_empty() {
        return Err(invalid(format!(
            "{parameter} {}: no certificate in the file (PEM expected)",
            path.display()
        )));
    }
    Ok(certs)
}

/// `prefer`, and `require` without a root certificate: encrypted, the certificate unchecked
/// (as libpq), but the handshake's signatures still verified.
#[derive(Debug)]
struct Unchecked {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// `verify-ca` and `verify-full` (and `require` with a root certificate): the chain checked
/// against the roots; the host name too for `verify-full`. webpki checks the chain before the
/// name, so a name mismatch is the only error `verify-ca` forgives.
#[derive(Debug)]
struct Verified {
    webpki: Arc<WebPkiServerVerifier>,
    check_name: bool,
}

impl ServerCertVerifier for Verified {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.check_name => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// tokio-postgres's TLS hook: makes a TLS client for each connection's host.
#[derive(Clone)]
pub(super) struct Connector {
    /// The client configuration and whether it checks the host name (`verify-full`);
    /// `None` for `sslmode=disable` (tokio-postgres then never uses TLS).
    config: Option<(Arc<ClientConfig>, bool)>,
}

impl<S> MakeTlsConnect<S> for Connector
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = TlsStream<S>;
    type TlsConnect = HostConnect;
    type Error = io::Error;

    // tokio-postgres makes a TLS client for every connection, even under
    // `sslmode=disable`, and then never uses it; over a Unix socket or to a bare `hostaddr`
    // it passes an empty host name. Errors wait for `connect`, which only runs once the
    // server has agreed to TLS.
    fn make_tls_connect(&mut self, host: &str) -> Result<HostConnect, io::Error> {
        let Some((config, check_name)) = self.config.clone() else {
            return Ok(HostConnect(Err(
                "TLS asked for under sslmode=disable".into()
            )));
        };
        // With no name to check (a socket path, an address alone), any name will do for
        // the modes that do not check it.
        let name = match (host, check_name) {
            ("", false) => Ok(ServerName::try_from("localhost").map_err(|e| e.to_string())),
            ("", true) => Err(
                "sslmode=verify-full needs a host name to verify: set host= (not only \
                 hostaddr=, nor a socket path)"
                    .to_string(),
            ),
            (host, _) => Ok(ServerName::try_from(host.to_string())
                .map_err(|err| format!("host {host:?} is not a valid TLS server name: {err}"))),
        };
        Ok(HostConnect(match name {
            Ok(Ok(name)) => Ok((config, name)),
            Ok(Err(message)) | Err(message) => Err(message),
        }))
    }
}

/// A TLS client for one host, or why there can be none.
pub(super) struct HostConnect(Result<(Arc<ClientConfig>, ServerName<'static>), String>);

impl<S> TlsConnect<S> for HostConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = TlsStream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<TlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let (config, name) = self.0.map_err(io::Error::other)?;
            let stream = tokio_rustls::TlsConnector::from(config)
                .connect(name, stream)
                .await?;
            Ok(TlsStream(Box::new(stream)))
        })
    }
}

/// An established TLS connection (boxed: a rustls connection is large, and futures hold it).
pub(super) struct TlsStream<S>(Box<tokio_rustls::client::TlsStream<S>>);

impl<S: AsyncRead + AsyncWrite + Unpin> tokio_postgres::tls::TlsStream for TlsStream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for TlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for TlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(query: &str) -> Result<(TlsSettings, &'static str, Vec<&str>), String> {
        let mut pairs: Vec<&str> = query.split('&').collect();
        let settings = TlsSettings::split_off(&mut pairs)?;
        let wire = match settings.wire_mode() {
            tokio_postgres::config::SslMode::Disable => "disable",
            tokio_postgres::config::SslMode::Prefer => "prefer",
            _ => "require",
        };
        Ok((settings, wire, pairs))
    }

    #[test]
    fn reads_libpq_parameters() {
        let (settings, wire, rest) =
            split("sslmode=verify-full&sslrootcert=/etc/ca%20dir/ca.pem&connect_timeout=5")
                .unwrap();
        assert_eq!(settings.mode, SslMode::VerifyFull);
        assert_eq!(
            settings.root_cert.as_deref(),
            Some(Path::new("/etc/ca dir/ca.pem"))
        );
        assert_eq!((wire, rest), ("require", vec!["connect_timeout=5"]));
        let (settings, wire, _) = split("connect_timeout=5").unwrap();
        assert_eq!((settings.mode, wire), (SslMode::Prefer, "prefer"));
        assert_eq!(split("sslmode=disable").unwrap().1, "disable");
    }

    #[test]
    fn refuses_what_libpq_would_not_do_here() {
        for (query, says) in [
            ("sslmode=verify-ca", "needs sslrootcert"),
            ("sslmode=verify-full", "needs sslrootcert"),
            ("sslmode=strict", "must be one of"),
            ("sslmode=allow", "not supported"),
            ("sslcert=a.pem", "go together"),
            ("sslmode=verify-ca&sslrootcert=system", "system"),
        ] {
            let err = split(query).unwrap_err();
            assert!(err.contains(says), "{query}: {err}");
        }
    }

    #[test]
    fn a_missing_or_empty_certificate_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let settings = TlsSettings {
            mode: SslMode::VerifyFull,
            root_cert: Some(missing.clone()),
            ..TlsSettings::default()
        };
        let err = settings.connector().err().unwrap().to_string();
        assert!(err.contains("missing.pem"), "{err}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let settings = TlsSettings {
            root_cert: Some(empty),
            ..settings
        };
        let err = settings.connector().err().unwrap().to_string();
        assert!(err.contains("no certificate"), "{err}");
    }
}
