//! TLS 1.3 with optional mutual TLS, configured by file paths, on OpenSSL (already linked for the
//! CA; no second TLS stack to build and audit).
//!
//! | variable           | meaning                                                                  |
//! |--------------------|--------------------------------------------------------------------------|
//! | `PNC_TLS_CERT`     | server certificate chain, PEM                                            |
//! | `PNC_TLS_KEY`      | server private key, PEM                                                  |
//! | `PNC_TLS_CLIENT_CA`| CA bundle (PEM) for client certificates; enables optional mutual TLS     |
//!
//! With a client CA, clients *may* present a certificate; a verified one whose CN is a registered
//! client id authenticates as that client (no token needed). Handshakes run in their own tasks so
//! a slow or silent peer cannot hold up `accept` for everyone else.

use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use openssl::ssl::{SslAcceptor, SslFiletype, SslMethod, SslVerifyMode, SslVersion};
use tokio::net::{TcpListener, TcpStream};
use tokio_openssl::SslStream;

use super::ServeError;

/// Who is on the other end of a connection.
#[derive(Clone, Debug)]
pub struct PeerInfo {
    /// The peer's address.
    pub addr: SocketAddr,
    /// CN of a client certificate that verified against `PNC_TLS_CLIENT_CA`.
    pub client_cert_cn: Option<String>,
}

impl Connected<IncomingStream<'_, TcpListener>> for PeerInfo {
    fn connect_info(s: IncomingStream<'_, TcpListener>) -> Self {
        PeerInfo {
            addr: *s.remote_addr(),
            client_cert_cn: None,
        }
    }
}

impl Connected<IncomingStream<'_, TlsListener>> for PeerInfo {
    fn connect_info(s: IncomingStream<'_, TlsListener>) -> Self {
        s.remote_addr().clone()
    }
}

/// Where the TLS material is.
pub struct TlsConfig {
    /// Server certificate chain, PEM.
    pub cert: String,
    /// Server private key, PEM.
    pub key: String,
    /// CA bundle for client certificates (enables optional mutual TLS).
    pub client_ca: Option<String>,
}

impl TlsConfig {
    /// From `PNC_TLS_CERT`, `PNC_TLS_KEY`, `PNC_TLS_CLIENT_CA`; `None` for plain HTTP.
    pub fn from_env() -> Result<Option<TlsConfig>, ServeError> {
        let get = |n: &str| std::env::var(n).ok().filter(|s| !s.is_empty());
        match (get("PNC_TLS_CERT"), get("PNC_TLS_KEY")) {
            (Some(cert), Some(key)) => Ok(Some(TlsConfig {
                cert,
                key,
                client_ca: get("PNC_TLS_CLIENT_CA"),
            })),
            (None, None) => {
                if get("PNC_TLS_CLIENT_CA").is_some() {
                    return Err(ServeError::Config(
                        "PNC_TLS_CLIENT_CA needs PNC_TLS_CERT and PNC_TLS_KEY".into(),
                    ));
                }
                Ok(None)
            }
            _ => Err(ServeError::Config(
                "PNC_TLS_CERT and PNC_TLS_KEY go together".into(),
            )),
        }
    }

    fn acceptor(&self) -> Result<SslAcceptor, ServeError> {
        let e = |what: &str, err: openssl::error::ErrorStack| {
            ServeError::Config(format!("TLS {what}: {err}"))
        };
        let mut b =
            SslAcceptor::mozilla_modern_v5(SslMethod::tls_server()).map_err(|x| e("setup", x))?;
        b.set_min_proto_version(Some(SslVersion::TLS1_3))
            .map_err(|x| e("version", x))?;
        b.set_certificate_chain_file(&self.cert)
            .map_err(|x| e(&format!("certificate {}", self.cert), x))?;
        b.set_private_key_file(&self.key, SslFiletype::PEM)
            .map_err(|x| e(&format!("key {}", self.key), x))?;
        b.check_private_key()
            .map_err(|x| e("key does not match the certificate", x))?;
        if let Some(ca) = &self.client_ca {
            b.set_ca_file(ca)
                .map_err(|x| e(&format!("client CA {ca}"), x))?;
            // Ask for a certificate, verify it if sent, do not require one (token clients).
            b.set_verify(SslVerifyMode::PEER);
        }
        Ok(b.build())
    }
}

/// Accepts TCP connections and completes TLS handshakes in their own tasks.
pub struct TlsListener {
    rx: tokio::sync::mpsc::Receiver<(SslStream<TcpStream>, PeerInfo)>,
    local: SocketAddr,
}

impl TlsListener {
    /// Serve TLS on `tcp`.
    pub fn new(tcp: TcpListener, cfg: &TlsConfig) -> Result<TlsListener, ServeError> {
        let acceptor = cfg.acceptor()?;
        let local = tcp
            .local_addr()
            .map_err(|e| ServeError::Config(e.to_string()))?;
        let (tx, rx) = tokio::sync::mpsc::channel(256);
        tokio::spawn(async move {
            loop {
                let (sock, addr) = match tcp.accept().await {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    let Ok(ssl) = openssl::ssl::Ssl::new(acceptor.context()) else {
                        return;
                    };
                    let Ok(mut stream) = SslStream::new(ssl, sock) else {
                        return;
                    };
                    let hs = tokio::time::timeout(
                        Duration::from_secs(10),
                        Pin::new(&mut stream).accept(),
                    )
                    .await;
                    match hs {
                        Ok(Ok(())) => {
                            let cn = stream
                                .ssl()
                                .peer_certificate()
                                .filter(|_| {
                                    stream.ssl().verify_result()
                                        == openssl::x509::X509VerifyResult::OK
                                })
                                .and_then(|c| {
                                    c.subject_name()
                                        .entries_by_nid(openssl::nid::Nid::COMMONNAME)
                                        .next()
                                        .and_then(|e| {
                                            std::str::from_utf8(e.data().as_slice())
                                                .ok()
                                                .map(str::to_string)
                                        })
                                });
                            let _ = tx
                                .send((
                                    stream,
                                    PeerInfo {
                                        addr,
                                        client_cert_cn: cn,
                                    },
                                ))
                                .await;
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(peer = %addr, error = %e, "TLS handshake failed")
                        }
                        Err(_) => tracing::debug!(peer = %addr, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener { rx, local })
    }
}

impl Listener for TlsListener {
    type Io = SslStream<TcpStream>;
    type Addr = PeerInfo;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(x) => x,
            // The accept task only ends with the runtime; wait for shutdown.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(PeerInfo {
            addr: self.local,
            client_cert_cn: None,
        })
    }
}
