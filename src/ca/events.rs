//! What the CA announces: issuances and committed revocations. Observers are injected at start-up
//! (the OCSP cache and the cross-replica freshness protocol subscribe), so the CA never calls up
//! into the modules that depend on it.

use futures_util::future::BoxFuture;

use super::CaError;

/// A revocation that committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revoked {
    /// Issuing CA id.
    pub issuer_id: String,
    /// Serial, lower-case hex.
    pub serial_hex: String,
    /// The OCSP revocation epoch the revocation's transaction bumped to.
    pub epoch: i64,
}

/// Told about issuances and revocations, in subscription order.
pub trait Observer: Send + Sync {
    /// A certificate was issued and recorded. Must return at once (queue any work).
    fn issued(&self, issuer_id: &str, serial_hex: &str);

    /// A revocation committed. `Ca::revoke` returns only when every observer's future has
    /// resolved, so an observer that must hold a guarantee before the caller is answered (no
    /// replica answers "good" any more) waits here; an error is the caller's error.
    fn revoked<'a>(&'a self, ev: &'a Revoked) -> BoxFuture<'a, Result<(), CaError>>;
}
