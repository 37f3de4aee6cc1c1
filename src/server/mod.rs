//! The transport of `serve`: accept loops for plain HTTP/1.1 and TLS 1.3 ([`tls`]), the limits
//! every connection lives under ([`Limits`]: a connection cap, head, idle and whole-request
//! timeouts), who is on the other end ([`Peer`], in every request's extensions), and the direct
//! path for OCSP.
//!
//! OCSP requests (`POST /ocsp…` with a Content-Length, `GET /ocsp/…`) are answered directly on
//! the socket: parsed with `httparse`, answered by the [`Responder`], written with one `write`.
//! Everything else, and any OCSP request that uses a less common HTTP feature (chunked bodies,
//! `Expect`, `Upgrade`, an absolute-form target, a malformed head…), hands the connection, with
//! the bytes already read, to hyper and the full axum router, which serves the same OCSP
//! handlers. Why: OCSP is the hottest path of the product, and hyper + axum cost a keep-alive
//! OCSP request about 10 µs of CPU where this path costs 7 (docs/benchmarks-ocsp.md). The answer
//! itself — status, headers, body — is defined once, in [`crate::ocsp::http`].

pub mod tls;

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::{Buf, BytesMut};
use futures_util::FutureExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::runtime::Handle;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::client_ip::{ClientIp, TrustedProxies};
use crate::config::ConfigError;
use crate::duration::parse_duration;
use crate::ocsp::http::{MAX_BODY_LEN, Reply, answer_get, answer_post, http_date};
use crate::ocsp::responder::Responder;
use crate::ocsp::wire::ErrorStatus;

/// Longest request head read on the direct path; longer heads go to hyper (which answers 431).
const MAX_HEAD: usize = 8 * 1024;

/// Who is on the other end of a connection; in the extensions of every request, next to the
/// [`crate::client_ip::ClientIp`] the request is attributed to.
#[derive(Clone, Debug)]
pub struct Peer {
    /// The peer's address.
    pub addr: SocketAddr,
    /// DER of a client certificate that verified against `PNC_TLS_CLIENT_CA` (TLS only).
    pub client_cert: Option<Arc<Vec<u8>>>,
}

/// The limits every connection lives under, plain or TLS.
///
/// | variable                    | default | meaning                                                  |
/// |-----------------------------|---------|----------------------------------------------------------|
/// | `PNC_HTTP_MAX_CONNECTIONS`  | `768`   | open connections; beyond, new ones are closed at once     |
/// | `PNC_HTTP_MAX_CONNECTIONS_PER_IP` | `128` | open connections from one address (IPv6: one /64); trusted proxies are exempt; `0`: no per-address cap |
/// | `PNC_HTTP_HEAD_TIMEOUT`     | `10s`   | to receive a request head (and, on the API, to wait idle) |
/// | `PNC_HTTP_IDLE_TIMEOUT`     | `30s`   | an idle keep-alive connection on the OCSP path            |
/// | `PNC_HTTP_REQUEST_TIMEOUT`  | `20s`   | a whole API request, its body included                    |
/// | `PNC_TLS_HANDSHAKE_TIMEOUT` | `10s`   | a TLS handshake                                           |
///
/// The default cap stays below the common `ulimit -n` of 1024, so that the database, the token
/// and the log keep their descriptors however many clients connect.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Open connections (plain and TLS together).
    pub max_connections: usize,
    /// Open connections from one address (0: no per-address cap).
    pub max_connections_per_ip: usize,
    /// Time to receive a whole request head once it started (slow-loris guard); on the API also
    /// how long an idle keep-alive connection waits for its next request.
    pub head_timeout: Duration,
    /// Time an idle keep-alive connection is kept open on the OCSP path.
    pub idle_timeout: Duration,
    /// Time for a whole API request, body included (slow bodies are cut off).
    pub request_timeout: Duration,
    /// Time for a TLS handshake.
    pub handshake_timeout: Duration,
    /// Proxies whose `X-Forwarded-For` names the client (`PNC_TRUSTED_PROXIES`).
    pub trusted: TrustedProxies,
    /// How long a shutdown waits for requests in flight (`PNC_SHUTDOWN_GRACE`).
    pub shutdown_grace: Duration,
    slots: Arc<Semaphore>,
    per_ip: Arc<PerIp>,
    refused: Arc<AtomicU64>,
    drain: Arc<Drain>,
}

