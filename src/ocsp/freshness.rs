//! Freshness across replicas: no replica answers "good" from memory once a revocation has
//! returned to its caller.
//!
//! Protocol (all times are unix milliseconds of the injected clock of the process writing them;
//! the SQL is in `crate::store::ocsp`):
//! - A revocation's transaction also bumps `ocsp_state.epoch` (an UPDATE, so the row is locked)
//!   and inserts `ocsp_events(seq = epoch)`; sequence order is therefore commit order, and no
//!   revocation can commit without its event.
//! - Every serving replica has a row in `ocsp_replicas` (`acked` = last epoch it applied,
//!   `lease_until_ms`). It serves from memory only while its local lease is valid. It renews the
//!   lease in a transaction that first locks `ocsp_state` and refuses to renew when the epoch is
//!   ahead of what it has applied; so a renewal is serialised either before a revocation (then the
//!   revoker sees the lease and waits for the ack) or after it (then the replica applies the
//!   event first).
//! - The revoker then waits ([`wait_for_replicas`]) until every replica with an unexpired lease
//!   has acknowledged its epoch, or that lease has run out. Only then does `Ca::revoke` return.
//!   PostgreSQL `NOTIFY pnc_ocsp` wakes the replicas at once; SQLite replicas poll.
//!
//! Assumption: replica clocks agree with the revoker's within [`CLOCK_SKEW_MS`].

use std::time::Duration;

use futures_util::future::BoxFuture;

use crate::ca::CaError;
use crate::ca::events::{Observer, Revoked};
use crate::clock::SharedClock;
use crate::store::{Store, StoreError};

/// Tolerated clock difference between processes, added to every lease the revoker looks at.
pub const CLOCK_SKEW_MS: i64 = 500;

/// Upper bound of a revoker's wait in real time, whatever leases say (a lease is never longer).
pub const MAX_WAIT: Duration = Duration::from_secs(60);

/// Replicas that could still answer from memory without having applied `epoch`: those whose
/// lease (plus the tolerated skew) has not run out at `now_ms`.
pub async fn lagging_replicas(store: &Store, epoch: i64, now_ms: i64) -> Result<i64, StoreError> {
    store
        .ocsp_lagging_replicas(epoch, now_ms - CLOCK_SKEW_MS)
        .await
}

/// Wait until no replica can still serve a response older than `epoch` from memory. Leases are
/// judged by `clock`; the wait gives up after [`MAX_WAIT`] of real time.
pub async fn wait_for_replicas(
    store: &Store,
    clock: &SharedClock,
    epoch: i64,
) -> Result<(), StoreError> {
    let deadline = tokio::time::Instant::now() + MAX_WAIT;
    let mut pause = Duration::from_millis(1);
    loop {
        if lagging_replicas(store, epoch, clock.now_ms()).await? == 0 {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            return Err(StoreError::ReplicasLagging(format!(
                "OCSP replicas did not confirm revocation epoch {epoch} within {MAX_WAIT:?}"
            )));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// The revoker's side of the protocol, subscribed to the CA in every process (a CLI revocation
/// waits for serving replicas too).
pub struct Freshness {
    store: Store,
    clock: SharedClock,
}

impl Freshness {
    /// The protocol over `store`, judging leases by `clock`.
    pub fn new(store: Store, clock: SharedClock) -> Freshness {
        Freshness { store, clock }
    }
}

impl Observer for Freshness {
    fn issued(&self, _issuer_id: &str, _serial_hex: &str) {}

    fn revoked<'a>(&'a self, ev: &'a Revoked) -> BoxFuture<'a, Result<(), CaError>> {
        Box::pin(async move {
            let started = std::time::Instant::now();
            if let Err(e) = self.store.ocsp_notify().await {
                tracing::warn!(error = %e, "OCSP: NOTIFY failed; replicas will see the revocation at their next poll");
            }
            wait_for_replicas(&self.store, &self.clock, ev.epoch)
                .await
                .map_err(|e| match e {
                    StoreError::ReplicasLagging(m) => CaError::Propagation(m),
                    other => CaError::Store(other),
                })?;
            tracing::info!(
                epoch = ev.epoch,
                elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
                "OCSP: every replica confirmed the revocation"
            );
            Ok(())
        })
    }
}
