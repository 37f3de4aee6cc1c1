//! Limits on what callers can make the service do, from the environment (`docs/security.md`
//! explains what each protects). Rates are `N/s`, `N/min` or `N/h`, optionally `:BURST`, or
//! `off`.
//!
//! | variable                               | default    | what is limited                                   |
//! |----------------------------------------|------------|---------------------------------------------------|
//! | `PNC_LIMIT_TOKEN_PER_IP`               | `10/s:30`  | `POST /oauth/token` per client address            |
//! | `PNC_LIMIT_TOKEN_PER_CLIENT`           | `5/s:20`   | `POST /oauth/token` per `client_id`               |
//! | `PNC_LIMIT_AUTH_FAILURES_PER_IP`       | `1/s:30`   | failed authentications per address; beyond, 429   |
//! | `PNC_LIMIT_ENROLL_PER_CLIENT`          | `50/s:200` | enrollments and issuances per API client          |
//! | `PNC_LIMIT_SECRET_VERIFICATIONS`       | CPUs       | argon2 verifications at once (19 MiB each)        |
//! | `PNC_LIMIT_SECRET_VERIFY_WAIT`         | `250ms`    | wait for a verification slot; then 503            |
//! | `PNC_LIMIT_TRACKED_KEYS`               | `65536`    | addresses / clients each limiter remembers        |
//! | `PNC_AUDIT_REFUSAL_WINDOW`             | `60s`      | window in which repeated refusals are aggregated  |
//! | `PNC_TRUSTED_PROXIES`                  | none       | proxies whose `X-Forwarded-For` is believed       |
//! | `PNC_PROVISIONING_MAX_CHARS_ISO2`      | `5600`     | base64 size of a -2 provisioning answer (OCPP 2.0.1) |
//! | `PNC_PROVISIONING_MAX_CHARS_ISO20`     | `17000`    | base64 size of a -20 provisioning answer (OCPP 2.1)  |
//! | `PNC_LIMIT_SIGNIN_FAILURES_PER_USER`   | `5/min:5`  | failed console sign-ins per user name; beyond, 429 |
//! | `PNC_UI_IDLE_TIMEOUT`                  | `15m`      | a console session ends after this long unused      |
//! | `PNC_UI_SESSION_MAX`                   | `8h`       | a console session ends this long after sign-in     |
//! | `PNC_SUPERSEDE_GRACE`                  | `24h`      | how long a re-issued station's old certificate stays valid (`0`: revoked at once) |
//! | `PNC_WEBHOOK_RETRY`                    | `1h,1h,1h` | waits before each retry of a failed webhook delivery (OPCP: 3 retries, 1 h apart) |
//! | `PNC_WEBHOOK_RETENTION`                | `30d`      | how long finished webhook deliveries and their events are kept |

use std::time::Duration;

use super::ConfigError;
use crate::client_ip::TrustedProxies;
use crate::duration::parse_duration;
use crate::ratelimit::Rate;

/// The limits of one process.
#[derive(Clone, Debug)]
pub struct LimitSettings {
    /// Token requests per address.
    pub token_per_ip: Option<Rate>,
    /// Token requests per client id.
    pub token_per_client: Option<Rate>,
    /// Failed authentications per address.
    pub auth_failures_per_ip: Option<Rate>,
    /// Enrollments per API client.
    pub enroll_per_client: Option<Rate>,
    /// argon2 verifications at once.
    pub secret_verifications: usize,
    /// How long a token request waits for a verification slot.
    pub secret_verify_wait: Duration,
    /// Keys each limiter tracks.
    pub tracked_keys: usize,
    /// Aggregation window of repeated refusals in the audit log.
    pub refusal_window: Duration,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: TrustedProxies,
    /// Largest ISO 15118-2 provisioning answer, in base64 characters (OCPP 2.0.1 `exiResponse`).
    pub max_response_chars_iso2: usize,
    /// Largest ISO 15118-20 provisioning answer, in base64 characters (OCPP 2.1).
    pub max_response_chars_iso20: usize,
    /// Failed console sign-ins per user name.
    pub signin_failures_per_user: Option<Rate>,
    /// A console session ends after this long without a request.
    pub ui_idle_timeout: Duration,
    /// A console session ends this long after sign-in, however active.
    pub ui_session_max: Duration,
    /// How long a certificate replaced by a re-issue for the same subject (an OCPP station,
    /// `simplereenroll`) stays valid before it is revoked as superseded; zero: at once.
    pub supersede_grace: Duration,
    /// The outbound fetcher's bounds (`PNC_FETCH_ALLOW`, `PNC_FETCH_TIMEOUT`).
    pub fetch: crate::fetch::FetchConfig,
    /// What another PKI's unknown revocation status means (`PNC_EXTERNAL_REVOCATION`).
    pub external_revocation: crate::validation::UnknownPolicy,
    /// Authorize a contract whose revocation cannot be learnt (`PNC_AUTHORIZE_UNREACHABLE=accept`).
    pub authorize_unreachable_accept: bool,
    /// Waits before each retry of a failed webhook delivery (`PNC_WEBHOOK_RETRY`); after the
    /// last, the delivery is given up.
    pub webhook_retry: Vec<Duration>,
    /// How long finished webhook deliveries are kept (`PNC_WEBHOOK_RETENTION`).
    pub webhook_retention: Duration,
}

