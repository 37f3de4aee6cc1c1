//! The one guarded way out of the service: every outbound request (another PKI's OCSP responder
//! or CRL, later webhook endpoints) goes through [`Fetcher`], an I/O layer beside `store` and
//! `hsm` that only the RA uses.
//!
//! What a URL a caller (a station's `responderURL`, a certificate's AIA) can make us do is
//! bounded, because CitrineOS shipped exactly this as an SSRF hole:
//! - `http://` and `https://` only, no user info, no redirects followed;
//! - the host is resolved first and **every** address checked before any connection; the
//!   connection then goes to the checked address (a DNS answer that changes between the check and
//!   the connect changes nothing). Refused unless `PNC_FETCH_ALLOW` (CIDRs and host names) allows
//!   it: loopback, RFC 1918 and ULA, link-local (cloud metadata at 169.254.169.254), CGNAT,
//!   multicast, unspecified and reserved addresses, their IPv4-mapped IPv6 forms, and the
//!   service's own listen addresses. Decimal, octal and short IPv4 spellings are parsed (WHATWG
//!   URL rules) into the address they denote before the check;
//! - bounded: the request body, the answer (per call), the whole fetch including connect
//!   (`PNC_FETCH_TIMEOUT`, default 2 s), and the fetches in flight per host and overall: a slow
//!   responder costs one budget, never a thread, and never the service;
//! - counted (`/metrics`: outcomes and latency; the slowest hosts for the console).

mod address;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use tokio::sync::Semaphore;

pub use address::{Allow, forbidden_reason};

/// Largest OCSP request we send.
pub const MAX_OCSP_REQUEST: usize = 4 * 1024;
/// Largest OCSP answer we read.
pub const MAX_OCSP_RESPONSE: usize = 64 * 1024;
/// Largest CRL we read.
pub const MAX_CRL: usize = 4 * 1024 * 1024;

/// How the fetcher is bounded.
#[derive(Debug, Clone)]
pub struct FetchConfig {
    /// What may be reached although it is a private, loopback or otherwise refused address.
    pub allow: Vec<Allow>,
    /// The whole fetch, connect included.
    pub timeout: Duration,
    /// Fetches in flight overall.
    pub max_in_flight: usize,
    /// Fetches in flight per host.
    pub max_per_host: usize,
    /// The service's own listen addresses (never fetched unless allowed).
    pub own: Vec<SocketAddr>,
}

impl Default for FetchConfig {
    fn default() -> Self {
        FetchConfig {
            allow: Vec::new(),
            timeout: Duration::from_secs(2),
            max_in_flight: 64,
            max_per_host: 8,
            own: Vec::new(),
        }
    }
}

impl FetchConfig {
    /// From `PNC_FETCH_ALLOW` (comma-separated CIDRs, addresses and host names) and
    /// `PNC_FETCH_TIMEOUT` (`2s`, `500ms`); `own` are the listen addresses.
    pub fn from_env(own: Vec<SocketAddr>) -> Result<FetchConfig, String> {
        let mut c = FetchConfig {
            own,
            ..FetchConfig::default()
        };
        if let Ok(v) = std::env::var("PNC_FETCH_ALLOW") {
            c.allow = Allow::parse_list(&v)?;
        }
        if let Ok(v) = std::env::var("PNC_FETCH_TIMEOUT") {
            c.timeout = crate::duration::parse_duration(&v)
                .map_err(|e| format!("PNC_FETCH_TIMEOUT: {e}"))?;
            if c.timeout.is_zero() {
                return Err("PNC_FETCH_TIMEOUT: must be more than 0 (e.g. 2s or 500ms)".into());
            }
        }
        Ok(c)
    }
}

