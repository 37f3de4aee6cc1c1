//! TLS 1.3 with optional mutual TLS, configured by file paths, on OpenSSL (already linked for the
//! CA; no second TLS stack to build and audit).
//!
//! | variable           | meaning                                                                  |
//! |--------------------|--------------------------------------------------------------------------|
//! | `PNC_TLS_CERT`     | server certificate chain, PEM                                            |
//! | `PNC_TLS_KEY`      | server private key, PEM                                                  |
//! | `PNC_TLS_CLIENT_CA`| CA bundle (PEM) for client certificates; enables optional mutual TLS     |
//!
//! With a client CA, clients *may* present a certificate. One that verifies reaches the API as
//! [`super::Peer::client_cert`]; it authenticates only as the client it was registered for
//! (`client add --cert`), by its exact fingerprint. Handshakes run in their own tasks, under the
//! connection cap and a deadline, so a slow or silent peer cannot hold up anyone else.

use std::pin::Pin;
use std::sync::Arc;

use openssl::ssl::{SslAcceptor, SslFiletype, SslMethod, SslVerifyMode, SslVersion};
use tokio::net::TcpListener;
use tokio_openssl::SslStream;

use super::{App, Conn, Limits, Peer, serve_connection};
use crate::config::ConfigError;

/// Where the TLS material is.
#[derive(Clone, Debug)]
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
    pub fn from_env() -> Result<Option<TlsConfig>, ConfigError> {
        let get = |n: &str| std::env::var(n).ok().filter(|s| !s.is_empty());
        match (get("PNC_TLS_CERT"), get("PNC_TLS_KEY")) {
            (Some(cert), Some(key)) => Ok(Some(TlsConfig {
                cert,
                key,
                client_ca: get("PNC_TLS_CLIENT_CA"),
            })),
            (None, None) => {
                if get("PNC_TLS_CLIENT_CA").is_some() {
                    return Err(ConfigError(
                        "PNC_TLS_CLIENT_CA needs PNC_TLS_CERT and PNC_TLS_KEY".into(),
                    ));
                }
                Ok(None)
            }
            _ => Err(ConfigError(
                "PNC_TLS_CERT and PNC_TLS_KEY go together".into(),
            )),
        }
    }

    /// The certificates of the client CA bundle, DER, in file order.
    pub fn client_ca_certs(&self) -> Result<Vec<Vec<u8>>, ConfigError> {
        let Some(path) = &self.client_ca else {
            return Ok(Vec::new());
        };
        let pem = std::fs::read(path).map_err(|e| ConfigError(format!("client CA {path}: {e}")))?;
        let certs = openssl::x509::X509::stack_from_pem(&pem)
            .map_err(|e| ConfigError(format!("client CA {path}: {e}")))?;
        certs
            .iter()
            .map(|c| {
                c.to_der()
                    .map_err(|e| ConfigError(format!("client CA {path}: {e}")))
            })
            .collect()
    }

    fn acceptor(&self) -> Result<SslAcceptor, ConfigError> {
        let e =
            |what: &str, err: openssl::error::ErrorStack| ConfigError(format!("TLS {what}: {err}"));
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

/// Serve TLS 1.3 on `listener` until `shutdown` completes.
pub async fn serve_tls(
    listener: TcpListener,
    cfg: &TlsConfig,
    app: impl App,
    limits: Limits,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), ConfigError> {
    let acceptor = cfg.acceptor()?;
    let drain_limits = limits.clone();
    let accept = async move {
        loop {
            let (sock, addr) = match listener.accept().await {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    continue;
                }
            };
            let Some(slot) = limits.admit(addr.ip()) else {
                continue;
            };
            let _ = sock.set_nodelay(true);
            let (acceptor, app, limits) = (acceptor.clone(), app.clone(), limits.clone());
            tokio::spawn(async move {
                let Ok(ssl) = openssl::ssl::Ssl::new(acceptor.context()) else {
                    return;
                };
                let Ok(mut stream) = SslStream::new(ssl, sock) else {
                    return;
                };
                match tokio::time::timeout(limits.handshake_timeout, Pin::new(&mut stream).accept())
                    .await
                {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        tracing::debug!(peer = %addr, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(peer = %addr, "TLS handshake timed out");
                        return;
                    }
                }
                let client_cert = stream
                    .ssl()
                    .peer_certificate()
                    .filter(|_| stream.ssl().verify_result() == openssl::x509::X509VerifyResult::OK)
                    .and_then(|c| c.to_der().ok())
                    .map(Arc::new);
                let conn = Conn {
                    peer: Peer { addr, client_cert },
                    limits,
                    _slot: slot,
                };
                serve_connection(stream, app, conn).await;
            });
        }
    };
    tokio::select! {
        () = accept => {}
        () = shutdown => {}
    }
    drain_limits.drain().await;
    Ok(())
}
