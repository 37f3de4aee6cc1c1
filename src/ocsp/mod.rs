//! OCSP responder (RFC 6960 / RFC 5019) for every CA this service holds.
//!
//! - [`wire`]: DER parsing and encoding (no I/O).
//! - [`responder`]: issuer index, delegated signers, pre-produced responses and the in-memory
//!   cache, background refresh and signer rotation. Signatures come from the CA
//!   (`Ca::sign_ocsp`), rows from typed store functions (`crate::store::ocsp`).
//! - [`budget`]: how much HSM time anonymous callers' live signatures may take.
//! - [`negative`]: signed "unknown" answers kept briefly for never-issued serials.
//! - [`freshness`]: the cross-replica protocol that keeps every replica from answering "good"
//!   once a revocation returned (revocation epoch + replica leases).
//! - [`http`]: `POST /ocsp`, `GET /ocsp/{base64}` (what an answer looks like over HTTP).
//! - [`ocpp`]: OCPP 2.0.1 GetCertificateStatus / OCPP 2.1 GetCertificateChainStatus lookups.

pub mod budget;
pub mod freshness;
pub mod http;
pub mod negative;
pub mod ocpp;
pub mod responder;
pub mod wire;

pub use http::routes;
pub use responder::Responder;