/// Why a fetch did not return an answer body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// Not an absolute `http://` or `https://` URL we accept.
    #[error("not a URL we fetch: {0}")]
    BadUrl(String),
    /// The host resolves to an address we do not contact.
    #[error("refused destination: {0}")]
    Forbidden(String),
    /// The budget ran out (connect, or the answer).
    #[error("no answer within {0} ms")]
    Timeout(u128),
    /// The answer is larger than allowed.
    #[error("the answer is larger than {0} bytes")]
    TooLarge(usize),
    /// Too many fetches in flight (overall or to this host).
    #[error("too many requests in flight{0}")]
    Busy(String),
    /// The server answered with a redirect (never followed).
    #[error("redirect to {0} not followed")]
    Redirect(String),
    /// The server answered with another non-2xx status.
    #[error("HTTP status {0}")]
    Status(u16),
    /// Resolution, connection, TLS or protocol failure.
    #[error("{0}")]
    Io(String),
}

impl FetchError {
    /// The outcome label in `/metrics`.
    pub fn outcome(&self) -> &'static str {
        match self {
            FetchError::BadUrl(_) => "bad_url",
            FetchError::Forbidden(_) => "forbidden",
            FetchError::Timeout(_) => "timeout",
            FetchError::TooLarge(_) => "too_large",
            FetchError::Busy(_) => "busy",
            FetchError::Redirect(_) => "redirect",
            FetchError::Status(_) => "http_error",
            FetchError::Io(_) => "io_error",
        }
    }
}

/// What the fetcher did, for `/metrics` and the console.
#[derive(Debug, Default)]
pub struct FetchStats {
    outcomes: Mutex<HashMap<&'static str, u64>>,
    /// Time of every fetch that was attempted (connect included).
    pub latency: crate::stats::Latency,
    slowest: Mutex<HashMap<String, (u64, Duration)>>,
}

impl FetchStats {
    fn record(&self, host: &str, outcome: &'static str, took: Duration) {
        *self
            .outcomes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(outcome)
            .or_default() += 1;
        self.latency.observe(took);
        let mut s = self.slowest.lock().unwrap_or_else(|p| p.into_inner());
        if s.len() < 1024 || s.contains_key(host) {
            let e = s.entry(host.to_string()).or_default();
            e.0 += 1;
            e.1 = e.1.max(took);
        }
    }

    /// Fetches by outcome (`ok`, `timeout`, `forbidden`, …).
    pub fn outcomes(&self) -> Vec<(&'static str, u64)> {
        let mut v: Vec<_> = self
            .outcomes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, v)| (*k, *v))
            .collect();
        v.sort();
        v
    }

    /// The `n` hosts with the slowest single fetch: (host, fetches, slowest).
    pub fn slowest_hosts(&self, n: usize) -> Vec<(String, u64, Duration)> {
        let mut v: Vec<_> = self
            .slowest
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(h, (c, d))| (h.clone(), *c, *d))
            .collect();
        v.sort_by_key(|x| std::cmp::Reverse(x.2));
        v.truncate(n);
        v
    }
}

/// A checked destination.
#[derive(Debug, Clone)]
struct Target {
    https: bool,
    host: String,
    port: u16,
    path_and_query: String,
}

/// The guarded outbound HTTP client (see the module).
pub struct Fetcher {
    cfg: FetchConfig,
    /// The service's listen addresses, known once `serve` has bound them.
    own: std::sync::RwLock<Vec<SocketAddr>>,
    total: Arc<Semaphore>,
    per_host: Mutex<HashMap<String, Arc<Semaphore>>>,
    /// Counters and latency.
    pub stats: FetchStats,
}

impl Fetcher {
    /// A fetcher bounded by `cfg`.
    pub fn new(cfg: FetchConfig) -> Fetcher {
        Fetcher {
            own: std::sync::RwLock::new(cfg.own.clone()),
            total: Arc::new(Semaphore::new(cfg.max_in_flight.max(1))),
            per_host: Mutex::new(HashMap::new()),
            stats: FetchStats::default(),
            cfg,
        }
    }

    /// Its bounds.
    pub fn config(&self) -> &FetchConfig {
        &self.cfg
    }

