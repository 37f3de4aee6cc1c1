//! The RA's limits on callers (settings: `crate::config::limits`): token requests per address and
//! per client id, failed authentications per address, enrollments per client, and how many
//! argon2 verifications run at once. Every check is a few hash lookups; a refusal costs no
//! database row, no argon2 and no HSM time.

use std::net::IpAddr;
use std::time::Duration;

use tokio::sync::{Semaphore, SemaphorePermit};

use super::RaError;
use crate::client_ip::ClientIp;
use crate::config::limits::LimitSettings;
use crate::ratelimit::{FailureBudget, Keyed};

/// Seconds to put in `Retry-After` (at least 1).
fn retry_secs(wait: Duration) -> u64 {
    wait.as_secs_f64().ceil().max(1.0) as u64
}

fn limited(what: &str, wait: Duration) -> RaError {
    RaError::RateLimited {
        code: "rate_limited",
        detail: format!("too many {what}; retry later"),
        retry_after: retry_secs(wait),
    }
}

/// The limiters of one RA.
pub(super) struct Guard {
    token_per_ip: Keyed<IpAddr>,
    token_per_client: Keyed<String>,
    failures: FailureBudget<IpAddr>,
    signin_failures: FailureBudget<String>,
    enroll_per_client: Keyed<String>,
    verify_slots: Semaphore,
    verify_wait: Duration,
}

impl Guard {
    pub(super) fn new(s: LimitSettings) -> Guard {
        let n = s.tracked_keys;
        Guard {
            token_per_ip: Keyed::new(s.token_per_ip, n),
            token_per_client: Keyed::new(s.token_per_client, n),
            failures: FailureBudget::new(s.auth_failures_per_ip, n),
            signin_failures: FailureBudget::new(s.signin_failures_per_user, n),
            enroll_per_client: Keyed::new(s.enroll_per_client, n),
            verify_slots: Semaphore::new(s.secret_verifications.max(1)),
            verify_wait: s.secret_verify_wait,
        }
    }

    /// Refuse an address that spent its failure budget.
    pub(super) fn not_failing(&self, ip: ClientIp) -> Result<(), RaError> {
        match self.failures.refused(&ip.limit_key()) {
            Some(wait) => Err(RaError::RateLimited {
                code: "too_many_failures",
                detail: "too many failed authentications from this address; retry later".into(),
                retry_after: retry_secs(wait),
            }),
            None => Ok(()),
        }
    }

    /// Refuse a console user name that spent its sign-in failure budget (whoever asks: a
    /// password guesser spread over many addresses is stopped too).
    pub(super) fn signin_allowed(&self, name: &str) -> Result<(), RaError> {
        match self.signin_failures.refused(&name.to_string()) {
            Some(wait) => Err(RaError::RateLimited {
                code: "too_many_failures",
                detail: "too many failed sign-ins for this user; retry later".into(),
                retry_after: retry_secs(wait),
            }),
            None => Ok(()),
        }
    }

    /// Count a failed console sign-in for user name `name`.
    pub(super) fn signin_failed(&self, name: &str) {
        if let Some(wait) = self.signin_failures.failed(&name.to_string()) {
            tracing::warn!(
                retry_after = retry_secs(wait),
                "a console user spent its sign-in failure budget"
            );
        }
    }

    /// Count a failed authentication of `ip`.
    pub(super) fn failed(&self, ip: ClientIp) {
        if let Some(wait) = self.failures.failed(&ip.limit_key()) {
            tracing::warn!(source = %ip, retry_after = retry_secs(wait), "address spent its authentication-failure budget");
        }
    }

    /// A token request from `ip` for `client_id`.
    pub(super) fn token_request(&self, ip: ClientIp, client_id: &str) -> Result<(), RaError> {
        self.not_failing(ip)?;
        self.token_per_ip
            .check(&ip.limit_key())
            .map_err(|w| limited("token requests from this address", w))?;
        // Ids are bounded in length, so an attacker's invented ids cost bounded memory each.
        let id: String = client_id.chars().take(64).collect();
        self.token_per_client
            .check(&id)
            .map_err(|w| limited("token requests for this client", w))
    }

    /// An enrollment by API client `client_id`.
    pub(super) fn enrollment(&self, client_id: &str) -> Result<(), RaError> {
        self.enroll_per_client
            .check(&client_id.to_string())
            .map_err(|w| limited("enrollments by this client", w))
    }

    /// A slot for one argon2 verification, or 503 `busy` when none frees up in time: memory
    /// stays at most `secret_verifications` × 19 MiB however many token requests arrive.
    pub(super) async fn verification_slot(&self) -> Result<SemaphorePermit<'_>, RaError> {
        match tokio::time::timeout(self.verify_wait, self.verify_slots.acquire()).await {
            Ok(Ok(p)) => Ok(p),
            _ => Err(RaError::Busy {
                code: "busy",
                detail: "too many token requests at once; retry shortly".into(),
                retry_after: 1,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ratelimit::Rate;

    fn ip(s: &str) -> ClientIp {
        ClientIp(s.parse().unwrap())
    }

    #[tokio::test]
    async fn verification_slots_fail_fast_when_taken() {
        let g = Guard::new(LimitSettings {
            secret_verifications: 1,
            secret_verify_wait: Duration::from_millis(50),
            ..LimitSettings::default()
        });
        let held = g.verification_slot().await.unwrap();
        let e = g.verification_slot().await.unwrap_err();
        assert_eq!((e.code(), e.retry_after()), ("busy", Some(1)));
        assert_eq!(e.kind(), crate::error::ErrorKind::Unavailable);
        drop(held);
        assert!(g.verification_slot().await.is_ok());
    }

    #[test]
    fn token_requests_are_limited_per_address_and_per_client() {
        let g = Guard::new(LimitSettings {
            token_per_ip: Rate::per_second(1, 3),
            token_per_client: Rate::per_second(1, 5),
            ..LimitSettings::default()
        });
        for _ in 0..3 {
            g.token_request(ip("192.0.2.1"), "a").unwrap();
        }
        let e = g.token_request(ip("192.0.2.1"), "b").unwrap_err();
        assert_eq!(e.code(), "rate_limited");
        assert_eq!(e.kind(), crate::error::ErrorKind::TooManyRequests);
        // Client "a" from other addresses: two more, then its own limit.
        g.token_request(ip("192.0.2.2"), "a").unwrap();
        g.token_request(ip("192.0.2.3"), "a").unwrap();
        assert!(g.token_request(ip("192.0.2.4"), "a").is_err());
        assert!(g.token_request(ip("192.0.2.4"), "c").is_ok());
    }

    #[test]
    fn an_address_that_failed_too_often_is_refused() {
        let g = Guard::new(LimitSettings {
            auth_failures_per_ip: Rate::per_second(1, 2),
            ..LimitSettings::default()
        });
        let bad = ip("198.51.100.7");
        for _ in 0..3 {
            assert!(g.not_failing(bad).is_ok());
            g.failed(bad);
        }
        let e = g.not_failing(bad).unwrap_err();
        assert_eq!(e.code(), "too_many_failures");
        assert!(e.retry_after().is_some());
        assert!(g.not_failing(ip("198.51.100.8")).is_ok());
        assert!(
            g.token_request(bad, "x").is_err(),
            "no token requests either"
        );
    }
}
