//! PostgreSQL host lists and failover without a proxy.
//!
//! libpq accepts `postgres://u@h1:p1,h2:p2/db?target_session_attrs=read-write` (and `host=` /
//! `port=` lists) and, per connection, tries the hosts in order until one is a writable
//! primary. sqlx takes one host. Its pool (0.9) has no connector hook, but it re-reads its
//! connect options on every attempt (`Pool::set_connect_options`) and retries an attempt that
//! is refused or that `after_connect` rejects, until the acquire deadline. So:
//!
//! - [`HostList::parse`] turns the URL into one `PgConnectOptions` per host (everything else in
//!   the URL, such as `sslmode`, applies to each);
//! - [`find_primary`] tries the hosts in order, each attempt bounded by the connect timeout
//!   (`PNC_DB_CONNECT_TIMEOUT`, default 500 ms), and keeps the first whose
//!   `pg_is_in_recovery()` is false;
//! - the pool points at that host; `after_connect` checks every new connection the same way
//!   (a proxy or a host that turned into a standby is refused per connection, and the locator
//!   is woken), and `before_acquire` drops connections opened before the last switch;
//! - with more than one host, a locator task watches the current primary (one bounded query
//!   every [`WATCH_EVERY`] on a connection of its own) and, when it fails, scans the list until
//!   a primary answers and points the pool at it. Attempts the pool is retrying meanwhile pick
//!   the new host up on their next try, so a promotion is followed within one scan.
//!
//! Why not the alternatives: wrapping the pool would touch every query of the store (they run
//! on `&PgPool`); an in-process TCP relay could pick a host per connection but cannot see
//! whether the server behind it is a primary.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};

use super::StoreError;

/// How often the locator checks that the current host is still a writable primary.
pub const WATCH_EVERY: Duration = Duration::from_millis(500);

/// How long the locator waits between scans while no host is a writable primary.
const RESCAN_EVERY: Duration = Duration::from_millis(100);

/// Default bound of one connection attempt (TCP, TLS, authentication and the primary check).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// The hosts of a database URL, each with the URL's other settings.
#[derive(Clone, Debug)]
pub struct HostList {
    /// One set of connect options per host, in the URL's order.
    pub hosts: Vec<PgConnectOptions>,
    /// `host:port` of each, for logs and errors (never credentials).
    pub labels: Vec<String>,
    /// Bound of one attempt on one host.
    pub connect_timeout: Duration,
}

/// What one attempt on one host found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostState {
    /// Accepts writes.
    Primary,
    /// In recovery: a standby (or a proxy pointing at one).
    Standby,
    /// Not usable now, and why.
    Down(String),
}

impl std::fmt::Display for HostState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HostState::Primary => f.write_str("a writable primary"),
            HostState::Standby => f.write_str("a standby (in recovery, read-only)"),
            HostState::Down(why) => f.write_str(why),
        }
    }
}