    /// Add the service's listen addresses (never fetched unless allowed).
    pub fn add_own_addresses(&self, addrs: &[SocketAddr]) {
        self.own
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(addrs);
    }

    /// Check a URL without fetching it: the scheme, and every address its host resolves to
    /// (registration of an endpoint, and every use).
    pub async fn check(&self, url: &str) -> Result<(), FetchError> {
        let t = parse(url)?;
        self.resolve(&t).await.map(|_| ())
    }

    /// `POST` `body` (at most [`MAX_OCSP_REQUEST`] bytes) to `url`; the answer body, at most
    /// `max` bytes.
    pub async fn post(
        &self,
        url: &str,
        content_type: &str,
        body: Vec<u8>,
        max: usize,
    ) -> Result<Vec<u8>, FetchError> {
        self.post_with_headers(url, content_type, &[], body, max)
            .await
    }

    /// [`Fetcher::post`] with extra request headers (a webhook's signature).
    pub async fn post_with_headers(
        &self,
        url: &str,
        content_type: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
        max: usize,
    ) -> Result<Vec<u8>, FetchError> {
        if body.len() > MAX_OCSP_REQUEST.max(64 * 1024) {
            return Err(FetchError::TooLarge(body.len()));
        }
        self.fetch(
            hyper::Method::POST,
            url,
            Some((content_type, body)),
            headers,
            max,
        )
        .await
    }

    /// Check a URL we will push to (a webhook endpoint): as [`Fetcher::check`], and plain
    /// `http://` only when every address the host resolves to is on the allow-list
    /// (`PNC_FETCH_ALLOW`): events leave in clear text only to hosts the operator named.
    pub async fn check_push(&self, url: &str) -> Result<(), FetchError> {
        let t = parse(url)?;
        let addrs = self.resolve(&t).await?;
        if !t.https
            && !addrs.iter().all(|a| {
                let ip = address::canonical(a.ip());
                self.cfg.allow.iter().any(|x| x.allows(&t.host, ip))
            })
        {
            return Err(FetchError::BadUrl(format!(
                "http:// only to hosts on PNC_FETCH_ALLOW; use https:// for {}",
                t.host
            )));
        }
        Ok(())
    }

    /// `GET` `url`; the answer body, at most `max` bytes.
    pub async fn get(&self, url: &str, max: usize) -> Result<Vec<u8>, FetchError> {
        self.fetch(hyper::Method::GET, url, None, &[], max).await
    }

    async fn fetch(
        &self,
        method: hyper::Method,
        url: &str,
        body: Option<(&str, Vec<u8>)>,
        headers: &[(&str, String)],
        max: usize,
    ) -> Result<Vec<u8>, FetchError> {
        let start = Instant::now();
        let t = match parse(url) {
            Ok(t) => t,
            Err(e) => {
                self.stats.record("-", e.outcome(), start.elapsed());
                return Err(e);
            }
        };
        let r = self.fetch_target(&t, method, body, headers, max).await;
        let outcome = match &r {
            Ok(_) => "ok",
            Err(e) => e.outcome(),
        };
        self.stats.record(&t.host, outcome, start.elapsed());
        if let Err(e) = &r {
            tracing::info!(host = %t.host, outcome, error = %e, "outbound fetch failed");
        }
        r
    }

    async fn fetch_target(
        &self,
        t: &Target,
        method: hyper::Method,
        body: Option<(&str, Vec<u8>)>,
        headers: &[(&str, String)],
        max: usize,
    ) -> Result<Vec<u8>, FetchError> {
        let _all = self
            .total
            .clone()
            .try_acquire_owned()
            .map_err(|_| FetchError::Busy(String::new()))?;
        let host_sem = {
            let mut m = self.per_host.lock().unwrap_or_else(|p| p.into_inner());
            if m.len() > 4096 {
                // Forget idle hosts (a semaphore with every permit back is idle).
                let per = self.cfg.max_per_host.max(1);
                m.retain(|_, s| s.available_permits() < per);
            }
            m.entry(t.host.clone())
                .or_insert_with(|| Arc::new(Semaphore::new(self.cfg.max_per_host.max(1))))
                .clone()
        };
        let _one = host_sem
            .try_acquire_owned()
            .map_err(|_| FetchError::Busy(format!(" to {}", t.host)))?;
        let budget = self.cfg.timeout;
        match tokio::time::timeout(budget, self.exchange(t, method, body, headers, max)).await {
            Ok(r) => r,
            Err(_) => Err(FetchError::Timeout(budget.as_millis())),
        }
    }