impl Default for LimitSettings {
    fn default() -> Self {
        LimitSettings {
            token_per_ip: Rate::per_second(10, 30),
            token_per_client: Rate::per_second(5, 20),
            auth_failures_per_ip: Rate::per_second(1, 30),
            enroll_per_client: Rate::per_second(50, 200),
            secret_verifications: std::thread::available_parallelism().map_or(2, |n| n.get()),
            secret_verify_wait: Duration::from_millis(250),
            tracked_keys: crate::ratelimit::DEFAULT_MAX_KEYS,
            refusal_window: Duration::from_secs(60),
            trusted_proxies: TrustedProxies::default(),
            max_response_chars_iso2: 5600,
            max_response_chars_iso20: 17000,
            signin_failures_per_user: Rate::parse("5/min:5").ok().flatten(),
            ui_idle_timeout: Duration::from_secs(15 * 60),
            ui_session_max: Duration::from_secs(8 * 3600),
            // A day: a station that got its new certificate but lost the answer's
            // acknowledgement can still connect with the old one and ask again.
            supersede_grace: Duration::from_secs(86_400),
            fetch: crate::fetch::FetchConfig::default(),
            external_revocation: crate::validation::UnknownPolicy::Require,
            authorize_unreachable_accept: false,
            webhook_retry: vec![Duration::from_secs(3600); 3],
            webhook_retention: Duration::from_secs(30 * 86_400),
        }
    }
}

/// `PNC_WEBHOOK_RETRY`: comma-separated durations (`1s,2s,4s`), at most 20; `none`: no retry.
fn retry_schedule(default: Vec<Duration>) -> Result<Vec<Duration>, ConfigError> {
    let Some(v) = var("PNC_WEBHOOK_RETRY") else {
        return Ok(default);
    };
    if v.trim() == "none" {
        return Ok(Vec::new());
    }
    let steps = v
        .split(',')
        .map(|s| parse_duration(s).map_err(|e| ConfigError(format!("PNC_WEBHOOK_RETRY: {}", e.0))))
        .collect::<Result<Vec<_>, _>>()?;
    if steps.len() > 20 || steps.iter().any(|d| *d > Duration::from_secs(7 * 86_400)) {
        return Err(ConfigError(
            "PNC_WEBHOOK_RETRY: at most 20 retries, each at most 7d".into(),
        ));
    }
    Ok(steps)
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn rate(name: &str, default: Option<Rate>) -> Result<Option<Rate>, ConfigError> {
    match var(name) {
        Some(v) => Rate::parse(&v).map_err(|e| ConfigError(format!("{name}: {e}"))),
        None => Ok(default),
    }
}

fn count(name: &str, default: usize) -> Result<usize, ConfigError> {
    match var(name) {
        Some(v) => match v.trim().parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(ConfigError(format!(
                "{name}='{v}' is not a positive number"
            ))),
        },
        None => Ok(default),
    }
}

fn duration(name: &str, default: Duration) -> Result<Duration, ConfigError> {
    match var(name) {
        Some(v) => parse_duration(&v).map_err(|e| ConfigError(format!("{name}: {e}"))),
        None => Ok(default),
    }
}

impl LimitSettings {
    /// From the environment (see the table above).
    pub fn from_env() -> Result<LimitSettings, ConfigError> {
        let d = LimitSettings::default();
        let window = duration("PNC_AUDIT_REFUSAL_WINDOW", d.refusal_window)?;
        if window < Duration::from_secs(1) {
            return Err(ConfigError(
                "PNC_AUDIT_REFUSAL_WINDOW must be at least 1s".into(),
            ));
        }
        Ok(LimitSettings {
            token_per_ip: rate("PNC_LIMIT_TOKEN_PER_IP", d.token_per_ip)?,
            token_per_client: rate("PNC_LIMIT_TOKEN_PER_CLIENT", d.token_per_client)?,
            auth_failures_per_ip: rate("PNC_LIMIT_AUTH_FAILURES_PER_IP", d.auth_failures_per_ip)?,
            enroll_per_client: rate("PNC_LIMIT_ENROLL_PER_CLIENT", d.enroll_per_client)?,
            secret_verifications: count("PNC_LIMIT_SECRET_VERIFICATIONS", d.secret_verifications)?,
            secret_verify_wait: duration("PNC_LIMIT_SECRET_VERIFY_WAIT", d.secret_verify_wait)?,
            tracked_keys: count("PNC_LIMIT_TRACKED_KEYS", d.tracked_keys)?,
            refusal_window: window,
            trusted_proxies: TrustedProxies::from_env().map_err(|e| ConfigError(e.to_string()))?,
            max_response_chars_iso2: count(
                "PNC_PROVISIONING_MAX_CHARS_ISO2",
                d.max_response_chars_iso2,
            )?,
            max_response_chars_iso20: count(
                "PNC_PROVISIONING_MAX_CHARS_ISO20",
                d.max_response_chars_iso20,
            )?,
            signin_failures_per_user: rate(
                "PNC_LIMIT_SIGNIN_FAILURES_PER_USER",
                d.signin_failures_per_user,
            )?,
            ui_idle_timeout: duration("PNC_UI_IDLE_TIMEOUT", d.ui_idle_timeout)?,
            ui_session_max: duration("PNC_UI_SESSION_MAX", d.ui_session_max)?,
            supersede_grace: duration("PNC_SUPERSEDE_GRACE", d.supersede_grace)?,
            fetch: crate::fetch::FetchConfig::from_env(Vec::new()).map_err(ConfigError)?,
            external_revocation: crate::validation::UnknownPolicy::from_env()
                .map_err(ConfigError)?,
            webhook_retry: retry_schedule(d.webhook_retry.clone())?,
            webhook_retention: duration("PNC_WEBHOOK_RETENTION", d.webhook_retention)?,
            authorize_unreachable_accept: match var("PNC_AUTHORIZE_UNREACHABLE").as_deref() {
                None | Some("unknown") => false,
                Some("accept") => true,
                Some(v) => {
                    return Err(ConfigError(format!(
                        "PNC_AUTHORIZE_UNREACHABLE must be unknown or accept, not '{v}'"
                    )));
                }
            },
        })
    }
}