impl HostList {
    /// Parse a `postgres://` URL with one host or a libpq host list (`h1:p1,h2:p2` in the
    /// authority, or `host=h1,h2&port=p1,p2` in the query). `target_session_attrs` may be
    /// `read-write`, `primary` or `any`: pnc-pki writes on every request, so every connection
    /// must be a writable primary whatever it says; `standby`, `read-only` and `prefer-standby`
    /// are refused. `connect_timeout` (seconds, as in libpq) overrides
    /// `PNC_DB_CONNECT_TIMEOUT`.
    pub fn parse(url: &str, connect_timeout: Duration) -> Result<HostList, StoreError> {
        let bad = |why: &str| {
            StoreError::BadUrl(format!("database URL '{}': {why}", super::redact_url(url)))
        };
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| bad("not a postgres:// URL"))?;
        let (before_query, query) = match rest.split_once('?') {
            Some((b, q)) => (b, Some(q)),
            None => (rest, None),
        };
        let (authority, path) = match before_query.find('/') {
            Some(i) => (&before_query[..i], &before_query[i..]),
            None => (before_query, ""),
        };
        let (userinfo, hostlist) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let mut hosts: Vec<(String, Option<String>)> = Vec::new();
        if !hostlist.is_empty() {
            for item in hostlist.split(',') {
                hosts.push(split_host_port(item).map_err(|e| bad(&e))?);
            }
        }
        let mut kept: Vec<&str> = Vec::new();
        let mut param_hosts: Option<Vec<String>> = None;
        let mut param_ports: Option<Vec<String>> = None;
        let mut timeout = connect_timeout;
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let v = percent_decode(v);
            match k {
                "host" => param_hosts = Some(v.split(',').map(str::to_string).collect()),
                "port" => param_ports = Some(v.split(',').map(str::to_string).collect()),
                "target_session_attrs" => match v.as_str() {
                    "read-write" | "primary" | "any" => {}
                    other => {
                        return Err(bad(&format!(
                            "target_session_attrs={other} cannot be honoured: pnc-pki writes on \
                             every request and needs a writable primary (use read-write)"
                        )));
                    }
                },
                "connect_timeout" => {
                    let secs: u64 = v
                        .parse()
                        .map_err(|_| bad("connect_timeout must be whole seconds"))?;
                    if secs > 0 {
                        timeout = Duration::from_secs(secs);
                    }
                }
                _ => kept.push(pair),
            }
        }
        if let Some(ph) = param_hosts {
            // As in libpq, host= in the query replaces the hosts of the authority.
            hosts = ph.into_iter().map(|h| (h, None)).collect();
        }
        if hosts.is_empty() {
            // No host at all: sqlx's defaults (PGHOST, the local socket) decide.
            hosts.push((String::new(), None));
        }
        if let Some(pp) = param_ports {
            if pp.len() == 1 {
                for h in &mut hosts {
                    h.1.get_or_insert_with(|| pp[0].clone());
                }
            } else if pp.len() == hosts.len() {
                for (h, p) in hosts.iter_mut().zip(pp) {
                    h.1 = Some(p);
                }
            } else {
                return Err(bad(&format!(
                    "{} hosts but {} ports",
                    hosts.len(),
                    pp.len()
                )));
            }
        }
        let user = userinfo.map(|u| format!("{u}@")).unwrap_or_default();
        let mut list = HostList {
            hosts: Vec::with_capacity(hosts.len()),
            labels: Vec::with_capacity(hosts.len()),
            connect_timeout: timeout,
        };
        for (host, port) in hosts {
            if let Some(p) = &port
                && p.parse::<u16>().is_err()
            {
                return Err(bad(&format!("invalid port '{p}'")));
            }
            let mut params: Vec<String> = kept.iter().map(|p| p.to_string()).collect();
            let authority = if host.is_empty() || host.starts_with('/') {
                // A socket directory (or no host) goes in the query, where sqlx reads it.
                if !host.is_empty() {
                    params.push(format!("host={host}"));
                }
                if let Some(p) = &port {
                    params.push(format!("port={p}"));
                }
                String::new()
            } else {
                let h = if host.contains(':') && !host.starts_with('[') {
                    format!("[{host}]")
                } else {
                    host.clone()
                };
                match &port {
                    Some(p) => format!("{h}:{p}"),
                    None => h,
                }
            };
            let q = if params.is_empty() {
                String::new()
            } else {
                format!("?{}", params.join("&"))
            };
            let one = format!("{scheme}://{user}{authority}{path}{q}");
            let opts: PgConnectOptions = one.parse().map_err(|e: sqlx::Error| {
                // sqlx may quote the URL it could not read: never with the password.
                let mut why = e.to_string();
                if let Some(pw) = userinfo.and_then(|u| u.split_once(':')).map(|(_, p)| p)
                    && !pw.is_empty()
                {
                    why = why.replace(pw, "***");
                }
                bad(&why)
            })?;
            list.labels
                .push(format!("{}:{}", opts.get_host(), opts.get_port()));
            list.hosts.push(opts);
        }
        Ok(list)
    }
}

/// `host`, `host:port`, `[v6]`, `[v6]:port`.
fn split_host_port(item: &str) -> Result<(String, Option<String>), String> {
    if let Some(rest) = item.strip_prefix('[') {
        let (h, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("unterminated IPv6 address in '{item}'"))?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p.to_string()),
            None if after.is_empty() => None,
            None => return Err(format!("unexpected '{after}' after '[{h}]'")),
        };
        return Ok((h.to_string(), port));
    }
    Ok(match item.rsplit_once(':') {
        Some((h, p)) => (h.to_string(), Some(p.to_string())),
        None => (item.to_string(), None),
    })
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(h) = std::str::from_utf8(&b[i + 1..i + 3])
            && let Ok(v) = u8::from_str_radix(h, 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Connect to one host and ask whether it is in recovery, all within `timeout`.
pub async fn probe(opts: &PgConnectOptions, timeout: Duration) -> HostState {
    let attempt = async {
        let mut c = PgConnection::connect_with(opts).await?;
        let in_recovery: bool = sqlx::query_scalar("SELECT pg_is_in_recovery()")
            .fetch_one(&mut c)
            .await?;
        let _ = c.close().await;
        Ok::<bool, sqlx::Error>(in_recovery)
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(Ok(false)) => HostState::Primary,
        Ok(Ok(true)) => HostState::Standby,
        Ok(Err(e)) => HostState::Down(short_error(&e)),
        Err(_) => HostState::Down(format!("no answer within {timeout:?}")),
    }
}

/// A connection error in a few words (sqlx's texts repeat themselves).
fn short_error(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Io(io) => io.to_string(),
        other => other.to_string(),
    }
}