    /// Every address of the target's host, each checked; refused when any is refused.
    async fn resolve(&self, t: &Target) -> Result<Vec<SocketAddr>, FetchError> {
        let addrs: Vec<SocketAddr> = match t
            .host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            Ok(ip) => vec![SocketAddr::new(ip, t.port)],
            Err(_) => tokio::net::lookup_host((t.host.as_str(), t.port))
                .await
                .map_err(|e| FetchError::Io(format!("resolving {}: {e}", t.host)))?
                .take(16)
                .collect(),
        };
        if addrs.is_empty() {
            return Err(FetchError::Io(format!("{} resolves to nothing", t.host)));
        }
        for a in &addrs {
            if let Some(why) = self.refused(&t.host, *a) {
                return Err(FetchError::Forbidden(format!(
                    "{} resolves to {} ({why}); allow it with PNC_FETCH_ALLOW",
                    t.host,
                    a.ip()
                )));
            }
        }
        Ok(addrs)
    }

    /// Why `addr` (of `host`) is not contacted, if it is not.
    fn refused(&self, host: &str, addr: SocketAddr) -> Option<&'static str> {
        let ip = address::canonical(addr.ip());
        if self.cfg.allow.iter().any(|a| a.allows(host, ip)) {
            return None;
        }
        if self
            .own
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .any(|o| {
                o.port() == addr.port()
                    && (o.ip().is_unspecified() || address::canonical(o.ip()) == ip)
            })
        {
            return Some("this service's own listen address");
        }
        forbidden_reason(ip)
    }

    async fn exchange(
        &self,
        t: &Target,
        method: hyper::Method,
        body: Option<(&str, Vec<u8>)>,
        headers: &[(&str, String)],
        max: usize,
    ) -> Result<Vec<u8>, FetchError> {
        let addrs = self.resolve(t).await?;
        let mut last = None;
        let mut stream = None;
        for a in addrs {
            match tokio::net::TcpStream::connect(a).await {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let stream = stream.ok_or_else(|| {
            FetchError::Io(format!(
                "connecting to {}: {}",
                t.host,
                last.map(|e| e.to_string()).unwrap_or_default()
            ))
        })?;
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(&t.path_and_query)
            .header(hyper::header::HOST, host_header(t))
            .header(hyper::header::USER_AGENT, "pnc-pki")
            .header(hyper::header::CONNECTION, "close");
        for (k, v) in headers {
            req = req.header(*k, v.as_str());
        }
        let payload = match body {
            Some((ct, b)) => {
                req = req.header(hyper::header::CONTENT_TYPE, ct);
                b
            }
            None => Vec::new(),
        };
        let req = req
            .body(http_body_util::Full::new(bytes::Bytes::from(payload)))
            .map_err(|e| FetchError::BadUrl(e.to_string()))?;
        let resp = if t.https {
            let tls = tls_connect(t, stream).await?;
            send(hyper_util::rt::TokioIo::new(tls), req).await?
        } else {
            send(hyper_util::rt::TokioIo::new(stream), req).await?
        };
        let status = resp.status();
        if status.is_redirection() {
            let to = resp
                .headers()
                .get(hyper::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("?")
                .chars()
                .take(200)
                .collect();
            return Err(FetchError::Redirect(to));
        }
        if !status.is_success() {
            return Err(FetchError::Status(status.as_u16()));
        }
        if let Some(len) = resp
            .headers()
            .get(hyper::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok())
            && len > max
        {
            return Err(FetchError::TooLarge(max));
        }
        let limited = http_body_util::Limited::new(resp.into_body(), max);
        match limited.collect().await {
            Ok(c) => Ok(c.to_bytes().to_vec()),
            Err(e)
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some() =>
            {
                Err(FetchError::TooLarge(max))
            }
            Err(e) => Err(FetchError::Io(format!("reading the answer: {e}"))),
        }
    }
}

fn host_header(t: &Target) -> String {
    let default = if t.https { 443 } else { 80 };
    if t.port == default {
        t.host.clone()
    } else {
        format!("{}:{}", t.host, t.port)
    }
}

async fn send<I>(
    io: I,
    req: hyper::Request<http_body_util::Full<bytes::Bytes>>,
) -> Result<hyper::Response<hyper::body::Incoming>, FetchError>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| FetchError::Io(format!("HTTP handshake: {e}")))?;
    // The connection task ends with the exchange (Connection: close) or when the caller's
    // budget drops the future that owns the response.
    tokio::spawn(async move {
        let _ = conn.await;
    });
    sender
        .send_request(req)
        .await
        .map_err(|e| FetchError::Io(format!("HTTP exchange: {e}")))
}

