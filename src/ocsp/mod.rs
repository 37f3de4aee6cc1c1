//! OCSP responder (RFC 6960 / RFC 5019) for every CA this service holds.
//!
//! - [`wire`]: DER parsing and encoding (no I/O).
//! - [`responder`]: issuer index, delegated signers, pre-produced responses and the in-memory
//!   cache, background refresh and signer rotation.
//! - [`sync`]: the `ocsp_*` tables and the cross-replica freshness protocol (revocation epoch +
//!   replica leases; see that module).
//! - [`http`]: `POST /ocsp`, `GET /ocsp/{base64}` (what an answer looks like over HTTP).
//! - [`server`]: the plain-HTTP/1.1 accept loop of `serve`, with a direct path for OCSP requests.
//! - [`ocpp`]: OCPP 2.0.1 GetCertificateStatus / OCPP 2.1 GetCertificateChainStatus lookups.
//! - [`settings`]: the `[ocsp]` settings section.

pub mod http;
pub mod ocpp;
pub mod responder;
pub mod server;
pub mod settings;
pub mod sync;
pub mod wire;

pub use http::routes;
pub use responder::{Responder, on_issued, on_revoked};
pub use settings::{OcspSettings, SignWith};

/// Start the responder of a `serve` process (join the replica set, warm the cache, spawn the
/// background tasks) and install it for this process.
pub async fn start(ca: &crate::ca::Ca, settings: &OcspSettings) -> anyhow::Result<Responder> {
    Responder::new(ca.clone(), settings.clone()).start().await
}
