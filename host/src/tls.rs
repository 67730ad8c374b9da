//! TLS around WebSocket connections (rustls with the ring provider).
//!
//! The WebSocket listener serves `wss://` when the config names a certificate and key,
//! because browsers on `https` pages may only open `wss://`. Dials to `wss://` URLs verify
//! the server against the built-in web roots plus an optional CA file. TLS is only the
//! outer envelope: Noise still runs end to end inside and authenticates the peer.

use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore, ServerConfig};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::error::HostError;

/// Browsers offer `http/1.1` for WebSocket over TLS; answering it keeps them happy.
const ALPN_HTTP1: &[u8] = b"http/1.1";

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn config_err(what: &str, path: &Path, e: impl std::fmt::Display) -> HostError {
    HostError::Config(format!("{what} {}: {e}", path.display()))
}

/// The listener side, from a PEM certificate chain and a PEM private key.
pub(crate) fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, HostError> {
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| config_err("TLS certificate", cert, e))?;
    if certs.is_empty() {
        return Err(config_err("TLS certificate", cert, "no CERTIFICATE block"));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| config_err("TLS key", key, e))?;
    let mut cfg = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| HostError::Config(format!("TLS: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| config_err("TLS certificate and key", cert, e))?;
    cfg.alpn_protocols = vec![ALPN_HTTP1.to_vec()];
    Ok(TlsAcceptor::from(Arc::new(cfg)))
}

/// The dialling side: the web roots, plus the certificates in `ca` if given.
pub(crate) fn connector(ca: Option<&Path>) -> Result<TlsConnector, HostError> {
    let mut roots = RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    if let Some(path) = ca {
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| config_err("tls_ca", path, e))?;
        if certs.is_empty() {
            return Err(config_err("tls_ca", path, "no CERTIFICATE block"));
        }
        for c in certs {
            roots.add(c).map_err(|e| config_err("tls_ca", path, e))?;
        }
    }
    let mut cfg = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| HostError::Config(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![ALPN_HTTP1.to_vec()];
    Ok(TlsConnector::from(Arc::new(cfg)))
}

/// The name a `wss://` server must prove: a DNS name or an IP address from the URL.
pub(crate) fn server_name(host: &str) -> Option<ServerName<'static>> {
    ServerName::try_from(host.to_string()).ok()
}

/// The byte stream under a WebSocket: plain TCP or TLS over TCP (either side).
pub(crate) enum WsIo {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::TlsStream<TcpStream>>),
}

impl AsyncRead for WsIo {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            WsIo::Plain(s) => Pin::new(s).poll_read(cx, buf),
            WsIo::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for WsIo {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            WsIo::Plain(s) => Pin::new(s).poll_write(cx, buf),
            WsIo::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            WsIo::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            WsIo::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            WsIo::Plain(s) => s.is_write_vectored(),
            WsIo::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            WsIo::Plain(s) => Pin::new(s).poll_flush(cx),
            WsIo::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            WsIo::Plain(s) => Pin::new(s).poll_shutdown(cx),
            WsIo::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
