//! `[ocsp]` section of the settings file (`DATA_DIR/pnc-pki.toml`): how the responder
//! (`crate::ocsp`) signs, caches and refreshes.
//!
//! ```toml
//! [ocsp]
//! validity = "7d"          # nextUpdate - thisUpdate of every response
//! refresh_after = "4d"     # a pre-produced response older than this is re-signed
//! backdate = "5m"          # thisUpdate = signing time - backdate (client clock skew)
//! nonce = true             # a request with a nonce gets a freshly signed response echoing it
//! sign_with = "delegated"  # or "ca": sign with the CA key and embed no certificate
//! signer_renew_margin = "10d"    # issue a new delegated signer when the current one has less left
//! signer_check_interval = "1h"
//! refresh_interval = "1m"  # how often the pre-producer looks for missing or ageing responses
//! lease = "3s"             # see `sync`: how long a replica may serve from memory unconfirmed
//! poll_interval = "100ms"  # how often a replica polls the revocation epoch (PostgreSQL also LISTENs)
//! max_sign_queue = 256     # live signatures waiting for the HSM beyond which requests get tryLater
//! live_sign_concurrency = 1      # HSM sessions anonymous callers' live signatures may use at once
//! live_sign_rate = "100/s:200"   # live signatures for requests, overall ("off": no limit)
//! live_sign_per_ip = "10/s:20"   # live signatures for requests, per client address
//! unknown_cache = "60s"    # how long a signed "unknown" (never-issued serial) is served again
//! ```
//!
//! Durations are strings with a unit (`ms`, `s`, `m`, `h`, `d`, `w`, `y`; see `crate::duration`);
//! a bare number is refused (except `0`).

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ratelimit::{Rate, display_rate};

/// Who signs the responses of a CA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SignWith {
    /// The CA's delegated OCSP signer (EKU OCSPSigning, id-pkix-ocsp-nocheck), embedded as the
    /// only certificate of the response. Falls back to the CA key when a CA has no signer.
    #[default]
    Delegated,
    /// The CA key itself, with no certificate embedded (what Go's x/crypto/ocsp expects).
    Ca,
}

/// A duration written as `"7d"`, `"250ms"`, … (a unit is required; see `crate::duration`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl Dur {
    /// `s` seconds.
    pub const fn secs(s: u64) -> Dur {
        Dur(Duration::from_secs(s))
    }
    /// `ms` milliseconds.
    pub const fn millis(ms: u64) -> Dur {
        Dur(Duration::from_millis(ms))
    }
    /// Whole seconds, saturating.
    pub fn as_secs_i64(self) -> i64 {
        i64::try_from(self.0.as_secs()).unwrap_or(i64::MAX)
    }
    /// Whole milliseconds, saturating.
    pub fn as_millis_i64(self) -> i64 {
        i64::try_from(self.0.as_millis()).unwrap_or(i64::MAX)
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            // A bare number is refused as in every other duration (it used to mean seconds);
            // only 0 is unambiguous.
            Raw::Int(0) => Ok(Dur(Duration::ZERO)),
            Raw::Int(n) => Err(serde::de::Error::custom(format!(
                "{n}: add a unit, e.g. \"{n}s\" or \"{n}d\" (units: {})",
                crate::duration::UNITS
            ))),
            Raw::Text(s) => crate::duration::parse_duration(&s)
                .map(Dur)
                .map_err(serde::de::Error::custom),
        }
    }
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let ms = self.0.as_millis();
        let text = if ms.is_multiple_of(86_400_000) {
            format!("{}d", ms / 86_400_000)
        } else if ms.is_multiple_of(3_600_000) {
            format!("{}h", ms / 3_600_000)
        } else if ms.is_multiple_of(60_000) {
            format!("{}m", ms / 60_000)
        } else if ms.is_multiple_of(1000) {
            format!("{}s", ms / 1000)
        } else {
            format!("{ms}ms")
        };
        s.serialize_str(&text)
    }
}

/// A rate in a settings file: `"100/s"`, `"600/min:50"`, `"off"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateSetting(pub Option<Rate>);

impl<'de> Deserialize<'de> for RateSetting {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Rate::parse(&s)
            .map(RateSetting)
            .map_err(serde::de::Error::custom)
    }
}

impl Serialize for RateSetting {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&display_rate(self.0))
    }
}