/// Graceful shutdown of one server: once started, no new connection is taken, a request that
/// arrives on an open one is refused with 503 before any work, keep-alive connections close
/// after their current request, and the server waits for the requests in flight.
#[derive(Debug, Default)]
struct Drain {
    draining: std::sync::atomic::AtomicBool,
    in_flight: std::sync::atomic::AtomicUsize,
    notify: tokio::sync::Notify,
}

/// A request in flight; counted until dropped.
struct InFlight(Arc<Drain>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Drain {
    fn start(&self) {
        self.draining.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Completes when the drain starts.
    async fn started(&self) {
        let n = self.notify.notified();
        if self.is_draining() {
            return;
        }
        n.await;
    }

    /// Count a request, or `None` when draining (it must then be refused before any work).
    /// Counting first and checking second: a drain that started meanwhile waits for it.
    fn enter(self: &Arc<Self>) -> Option<InFlight> {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let guard = InFlight(self.clone());
        (!self.is_draining()).then_some(guard)
    }

    /// Wait until no request is in flight or `grace` has passed; true when none is left.
    async fn finish(&self, grace: Duration) -> bool {
        let until = tokio::time::Instant::now() + grace;
        loop {
            if self.in_flight.load(Ordering::SeqCst) == 0 {
                return true;
            }
            if tokio::time::Instant::now() >= until {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Open connections per address (IPv6: per /64).
type PerIp = Mutex<HashMap<IpAddr, usize>>;

/// A connection's place under the caps; released when the connection ends.
struct Slot {
    _global: OwnedSemaphorePermit,
    per_ip: Option<(Arc<PerIp>, IpAddr)>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some((map, ip)) = &self.per_ip {
            let mut m = map.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(n) = m.get_mut(ip) {
                *n -= 1;
                if *n == 0 {
                    m.remove(ip);
                }
            }
        }
    }
}

impl Limits {
    /// Limits with these values.
    pub fn new(
        max_connections: usize,
        head_timeout: Duration,
        idle_timeout: Duration,
        request_timeout: Duration,
        handshake_timeout: Duration,
    ) -> Limits {
        let max_connections = max_connections.max(1);
        Limits {
            max_connections,
            max_connections_per_ip: 128,
            head_timeout,
            idle_timeout,
            request_timeout,
            handshake_timeout,
            trusted: TrustedProxies::default(),
            shutdown_grace: Duration::from_secs(10),
            slots: Arc::new(Semaphore::new(max_connections)),
            per_ip: Arc::new(Mutex::new(HashMap::new())),
            refused: Arc::new(AtomicU64::new(0)),
            drain: Arc::new(Drain::default()),
        }
    }

    /// Stop taking connections and requests, then wait (at most `shutdown_grace`) for the
    /// requests in flight; the caller exits afterwards. Logged either way.
    pub async fn drain(&self) {
        self.drain.start();
        tracing::info!(
            grace_s = self.shutdown_grace.as_secs_f64(),
            "shutting down: draining requests in flight"
        );
        if self.drain.finish(self.shutdown_grace).await {
            // Let the last answers leave their sockets.
            tokio::time::sleep(Duration::from_millis(100)).await;
            tracing::info!("shutdown: every request in flight finished");
        } else {
            tracing::warn!(
                left = self.drain.in_flight.load(Ordering::SeqCst),
                "shutdown: requests still in flight after PNC_SHUTDOWN_GRACE; exiting (their transactions roll back)"
            );
        }
    }

    /// From the environment (see the table above).
    pub fn from_env() -> Result<Limits, ConfigError> {
        let dur = |name: &str, default: u64| -> Result<Duration, ConfigError> {
            match std::env::var(name) {
                Ok(v) if !v.trim().is_empty() => {
                    parse_duration(&v).map_err(|e| ConfigError(format!("{name}: {e}")))
                }
                _ => Ok(Duration::from_secs(default)),
            }
        };
        let max = match std::env::var("PNC_HTTP_MAX_CONNECTIONS") {
            Ok(v) if !v.trim().is_empty() => v.trim().parse::<usize>().map_err(|_| {
                ConfigError(format!("PNC_HTTP_MAX_CONNECTIONS='{v}' is not a number"))
            })?,
            _ => 768,
        };
        let mut l = Limits::new(
            max,
            dur("PNC_HTTP_HEAD_TIMEOUT", 10)?,
            dur("PNC_HTTP_IDLE_TIMEOUT", 30)?,
            dur("PNC_HTTP_REQUEST_TIMEOUT", 20)?,
            dur("PNC_TLS_HANDSHAKE_TIMEOUT", 10)?,
        );
        l.trusted = TrustedProxies::from_env().map_err(|e| ConfigError(e.to_string()))?;
        l.shutdown_grace = dur("PNC_SHUTDOWN_GRACE", 10)?;
        if let Ok(v) = std::env::var("PNC_HTTP_MAX_CONNECTIONS_PER_IP")
            && !v.trim().is_empty()
        {
            l.max_connections_per_ip = v.trim().parse::<usize>().map_err(|_| {
                ConfigError(format!(
                    "PNC_HTTP_MAX_CONNECTIONS_PER_IP='{v}' is not a number"
                ))
            })?;
        }
        Ok(l)
    }

    /// A slot for a new connection from `peer`, or `None` when a cap is reached (the
    /// connection is then closed at once, with a log line at the 1st, 2nd, 4th, 8th… refusal).
    fn admit(&self, peer: IpAddr) -> Option<Slot> {
        if self.drain.is_draining() {
            // Shutting down: the connection is closed before any request is read.
            return None;
        }
        let refuse = |which: &str, cap: usize| {
            let n = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!(cap, refused = n, peer = %peer, "connection cap reached ({which}): closing new connections");
            }
            None
        };
        let Ok(global) = self.slots.clone().try_acquire_owned() else {
            return refuse("PNC_HTTP_MAX_CONNECTIONS", self.max_connections);
        };
        if self.max_connections_per_ip == 0 || self.trusted.trusts(peer) {
            return Some(Slot {
                _global: global,
                per_ip: None,
            });
        }
        let key = ClientIp(peer).limit_key();
        {
            let mut m = self.per_ip.lock().unwrap_or_else(|p| p.into_inner());
            let n = m.entry(key).or_insert(0);
            if *n >= self.max_connections_per_ip {
                drop(m);
                return refuse(
                    "PNC_HTTP_MAX_CONNECTIONS_PER_IP",
                    self.max_connections_per_ip,
                );
            }
            *n += 1;
        }
        Some(Slot {
            _global: global,
            per_ip: Some((self.per_ip.clone(), key)),
        })
    }
}

/// The router behind the direct path (what `serve` builds).
pub trait App:
    tower::Service<
        axum::http::Request<Body>,
        Response = Response,
        Error = std::convert::Infallible,
        Future: Send + 'static,
    > + Clone
    + Send
    + 'static
{
}

impl<S> App for S where
    S: tower::Service<
            axum::http::Request<Body>,
            Response = Response,
            Error = std::convert::Infallible,
            Future: Send + 'static,
        > + Clone
        + Send
        + 'static
{
}

/// Accept loops: HTTP/1.1 only (no HTTP/2 preface sniffing), `TCP_NODELAY`, keep-alive.
///
/// One accept thread per CPU, each with a single-threaded tokio runtime and a clone of the
/// listening socket: a short connection (one OCSP request, then close: most chargers) is
/// accepted, read, answered and closed on one thread, without the cross-thread wake-ups of the
/// multi-threaded scheduler, which cost such a connection a third of its CPU time. A connection
/// that stays open (keep-alive) or is not OCSP moves after its first request to the caller's
/// multi-threaded runtime, whose work stealing keeps tail latency low when many connections are
/// busy at once; the API has always run there. Measured in docs/benchmarks-ocsp.md. Returns when
/// `shutdown` completes; the accept threads end with the process.
pub async fn serve_plain(
    listener: tokio::net::TcpListener,
    app: impl App,
    ocsp: Responder,
    limits: Limits,
    shutdown: impl std::future::Future<Output = ()>,
) -> io::Result<()> {
    let listener = listener.into_std()?;
    let main = tokio::runtime::Handle::current();
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    for i in 0..threads {
        let l = listener.try_clone()?;
        let (app, ocsp, main, limits) = (app.clone(), ocsp.clone(), main.clone(), limits.clone());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name(format!("pnc-http-{i}"))
            .spawn(move || {
                rt.block_on(async move {
                    let l = match tokio::net::TcpListener::from_std(l) {
                        Ok(l) => l,
                        Err(e) => {
                            tracing::error!(error = %e, "cannot register the listening socket");
                            return;
                        }
                    };
                    accept_loop(l, move |tcp, addr| {
                        let Some(slot) = limits.admit(addr.ip()) else {
                            return;
                        };
                        let conn = Conn {
                            peer: Peer {
                                addr,
                                client_cert: None,
                            },
                            limits: limits.clone(),
                            _slot: slot,
                        };
                        tokio::spawn(first_request(
                            tcp,
                            app.clone(),
                            ocsp.clone(),
                            main.clone(),
                            conn,
                        ));
                    })
                    .await
                })
            })?;
    }
    shutdown.await;
    limits.drain().await;
    Ok(())
}

/// What a connection carries through its life: who is on the other end, its limits, and its
/// slot under the connection cap (released when the connection ends).
struct Conn {
    peer: Peer,
    limits: Limits,
    _slot: Slot,
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    mut on_accept: impl FnMut(TcpStream, SocketAddr),
) {
    loop {
        match listener.accept().await {
            Ok((tcp, addr)) => {
                let _ = tcp.set_nodelay(true);
                on_accept(tcp, addr);
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// On an accept thread: answer the first request if it is OCSP; move whatever follows to the
/// main runtime.
async fn first_request(
    mut tcp: TcpStream,
    app: impl App,
    ocsp: Responder,
    main: Handle,
    conn: Conn,
) {
    let mut buf = BytesMut::with_capacity(4096);
    let next = match direct(&mut tcp, &mut buf, &ocsp, &conn, true).await {
        Ok(Next::Done) | Err(_) => return,
        Ok(next) => next,
    };
    // Re-register the socket with the main runtime's reactor.
    let Ok(tcp) = tcp.into_std() else { return };
    main.spawn(async move {
        let Ok(mut tcp) = TcpStream::from_std(tcp) else {
            return;
        };
        if let Next::KeepAlive = next {
            match direct(&mut tcp, &mut buf, &ocsp, &conn, false).await {
                Ok(Next::HandOver) => {}
                _ => return,
            }
        }
        let io = Prefixed {
            prefix: buf.freeze(),
            io: tcp,
        };
        serve_connection(io, app, conn).await;
    });
}

/// What the direct path leaves behind.
enum Next {
    /// The connection is finished (closed by either side, timed out, or `Connection: close`).
    Done,
    /// A request the direct path does not take is at the start of the buffer.
    HandOver,
    /// One request was answered (`first_only`) and the connection stays open.
    KeepAlive,
}

/// An OCSP request head the direct path answers.
#[derive(Debug, PartialEq, Eq)]
struct Head {
    get: bool,
    /// The request target without its query (GET carries the request in it).
    path: String,
    head_len: usize,
    body_len: usize,
    /// Close after answering (HTTP/1.0 without keep-alive, or `Connection: close`).
    close: bool,
    /// HTTP/1.0 with `Connection: keep-alive`: say so in the answer.
    http10_keep_alive: bool,
    /// `X-Forwarded-For` values, comma-joined (believed only from a trusted proxy).
    forwarded_for: Option<String>,
}

enum Parsed {
    Ocsp(Head),
    Other,
    Incomplete,
}

/// How the direct path classifies the bytes at the start of a connection (for fuzzing and
/// tests; the server uses the same function).
#[derive(Debug, PartialEq, Eq)]
pub enum Classified {
    /// An OCSP request the direct path answers: GET or POST, the path, the head's length and
    /// the body's.
    Ocsp {
        /// GET (else POST).
        get: bool,
        /// Path without query.
        path: String,
        /// Bytes of the head.
        head_len: usize,
        /// Bytes of the body.
        body_len: usize,
    },
    /// Handed to hyper.
    Other,
    /// Needs more bytes.
    Incomplete,
}

/// Classify `buf` as the direct path does.
pub fn classify(buf: &[u8]) -> Classified {
    match parse_head(buf) {
        Parsed::Ocsp(h) => Classified::Ocsp {
            get: h.get,
            path: h.path,
            head_len: h.head_len,
            body_len: h.body_len,
        },
        Parsed::Other => Classified::Other,
        Parsed::Incomplete => Classified::Incomplete,
    }
}

fn header_is(name: &str, want: &str) -> bool {
    name.eq_ignore_ascii_case(want)
}

/// Classify the request head at the start of `buf`. Anything unusual is `Other`: hyper then
/// handles it (and its errors) exactly as for any other route.
fn parse_head(buf: &[u8]) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() <= MAX_HEAD => return Parsed::Incomplete,
        _ => return Parsed::Other,
    };
    let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version) else {
        return Parsed::Other;
    };
    let path = target.split('?').next().unwrap_or(target);
    if !(path == "/ocsp" || path.starts_with("/ocsp/")) {
        return Parsed::Other;
    }
    let get = match method {
        "GET" => true,
        "POST" => false,
        _ => return Parsed::Other,
    };
    let mut body_len = None;
    let (mut saw_close, mut saw_keep_alive) = (false, false);
    let mut forwarded_for: Option<String> = None;
    for h in req.headers.iter() {
        if header_is(h.name, "content-length") {
            let v = std::str::from_utf8(h.value).unwrap_or("").trim();
            match (body_len, v.parse::<usize>()) {
                (None, Ok(n)) if v.bytes().all(|b| b.is_ascii_digit()) => body_len = Some(n),
                _ => return Parsed::Other,
            }
        } else if header_is(h.name, "transfer-encoding")
            || header_is(h.name, "expect")
            || header_is(h.name, "upgrade")
        {
            return Parsed::Other;
        } else if header_is(h.name, "connection") {
            for token in std::str::from_utf8(h.value).unwrap_or("").split(',') {
                saw_close |= token.trim().eq_ignore_ascii_case("close");
                saw_keep_alive |= token.trim().eq_ignore_ascii_case("keep-alive");
            }
        } else if header_is(h.name, "x-forwarded-for") {
            let v = std::str::from_utf8(h.value).unwrap_or("");
            match &mut forwarded_for {
                Some(f) => {
                    f.push(',');
                    f.push_str(v);
                }
                None => forwarded_for = Some(v.to_string()),
            }
        }
    }
    // HTTP/1.1 keeps the connection unless told to close; HTTP/1.0 closes unless told otherwise.
    let close = saw_close || (version == 0 && !saw_keep_alive);
    let body_len = match (get, body_len) {
        (true, None | Some(0)) => 0,
        (false, Some(n)) if n <= MAX_BODY_LEN => n,
        _ => return Parsed::Other,
    };
    Parsed::Ocsp(Head {
        get,
        path: path.to_string(),
        head_len,
        body_len,
        close,
        http10_keep_alive: version == 0 && !close,
        forwarded_for,
    })
}

/// Read more bytes into `buf`; `false` when the peer closed or the deadline passed.
///
/// On a `fresh` connection the first attempt is a plain non-blocking `read`: its request is
/// usually waiting already, but tokio only reads once its reactor has reported the socket
/// readable, a round trip through the scheduler per connection. A `WouldBlock` falls through to
/// tokio's read, which clears the readiness it holds and waits. Later reads (keep-alive) go to
/// tokio at once: there the next request has mostly not arrived yet, and the plain `read` would
/// be one wasted syscall per request.
async fn fill(
    tcp: &mut TcpStream,
    buf: &mut BytesMut,
    deadline: tokio::time::Instant,
    fresh: bool,
) -> bool {
    use std::io::Read;
    if fresh {
        let start = buf.len();
        buf.resize(start + 4096, 0);
        match (&*socket2::SockRef::from(&*tcp)).read(&mut buf[start..]) {
            Ok(n) => {
                buf.truncate(start + n);
                return n > 0;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => buf.truncate(start),
            Err(_) => return false,
        }
    }
    matches!(
        tokio::time::timeout_at(deadline, tcp.read_buf(buf)).await,
        Ok(Ok(n)) if n > 0
    )
}

/// Write all of `out`: a plain non-blocking `write` first (for the same reason as in [`fill`]),
/// tokio for whatever did not fit.
async fn send(tcp: &mut TcpStream, out: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let n = match (&*socket2::SockRef::from(&*tcp)).write(out) {
        Ok(n) => n,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
        Err(e) => return Err(e),
    };
    if n < out.len() {
        tcp.write_all(&out[n..]).await?;
    }
    Ok(())
}

/// Answer OCSP requests on this connection until it ends or another request comes (or after
/// the first one, with `first_only`).
async fn direct(
    tcp: &mut TcpStream,
    buf: &mut BytesMut,
    r: &Responder,
    conn: &Conn,
    first_only: bool,
) -> io::Result<Next> {
    let limits = &conn.limits;
    let mut out = Vec::with_capacity(1024);
    let mut fresh = first_only && buf.is_empty();
    loop {
        let idle_deadline = tokio::time::Instant::now() + limits.idle_timeout;
        let mut head_deadline = None;
        let head = loop {
            match parse_head(buf) {
                Parsed::Ocsp(h) => break h,
                Parsed::Other => return Ok(Next::HandOver),
                Parsed::Incomplete => {}
            }
            let deadline = match (buf.is_empty(), head_deadline) {
                (true, _) => idle_deadline,
                (false, Some(d)) => d,
                (false, None) => {
                    *head_deadline.insert(tokio::time::Instant::now() + limits.head_timeout)
                }
            };
            if !fill(tcp, buf, deadline, std::mem::take(&mut fresh)).await {
                return Ok(Next::Done);
            }
        };
        let total = head.head_len + head.body_len;
        let body_deadline = tokio::time::Instant::now() + limits.head_timeout;
        while buf.len() < total {
            if !fill(tcp, buf, body_deadline, false).await {
                return Ok(Next::Done);
            }
        }
        let reply = {
            let body = &buf[head.head_len..total];
            let ip = limits.trusted.client(
                conn.peer.addr.ip(),
                head.forwarded_for.iter().map(String::as_str),
            );
            let work = async {
                if head.get {
                    answer_get(r, &head.path, Some(ip)).await
                } else {
                    answer_post(r, body, Some(ip)).await
                }
            };
            // The responder does not panic by design; if it ever did, this client gets
            // internalError and the connection stays usable.
            std::panic::AssertUnwindSafe(work)
                .catch_unwind()
                .await
                .unwrap_or(Reply::error(ErrorStatus::InternalError, head.get, r.now()))
        };
        buf.advance(total);
        out.clear();
        render(&mut out, reply, &head);
        send(tcp, &out).await?;
        if head.close {
            let _ = tcp.shutdown().await;
            return Ok(Next::Done);
        }
        if first_only {
            return Ok(Next::KeepAlive);
        }
    }
}

/// The whole HTTP answer in one buffer (one `write` per response).
fn render(out: &mut Vec<u8>, reply: Reply, head: &Head) {
    let now = reply.now;
    out.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
    reply.headers(|name, value| {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    });
    let body = reply.into_body();
    out.extend_from_slice(b"content-length: ");
    out.extend_from_slice(body.len().to_string().as_bytes());
    out.extend_from_slice(b"\r\ndate: ");
    DATE.with(|d| {
        let mut d = d.borrow_mut();
        if d.0 != now {
            *d = (now, http_date(now));
        }
        if let Some(v) = &d.1 {
            out.extend_from_slice(v.as_bytes());
        }
    });
    out.extend_from_slice(b"\r\n");
    if head.close {
        out.extend_from_slice(b"connection: close\r\n");
    } else if head.http10_keep_alive {
        out.extend_from_slice(b"connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&body);
}

thread_local! {
    /// The Date header, formatted once per second per thread.
    static DATE: std::cell::RefCell<(i64, Option<HeaderValue>)> = const { std::cell::RefCell::new((0, None)) };
}

/// Serve a connection with hyper and the full router: HTTP/1.1, keep-alive, request heads up to
/// 64 KiB (hyper's default is about 400 KiB; longer ones get 431), `head_timeout` for every head
/// and for the idle wait before it, `request_timeout` for each whole request (a body trickling in
/// is answered 408 and the connection closed). [`Peer`] goes into every request's extensions.
async fn serve_connection<I>(io: I, app: impl App, conn: Conn)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    use hyper_util::rt::TokioIo;
    use hyper_util::service::TowerToHyperService;
    let (peer, limits) = (conn.peer.clone(), conn.limits.clone());
    let drain = conn.limits.drain.clone();
    let svc = TowerToHyperService::new(tower::service_fn(
        move |req: axum::http::Request<hyper::body::Incoming>| {
            let Some(in_flight) = limits.drain.enter() else {
                return futures_util::future::Either::Left(std::future::ready(Ok(shutting_down())));
            };
            let mut req = req.map(Body::new);
            let ip = limits.trusted.client(
                peer.addr.ip(),
                req.headers()
                    .get_all("x-forwarded-for")
                    .iter()
                    .filter_map(|v| v.to_str().ok()),
            );
            req.extensions_mut().insert(ip);
            req.extensions_mut().insert(peer.clone());
            let work = tower::ServiceExt::oneshot(app.clone(), req);
            let deadline = limits.request_timeout;
            futures_util::future::Either::Right(async move {
                let r = match tokio::time::timeout(deadline, work).await {
                    Ok(r) => r,
                    Err(_) => Ok(request_timeout()),
                };
                drop(in_flight);
                r
            })
        },
    ));
    let served = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(conn.limits.head_timeout)
        .max_buf_size(64 * 1024)
        .keep_alive(true)
        .serve_connection(TokioIo::new(io), svc);
    tokio::pin!(served);
    tokio::select! {
        _ = served.as_mut() => {}
        () = drain.started() => {
            // Finish the request being served, then close instead of waiting for another.
            served.as_mut().graceful_shutdown();
            let _ = served.await;
        }
    }
    drop(conn);
}

/// 503 for a request that arrives while the server shuts down: refused before any work.
fn shutting_down() -> Response {
    let body = serde_json::json!({
        "type": "urn:pnc-pki:error:shutting_down",
        "title": "Service Unavailable",
        "status": 503,
        "code": "shutting_down",
        "detail": "the server is shutting down; retry on another replica",
    });
    let mut r = (
        StatusCode::SERVICE_UNAVAILABLE,
        [
            (axum::http::header::CONTENT_TYPE, "application/problem+json"),
            (axum::http::header::CONNECTION, "close"),
            (axum::http::header::RETRY_AFTER, "1"),
        ],
        body.to_string(),
    )
        .into_response();
    r.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    r
}

/// 408 for a request that did not complete in time, closing the connection.
fn request_timeout() -> Response {
    let body = serde_json::json!({
        "type": "urn:pnc-pki:error:request_timeout",
        "title": "Request Timeout",
        "status": 408,
        "code": "request_timeout",
        "detail": "the request did not complete in time",
    });
    let mut r = (
        StatusCode::REQUEST_TIMEOUT,
        [
            (axum::http::header::CONTENT_TYPE, "application/problem+json"),
            (axum::http::header::CONNECTION, "close"),
        ],
        body.to_string(),
    )
        .into_response();
    r.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    r
}

/// A stream that first yields bytes already read from it.
struct Prefixed {
    prefix: Bytes,
    io: TcpStream,
}

impl AsyncRead for Prefixed {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.prefix.is_empty() {
            let n = this.prefix.len().min(buf.remaining());
            buf.put_slice(&this.prefix.split_to(n));
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Prefixed {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, data)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ocsp(buf: &[u8]) -> Head {
        match parse_head(buf) {
            Parsed::Ocsp(h) => h,
            Parsed::Other => panic!("handed over: {}", String::from_utf8_lossy(buf)),
            Parsed::Incomplete => panic!("incomplete: {}", String::from_utf8_lossy(buf)),
        }
    }

    fn other(buf: &[u8]) -> bool {
        matches!(parse_head(buf), Parsed::Other)
    }

    #[test]
    fn plain_ocsp_requests_take_the_direct_path() {
        let h = ocsp(b"POST /ocsp HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nabcde");
        assert!(!h.get && h.body_len == 5 && !h.close && h.head_len == 51);
        let h = ocsp(b"GET /ocsp/MEMw%2FB?x=1 HTTP/1.1\r\n\r\n");
        assert!(h.get && h.path == "/ocsp/MEMw%2FB" && h.body_len == 0);
        let h = ocsp(b"POST /ocsp/ HTTP/1.0\r\nContent-Length: 1\r\n\r\n");
        assert!(h.close && !h.http10_keep_alive);
        let h = ocsp(b"POST /ocsp HTTP/1.0\r\nConnection: Keep-Alive\r\nContent-Length: 1\r\n\r\n");
        assert!(!h.close && h.http10_keep_alive);
        let h = ocsp(b"GET /ocsp/AA HTTP/1.1\r\nConnection: close\r\n\r\n");
        assert!(h.close);
    }

    #[test]
    fn anything_unusual_goes_to_hyper() {
        assert!(other(b"GET /health/live HTTP/1.1\r\n\r\n"));
        assert!(other(b"GET /ocspx HTTP/1.1\r\n\r\n"));
        assert!(other(b"HEAD /ocsp/AA HTTP/1.1\r\n\r\n"));
        assert!(other(b"POST /ocsp HTTP/1.1\r\n\r\n"), "no length");
        assert!(other(
            b"POST /ocsp HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        ));
        assert!(other(
            b"POST /ocsp HTTP/1.1\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
        ));
        assert!(other(
            b"POST /ocsp HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"
        ));
        assert!(other(b"POST /ocsp HTTP/1.1\r\nContent-Length: +5\r\n\r\n"));
        assert!(other(
            b"POST /ocsp HTTP/1.1\r\nContent-Length: 999999\r\n\r\n"
        ));
        assert!(other(b"GET /ocsp/AA HTTP/1.1\r\nContent-Length: 3\r\n\r\n"));
        assert!(other(
            b"POST http://h/ocsp HTTP/1.1\r\nContent-Length: 1\r\n\r\n"
        ));
        assert!(other(b"\x16\x03\x01garbage\r\n\r\n"));
        let mut long = b"GET /ocsp/AA HTTP/1.1\r\nX: ".to_vec();
        long.resize(MAX_HEAD + 10, b'a');
        assert!(other(&long), "an endless head is not waited for");
    }

    #[test]
    fn partial_heads_wait_for_more() {
        assert!(matches!(
            parse_head(b"POST /ocsp HTTP/1.1\r\nContent-Le"),
            Parsed::Incomplete
        ));
        assert!(matches!(parse_head(b""), Parsed::Incomplete));
    }

    /// The fuzzing seeds and corpus (fuzz/, part of the repository) replayed on every test run,
    /// with the fuzz target's invariants.
    #[test]
    fn fuzz_seeds_and_corpus_replay() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
        let mut n = 0;
        for dir in ["seeds/ocsp_head", "corpus/ocsp_head"] {
            for e in std::fs::read_dir(root.join(dir)).expect(dir) {
                let b = std::fs::read(e.unwrap().path()).unwrap();
                if let Classified::Ocsp {
                    get,
                    path,
                    head_len,
                    body_len,
                } = classify(&b)
                {
                    assert!(head_len <= b.len() && path.starts_with("/ocsp"));
                    assert!(body_len <= MAX_BODY_LEN && (!get || body_len == 0));
                }
                n += 1;
            }
        }
        assert!(n >= 100, "{n} inputs");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        /// Arbitrary bytes never panic, and a head taken for OCSP is consistent with its input.
        #[test]
        fn arbitrary_bytes_are_classified_without_panic(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..3000)
        ) {
            if let Parsed::Ocsp(h) = parse_head(&bytes) {
                proptest::prop_assert!(h.head_len <= bytes.len());
                proptest::prop_assert!(h.body_len <= MAX_BODY_LEN);
                proptest::prop_assert!(h.path.starts_with("/ocsp"));
                proptest::prop_assert!(!h.get || h.body_len == 0);
            }
        }

        /// A valid OCSP head with bytes overwritten at random positions: never a panic, and
        /// whatever is taken for OCSP still has a sane shape.
        #[test]
        fn mutated_heads_are_classified_without_panic(
            edits in proptest::collection::vec((0usize..120, proptest::prelude::any::<u8>()), 1..8),
            cut in 0usize..130,
        ) {
            let mut b = b"POST /ocsp/x HTTP/1.1\r\nHost: ocsp.example\r\nConnection: keep-alive\r\nContent-Length: 12\r\n\r\n0123456789ab".to_vec();
            for (i, v) in edits {
                let i = i % b.len();
                b[i] = v;
            }
            b.truncate(cut.min(b.len()));
            if let Parsed::Ocsp(h) = parse_head(&b) {
                proptest::prop_assert!(h.head_len <= b.len());
                proptest::prop_assert!(h.body_len <= MAX_BODY_LEN);
            }
        }
    }
}
