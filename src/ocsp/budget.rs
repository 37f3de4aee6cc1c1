//! The share of the HSM that anonymous OCSP callers can spend: live signatures (a nonce to
//! echo, several CertIDs, a serial we never issued) run at most `live_sign_concurrency` at a
//! time, at most `live_sign_rate` per second overall and `live_sign_per_ip` per client address.
//! Beyond it the responder does not sign: a nonce is dropped and the pre-produced answer served
//! (RFC 5019 §2.1.1 lets a responder ignore nonces), an unknown serial or a multi-CertID request
//! gets the unsigned `tryLater`. Pre-production of our own certificates is not part of this
//! budget: it is bounded by what we issue, not by what anyone sends.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{Semaphore, SemaphorePermit};

use crate::client_ip::ClientIp;
use crate::config::OcspSettings;
use crate::ratelimit::{DEFAULT_MAX_KEYS, Keyed};

/// Counters of live signing, for `/metrics`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LiveStats {
    /// Live signatures made for requests.
    pub signed: u64,
    /// Requests that wanted a live signature and did not get one (over budget).
    pub refused: u64,
}

/// The live-signing budget of one responder.
pub struct LiveBudget {
    slots: Semaphore,
    overall: Keyed<()>,
    per_ip: Keyed<IpAddr>,
    signed: AtomicU64,
    refused: AtomicU64,
}

/// Permission for one live signature (holds a concurrency slot until dropped).
pub struct LivePermit<'a> {
    _slot: SemaphorePermit<'a>,
}

impl LiveBudget {
    /// The budget the settings describe.
    pub fn new(s: &OcspSettings) -> LiveBudget {
        LiveBudget {
            slots: Semaphore::new(s.live_sign_concurrency.max(1)),
            overall: Keyed::new(s.live_sign_rate.0, 1),
            per_ip: Keyed::new(s.live_sign_per_ip.0, DEFAULT_MAX_KEYS),
            signed: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        }
    }

    /// A live signature for a request from `ip` (`None`: not attributed, e.g. in-process), or
    /// `None` when over budget. Never waits.
    pub fn try_acquire(&self, ip: Option<ClientIp>) -> Option<LivePermit<'_>> {
        let granted = (|| {
            let slot = self.slots.try_acquire().ok()?;
            if let Some(ip) = ip {
                self.per_ip.check(&ip.limit_key()).ok()?;
            }
            self.overall.check(&()).ok()?;
            Some(LivePermit { _slot: slot })
        })();
        match &granted {
            Some(_) => self.signed.fetch_add(1, Ordering::Relaxed),
            None => self.refused.fetch_add(1, Ordering::Relaxed),
        };
        granted
    }

    /// The counters so far.
    pub fn stats(&self) -> LiveStats {
        LiveStats {
            signed: self.signed.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
        }
    }
}