/// The `[ocsp]` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OcspSettings {
    /// nextUpdate − thisUpdate of every response.
    pub validity: Dur,
    /// A pre-produced response older than this is re-signed.
    pub refresh_after: Dur,
    /// thisUpdate = signing time − backdate (client clock skew).
    pub backdate: Dur,
    /// A request with a nonce gets a freshly signed response echoing it.
    pub nonce: bool,
    /// Delegated signer or CA key.
    pub sign_with: SignWith,
    /// Issue a new delegated signer when the current one has less left.
    pub signer_renew_margin: Dur,
    /// How often signers are checked.
    pub signer_check_interval: Dur,
    /// How often the pre-producer looks for missing or ageing responses.
    pub refresh_interval: Dur,
    /// How long a replica may serve from memory unconfirmed (see `freshness`).
    pub lease: Dur,
    /// How often a replica polls the revocation epoch (PostgreSQL also LISTENs).
    pub poll_interval: Dur,
    /// Requests that need a live signature (nonce, several CertIDs, no pre-produced response,
    /// unknown serials) and find this many already waiting for the HSM are answered `tryLater`
    /// at once: a flood of such requests must not queue without bound, in memory and in the
    /// latency of everyone behind it. Cached answers are not affected.
    pub max_sign_queue: usize,
    /// Live signatures for requests (nonce, several CertIDs, unknown serials) at once: the share
    /// of the HSM's sessions anonymous callers can occupy (see `crate::ocsp::budget`).
    pub live_sign_concurrency: usize,
    /// Live signatures for requests, overall.
    pub live_sign_rate: RateSetting,
    /// Live signatures for requests, per client address.
    pub live_sign_per_ip: RateSetting,
    /// How long a signed "unknown" answer is served again for the same CertID.
    pub unknown_cache: Dur,
}

impl Default for OcspSettings {
    fn default() -> Self {
        OcspSettings {
            validity: Dur::secs(7 * 86_400),
            refresh_after: Dur::secs(4 * 86_400),
            backdate: Dur::secs(300),
            nonce: true,
            sign_with: SignWith::Delegated,
            signer_renew_margin: Dur::secs(10 * 86_400),
            signer_check_interval: Dur::secs(3600),
            refresh_interval: Dur::secs(60),
            lease: Dur::secs(3),
            poll_interval: Dur::millis(100),
            max_sign_queue: 256,
            live_sign_concurrency: 1,
            live_sign_rate: RateSetting(Rate::per_second(100, 200)),
            live_sign_per_ip: RateSetting(Rate::per_second(10, 20)),
            unknown_cache: Dur::secs(60),
        }
    }
}

impl OcspSettings {
    /// Whether nothing differs from the defaults (then the section is not written).
    pub fn is_default(&self) -> bool {
        *self == OcspSettings::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::duration::parse_duration;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("7d").unwrap(), Duration::from_secs(604_800));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("30").is_err(), "a bare number needs a unit");
        assert!(parse_duration("x").is_err());
        assert_eq!(
            parse_duration("3w").unwrap(),
            Duration::from_secs(21 * 86_400)
        );
        let e = toml::from_str::<OcspSettings>("refresh_after = 60").unwrap_err();
        assert!(e.to_string().contains("add a unit"), "{e}");
        let s: OcspSettings = toml::from_str(
            "validity = \"2d\"\nrefresh_after = \"60s\"\nbackdate = 0\nsign_with = \"ca\"",
        )
        .unwrap();
        assert_eq!(s.validity, Dur::secs(172_800));
        assert_eq!(s.refresh_after, Dur::secs(60));
        assert_eq!(s.backdate, Dur::secs(0));
        assert_eq!(s.sign_with, SignWith::Ca);
        assert!(s.nonce);
        let back: OcspSettings = toml::from_str(&toml::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
        let s: OcspSettings =
            toml::from_str("live_sign_rate = \"off\"\nlive_sign_per_ip = \"5/s:9\"").unwrap();
        assert_eq!(s.live_sign_rate, RateSetting(None));
        assert_eq!(s.live_sign_per_ip, RateSetting(Rate::per_second(5, 9)));
        let back: OcspSettings = toml::from_str(&toml::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
        assert!(toml::from_str::<OcspSettings>("live_sign_rate = \"fast\"").is_err());
    }
}