/// The first host, in order, that is a writable primary; else what each one is.
pub async fn find_primary(list: &HostList) -> Result<usize, Vec<(String, HostState)>> {
    let mut seen = Vec::with_capacity(list.hosts.len());
    for (i, opts) in list.hosts.iter().enumerate() {
        match probe(opts, list.connect_timeout).await {
            HostState::Primary => return Ok(i),
            other => seen.push((list.labels[i].clone(), other)),
        }
    }
    Err(seen)
}

/// `h1:p1: what; h2:p2: what`.
pub fn describe(seen: &[(String, HostState)]) -> String {
    seen.iter()
        .map(|(h, s)| format!("{h}: {s}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Shared between the pool's callbacks and the locator task.
#[derive(Debug)]
pub struct Locator {
    list: HostList,
    /// The host the pool connects to now.
    current: AtomicUsize,
    /// When the pool was last pointed at another host, in ms after `origin`.
    switched_ms: AtomicU64,
    origin: Instant,
    wake: tokio::sync::Notify,
}

impl Locator {
    fn since_switch(&self) -> Duration {
        let at = Duration::from_millis(self.switched_ms.load(Ordering::Relaxed));
        self.origin.elapsed().saturating_sub(at)
    }

    /// `after_connect`: a new connection must be a writable primary. A standby (or a proxy
    /// pointing at one) is refused here, per connection, before any query of ours runs on it,
    /// and the locator looks for the primary at once.
    async fn check_new(&self, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        let host = &self.list.labels[self.current.load(Ordering::Relaxed)];
        let q = sqlx::query_scalar::<_, bool>("SELECT pg_is_in_recovery()").fetch_one(conn);
        match tokio::time::timeout(self.list.connect_timeout, q).await {
            Ok(Ok(false)) => Ok(()),
            Ok(Ok(true)) => {
                tracing::warn!(host = %host, "refused a database connection: the server is a standby (in recovery); looking for the primary");
                self.wake.notify_one();
                Err(sqlx::Error::Configuration(
                    format!("{host} is a standby (in recovery); pnc-pki needs a writable primary")
                        .into(),
                ))
            }
            Ok(Err(e)) => {
                self.wake.notify_one();
                Err(e)
            }
            Err(_) => {
                self.wake.notify_one();
                Err(sqlx::Error::Configuration(
                    format!(
                        "{host} did not answer the primary check within {:?}",
                        self.list.connect_timeout
                    )
                    .into(),
                ))
            }
        }
    }

    /// Watch the current primary; when it stops being one, scan until one answers and point
    /// the pool at it. Ends when the pool is closed.
    async fn run(self: Arc<Self>, pool: PgPool) {
        let mut watch: Option<PgConnection> = None;
        let mut lost_since: Option<Instant> = None;
        let mut last_warn: Option<Instant> = None;
        loop {
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(WATCH_EVERY) => {}
            }
            if pool.is_closed() {
                return;
            }
            let cur = self.current.load(Ordering::Relaxed);
            if lost_since.is_none() && self.still_primary(&mut watch, cur).await {
                continue;
            }
            watch = None;
            let since = *lost_since.get_or_insert_with(Instant::now);
            match find_primary(&self.list).await {
                Ok(i) => {
                    if i != cur {
                        pool.set_connect_options(self.list.hosts[i].clone());
                        self.current.store(i, Ordering::Relaxed);
                        self.switched_ms
                            .store(self.origin.elapsed().as_millis() as u64, Ordering::Relaxed);
                        tracing::warn!(from = %self.list.labels[cur], to = %self.list.labels[i], after_ms = since.elapsed().as_millis() as u64, "database primary moved; new connections go to the new primary");
                    } else {
                        tracing::info!(host = %self.list.labels[i], after_ms = since.elapsed().as_millis() as u64, "database primary is back");
                    }
                    lost_since = None;
                    last_warn = None;
                }
                Err(seen) => {
                    if last_warn.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                        tracing::warn!(hosts = %describe(&seen), for_ms = since.elapsed().as_millis() as u64, "no writable database primary among the hosts; retrying");
                        last_warn = Some(Instant::now());
                    }
                    tokio::time::sleep(RESCAN_EVERY).await;
                    // Scan again without waiting for the watch interval.
                    self.wake.notify_one();
                }
            }
        }
    }

    /// One bounded `pg_is_in_recovery()` on the watch connection (opened if needed).
    async fn still_primary(&self, watch: &mut Option<PgConnection>, cur: usize) -> bool {
        let t = self.list.connect_timeout;
        let check = async {
            if watch.is_none() {
                *watch = Some(PgConnection::connect_with(&self.list.hosts[cur]).await?);
            }
            let c = watch.as_mut().expect("opened above");
            sqlx::query_scalar::<_, bool>("SELECT pg_is_in_recovery()")
                .fetch_one(c)
                .await
        };
        match tokio::time::timeout(t, check).await {
            Ok(Ok(false)) => true,
            Ok(Ok(true)) => {
                tracing::warn!(host = %self.list.labels[cur], "the database primary turned into a standby");
                false
            }
            Ok(Err(e)) => {
                tracing::warn!(host = %self.list.labels[cur], error = %short_error(&e), "lost the database primary");
                false
            }
            Err(_) => {
                tracing::warn!(host = %self.list.labels[cur], "the database primary did not answer within the connect timeout");
                false
            }
        }
    }
}

/// Open the pool on the first writable primary of `url`'s hosts (waiting up to `acquire` for
/// one), with every new connection checked and, for a host list, a locator task following the
/// primary.
pub async fn connect(
    url: &str,
    acquire: Duration,
    connect_timeout: Duration,
) -> Result<PgPool, StoreError> {
    let list = HostList::parse(url, connect_timeout)?;
    let started = Instant::now();
    let first = loop {
        match find_primary(&list).await {
            Ok(i) => break i,
            Err(seen) if started.elapsed() >= acquire => {
                return Err(StoreError::NoPrimary(format!(
                    "no writable PostgreSQL primary among the database URL's hosts after {acquire:?}: {}",
                    describe(&seen)
                )));
            }
            Err(_) => tokio::time::sleep(RESCAN_EVERY).await,
        }
    };
    if list.hosts.len() > 1 {
        tracing::info!(primary = %list.labels[first], hosts = %list.labels.join(","), "database host list: connecting to the primary");
    }
    let loc = Arc::new(Locator {
        current: AtomicUsize::new(first),
        switched_ms: AtomicU64::new(0),
        origin: Instant::now(),
        wake: tokio::sync::Notify::new(),
        list,
    });
    let (on_connect, on_acquire) = (loc.clone(), loc.clone());
    let pool = PgPoolOptions::new()
        .max_connections(16)
        .acquire_timeout(acquire)
        .after_connect(move |conn, _meta| {
            let loc = on_connect.clone();
            Box::pin(async move { loc.check_new(conn).await })
        })
        .before_acquire(move |_conn, meta| {
            // A connection older than the last switch was opened to the former primary: drop
            // it (it may be a demoted server now, or come back as a second primary).
            let fresh = meta.age <= on_acquire.since_switch();
            Box::pin(async move { Ok(fresh) })
        })
        .connect_lazy_with(loc.list.hosts[first].clone());
    if loc.list.hosts.len() > 1 {
        tokio::spawn(loc.clone().run(pool.clone()));
    }
    Ok(pool)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> HostList {
        HostList::parse(url, DEFAULT_CONNECT_TIMEOUT).unwrap()
    }

    #[test]
    fn host_lists_in_the_authority_and_the_query() {
        let l = parse(
            "postgres://u:pw@10.0.0.1:5433,10.0.0.2:5434/pki?target_session_attrs=read-write",
        );
        assert_eq!(l.labels, ["10.0.0.1:5433", "10.0.0.2:5434"]);
        assert_eq!(l.hosts[1].get_database(), Some("pki"));
        assert_eq!(l.hosts[1].get_username(), "u");
        let l = parse("postgresql://u@/pki?host=a,b&port=1,2");
        assert_eq!(l.labels, ["a:1", "b:2"]);
        let l = parse("postgres://u@a,b/pki?port=7&sslmode=disable");
        assert_eq!(l.labels, ["a:7", "b:7"]);
        let l = parse("postgres://u@[::1]:6000,db.example:6001/pki?connect_timeout=2");
        assert_eq!(l.labels, ["[::1]:6000", "db.example:6001"]);
        assert_eq!(l.connect_timeout, Duration::from_secs(2));
        assert_eq!(parse("postgres://u@h/d").labels, ["h:5432"]);
    }

    #[test]
    fn refuses_what_it_cannot_honour() {
        for url in [
            "postgres://u@a,b/d?target_session_attrs=standby",
            "postgres://u@a,b/d?target_session_attrs=prefer-standby",
            "postgres://u@a:x/d",
            "postgres://u@a,b/d?port=1,2,3",
        ] {
            let e = HostList::parse(url, DEFAULT_CONNECT_TIMEOUT).unwrap_err();
            assert!(matches!(e, StoreError::BadUrl(_)), "{url}: {e}");
        }
    }

    #[test]
    fn credentials_never_in_errors() {
        let e = HostList::parse("postgres://u:secret@a:x/d", DEFAULT_CONNECT_TIMEOUT)
            .unwrap_err()
            .to_string();
        assert!(!e.contains("secret"), "{e}");
    }
}