async fn tls_connect(
    t: &Target,
    stream: tokio::net::TcpStream,
) -> Result<tokio_openssl::SslStream<tokio::net::TcpStream>, FetchError> {
    let io = |e: String| FetchError::Io(format!("TLS to {}: {e}", t.host));
    let mut b = openssl::ssl::SslConnector::builder(openssl::ssl::SslMethod::tls_client())
        .map_err(|e| io(e.to_string()))?;
    b.set_default_verify_paths()
        .map_err(|e| io(e.to_string()))?;
    b.set_min_proto_version(Some(openssl::ssl::SslVersion::TLS1_2))
        .map_err(|e| io(e.to_string()))?;
    let ssl = b
        .build()
        .configure()
        .and_then(|c| c.into_ssl(t.host.trim_start_matches('[').trim_end_matches(']')))
        .map_err(|e| io(e.to_string()))?;
    let mut s = tokio_openssl::SslStream::new(ssl, stream).map_err(|e| io(e.to_string()))?;
    std::pin::Pin::new(&mut s)
        .connect()
        .await
        .map_err(|e| io(e.to_string()))?;
    Ok(s)
}

/// Parse and check a URL's form (WHATWG rules: `2130706433`, `0177.0.0.1` and `127.1` are the
/// IPv4 addresses they denote).
fn parse(url: &str) -> Result<Target, FetchError> {
    if url.len() > 2048 {
        return Err(FetchError::BadUrl("longer than 2048 characters".into()));
    }
    let u = url::Url::parse(url.trim()).map_err(|e| FetchError::BadUrl(e.to_string()))?;
    let https = match u.scheme() {
        "http" => false,
        "https" => true,
        s => {
            return Err(FetchError::BadUrl(format!(
                "scheme {s} (only http and https)"
            )));
        }
    };
    if !u.username().is_empty() || u.password().is_some() {
        return Err(FetchError::BadUrl("user info in the URL".into()));
    }
    let host = match u.host() {
        Some(url::Host::Domain(d)) => d.to_ascii_lowercase(),
        Some(url::Host::Ipv4(a)) => a.to_string(),
        Some(url::Host::Ipv6(a)) => format!("[{a}]"),
        None => return Err(FetchError::BadUrl("no host".into())),
    };
    let port = u
        .port_or_known_default()
        .ok_or_else(|| FetchError::BadUrl("no port".into()))?;
    let mut path_and_query = u.path().to_string();
    if let Some(q) = u.query() {
        path_and_query.push('?');
        path_and_query.push_str(q);
    }
    Ok(Target {
        https,
        host,
        port,
        path_and_query,
    })
}

#[cfg(test)]
mod tests;
