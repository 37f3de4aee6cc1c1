//! The plain-HTTP/1.1 accept loop of `serve`.
//!
//! OCSP requests (`POST /ocsp…` with a Content-Length, `GET /ocsp/…`) are answered directly on
//! the socket: parsed with `httparse`, answered by the [`Responder`], written with one `write`.
//! Everything else, and any OCSP request that uses a less common HTTP feature (chunked bodies,
//! `Expect`, `Upgrade`, an absolute-form target, a malformed head…), hands the connection, with
//! the bytes already read, to hyper and the full axum router, which serves the same OCSP
//! handlers. Why: OCSP is the hottest path of the product, and hyper + axum cost a keep-alive
//! OCSP request about 10 µs of CPU where this path costs 7 (docs/benchmarks-ocsp.md). The answer
//! itself — status, headers, body — is defined once, in [`super::http`].

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::response::Response;
use bytes::{Buf, BytesMut};
use futures_util::FutureExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::runtime::Handle;

use super::http::{MAX_BODY_LEN, Reply, answer_get, answer_post, http_date};
use super::responder::Responder;
use super::wire::ErrorStatus;
use axum::http::HeaderValue;

/// Longest request head read on the direct path; longer heads go to hyper (which answers 431).
const MAX_HEAD: usize = 8 * 1024;
/// Time to receive a whole request head once its first byte arrived (slow-loris guard).
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// Time an idle keep-alive connection is kept open.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

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
pub async fn serve_http1(
    listener: tokio::net::TcpListener,
    app: impl App,
    ocsp: Responder,
    shutdown: impl std::future::Future<Output = ()>,
) -> io::Result<()> {
    let listener = listener.into_std()?;
    let main = tokio::runtime::Handle::current();
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    for i in 0..threads {
        let l = listener.try_clone()?;
        let (app, ocsp, main) = (app.clone(), ocsp.clone(), main.clone());
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
                    accept_loop(l, move |tcp| {
                        let main = main.clone();
                        tokio::spawn(first_request(tcp, app.clone(), ocsp.clone(), main));
                    })
                    .await
                })
            })?;
    }
    shutdown.await;
    Ok(())
}

async fn accept_loop(listener: tokio::net::TcpListener, mut on_accept: impl FnMut(TcpStream)) {
    loop {
        match listener.accept().await {
            Ok((tcp, _)) => {
                let _ = tcp.set_nodelay(true);
                on_accept(tcp);
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
async fn first_request(mut tcp: TcpStream, app: impl App, ocsp: Responder, main: Handle) {
    let mut buf = BytesMut::with_capacity(4096);
    let next = match direct(&mut tcp, &mut buf, &ocsp, true).await {
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
            match direct(&mut tcp, &mut buf, &ocsp, false).await {
                Ok(Next::HandOver) => {}
                _ => return,
            }
        }
        hand_over(tcp, buf.freeze(), app).await;
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
}

enum Parsed {
    Ocsp(Head),
    Other,
    Incomplete,
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
    first_only: bool,
) -> io::Result<Next> {
    let mut out = Vec::with_capacity(1024);
    let mut fresh = first_only && buf.is_empty();
    loop {
        let idle_deadline = tokio::time::Instant::now() + IDLE_TIMEOUT;
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
                (false, None) => *head_deadline.insert(tokio::time::Instant::now() + HEAD_TIMEOUT),
            };
            if !fill(tcp, buf, deadline, std::mem::take(&mut fresh)).await {
                return Ok(Next::Done);
            }
        };
        let total = head.head_len + head.body_len;
        let body_deadline = tokio::time::Instant::now() + HEAD_TIMEOUT;
        while buf.len() < total {
            if !fill(tcp, buf, body_deadline, false).await {
                return Ok(Next::Done);
            }
        }
        let reply = {
            let body = &buf[head.head_len..total];
            let work = async {
                if head.get {
                    answer_get(r, &head.path).await
                } else {
                    answer_post(r, body).await
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

/// Serve the rest of the connection with hyper and the full router; `prefix` holds the bytes
/// the direct path already read.
async fn hand_over(tcp: TcpStream, prefix: Bytes, app: impl App) {
    use hyper_util::rt::TokioIo;
    use hyper_util::service::TowerToHyperService;
    let svc = TowerToHyperService::new(tower::service_fn(
        move |req: axum::http::Request<hyper::body::Incoming>| {
            tower::ServiceExt::oneshot(app.clone(), req.map(Body::new))
        },
    ));
    let io = Prefixed { prefix, io: tcp };
    let _ = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT)
        // Request heads up to 64 KiB (hyper's default is about 400 KiB); longer ones get 431.
        .max_buf_size(64 * 1024)
        .keep_alive(true)
        .serve_connection(TokioIo::new(io), svc)
        .await;
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
