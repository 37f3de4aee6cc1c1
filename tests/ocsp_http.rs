//! The HTTP/1.1 layer of `serve` over raw TCP: OCSP requests take the direct path of
//! `ocsp::server`, everything else (and OCSP requests using less common HTTP features) goes to
//! hyper and the router. Both must give the same answers, on the same connection too.

mod common;
mod ocsp_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::*;
use ocsp_support::*;

struct HttpReply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl HttpReply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A minimal HTTP/1.1 reader: one response (Content-Length bodies only) from `s`; `pending`
/// keeps bytes that belong to the next response.
fn read_reply(s: &mut TcpStream, pending: &mut Vec<u8>) -> HttpReply {
    let head_end = loop {
        if let Some(i) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).expect("read");
        assert!(
            n > 0,
            "connection closed mid-head: {:?}",
            String::from_utf8_lossy(pending)
        );
        pending.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(pending[..head_end].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (n, v) = l.split_once(':').unwrap();
            (n.trim().to_string(), v.trim().to_string())
        })
        .collect();
    let len: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.parse().unwrap())
        .unwrap_or(0);
    while pending.len() < head_end + len {
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).expect("read body");
        assert!(n > 0, "connection closed mid-body");
        pending.extend_from_slice(&chunk[..n]);
    }
    let body = pending[head_end..head_end + len].to_vec();
    pending.drain(..head_end + len);
    HttpReply {
        status,
        headers,
        body,
    }
}

fn connect(server: &Server) -> TcpStream {
    let addr = server.base.trim_start_matches("http://");
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

fn post_head(len: usize, extra: &str) -> String {
    format!(
        "POST /ocsp HTTP/1.1\r\nHost: t\r\nContent-Type: application/ocsp-request\r\n{extra}Content-Length: {len}\r\n\r\n"
    )
}

/// Write a whole `POST /ocsp` (head with `extra` headers, then `body`).
fn send_post(s: &mut TcpStream, extra: &str, body: &[u8]) {
    s.write_all(post_head(body.len(), extra).as_bytes())
        .unwrap();
    s.write_all(body).unwrap();
}

fn closed(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 1];
    matches!(s.read(&mut b), Ok(0))
}

#[test]
fn direct_path_and_router_agree_on_one_connection() {
    let backend = backends().remove(0);
    let pki = setup(backend, "");
    let server = pki.env.serve();
    let req = pki.request_der(&["-no_nonce"]);
    // Every answer below is checked with `openssl ocsp` (signature to the root, status good).
    // Bytes are not compared: the start-up pre-production pass may re-sign this certificate's
    // response while the test runs.
    let good = |body: &[u8]| {
        let p = pki
            .env
            .path()
            .join(format!("r-{}.der", rand::random::<u32>()));
        std::fs::write(&p, body).unwrap();
        assert_status(&pki.check_file(&p), "good");
    };

    // Keep-alive: OCSP POST and GET (direct), an API request (handed to hyper), OCSP again
    // (now through the router), all on one connection.
    let mut s = connect(&server);
    let mut pending = Vec::new();
    send_post(&mut s, "", &req);
    let r = read_reply(&mut s, &mut pending);
    assert_eq!(r.status, 200);
    good(&r.body);
    assert_eq!(r.header("content-type"), Some("application/ocsp-response"));
    assert!(r.header("date").is_some(), "Date header");

    write!(s, "GET /ocsp/{} HTTP/1.1\r\nHost: t\r\n\r\n", b64(&req)).unwrap();
    let r = read_reply(&mut s, &mut pending);
    assert_eq!(r.status, 200);
    good(&r.body);
    assert!(r.header("cache-control").unwrap().contains("max-age="));
    assert!(r.header("etag").is_some() && r.header("expires").is_some());
    assert!(r.header("last-modified").is_some());

    s.write_all(b"GET /health/live HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let r = read_reply(&mut s, &mut pending);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));

    send_post(&mut s, "", &req);
    let r = read_reply(&mut s, &mut pending);
    assert_eq!(r.status, 200);
    good(&r.body);

    // CitrineOS: a hex-text request gets a hex-text answer, on the direct path and through
    // hyper (chunked); the hex decodes to the very DER answer.
    let hex_req = hex::encode_upper(&req);
    let mut s = connect(&server);
    let mut pending = Vec::new();
    send_post(&mut s, "", hex_req.as_bytes());
    let r = read_reply(&mut s, &mut pending);
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    good(&hex::decode(&r.body).unwrap());
    let mut chunked =
        b"POST /ocsp HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    chunked.extend_from_slice(format!("{:x}\r\n{hex_req}\r\n0\r\n\r\n", hex_req.len()).as_bytes());
    s.write_all(&chunked).unwrap();
    let r = read_reply(&mut s, &mut pending);
    good(&hex::decode(&r.body).unwrap());
    // Hex that is not an OCSP request: malformedRequest, in hex.
    send_post(&mut s, "", b"300100");
    let r = read_reply(&mut s, &mut pending);
    assert_eq!(r.body, b"30030a0101");

    // Pipelined: three requests in one write, three answers in order.
    let mut s = connect(&server);
    let mut pending = Vec::new();
    let mut burst = Vec::new();
    for _ in 0..2 {
        burst.extend_from_slice(post_head(req.len(), "").as_bytes());
        burst.extend_from_slice(&req);
    }
    burst.extend_from_slice(b"GET /nope HTTP/1.1\r\nHost: t\r\n\r\n");
    s.write_all(&burst).unwrap();
    for _ in 0..2 {
        let r = read_reply(&mut s, &mut pending);
        assert_eq!(r.status, 200);
        good(&r.body);
    }
    assert_eq!(read_reply(&mut s, &mut pending).status, 404);

    // A head and a body that arrive in pieces.
    let mut s = connect(&server);
    let mut pending = Vec::new();
    let head = post_head(req.len(), "");
    let (a, b) = head.split_at(9);
    s.write_all(a.as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(150));
    s.write_all(b.as_bytes()).unwrap();
    s.write_all(&req[..10]).unwrap();
    std::thread::sleep(Duration::from_millis(150));
    s.write_all(&req[10..]).unwrap();
    let r = read_reply(&mut s, &mut pending);
    assert_eq!(r.status, 200);
    good(&r.body);

    // Expect: 100-continue and chunked bodies go to hyper: same answer.
    let mut s = connect(&server);
    let mut pending = Vec::new();
    s.write_all(post_head(req.len(), "Expect: 100-continue\r\n").as_bytes())
        .unwrap();
    let r = read_reply(&mut s, &mut pending);
    assert_eq!(r.status, 100);
    s.write_all(&req).unwrap();
    let r = read_reply(&mut s, &mut pending);
    assert_eq!(r.status, 200);
    good(&r.body);
    let mut chunked =
        b"POST /ocsp HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    chunked.extend_from_slice(format!("{:x}\r\n", req.len()).as_bytes());
    chunked.extend_from_slice(&req);
    chunked.extend_from_slice(b"\r\n0\r\n\r\n");
    s.write_all(&chunked).unwrap();
    let r = read_reply(&mut s, &mut pending);
    assert_eq!(r.status, 200);
    good(&r.body);

    // HTTP/1.0: closed after the answer unless keep-alive is asked for.
    let mut s = connect(&server);
    let mut pending = Vec::new();
    write!(
        s,
        "POST /ocsp HTTP/1.0\r\nContent-Length: {}\r\n\r\n",
        req.len()
    )
    .unwrap();
    s.write_all(&req).unwrap();
    let r = read_reply(&mut s, &mut pending);
    assert_eq!(r.status, 200);
    good(&r.body);
    assert!(closed(&mut s), "HTTP/1.0 without keep-alive is closed");
    let mut s = connect(&server);
    for _ in 0..2 {
        write!(
            s,
            "POST /ocsp HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: {}\r\n\r\n",
            req.len()
        )
        .unwrap();
        s.write_all(&req).unwrap();
        let r = read_reply(&mut s, &mut pending);
        assert_eq!(r.status, 200);
        good(&r.body);
        assert_eq!(r.header("connection"), Some("keep-alive"));
    }
    // Connection: close on HTTP/1.1.
    let mut s = connect(&server);
    send_post(&mut s, "Connection: close\r\n", &req);
    let r = read_reply(&mut s, &mut pending);
    assert_eq!(r.status, 200);
    assert!(closed(&mut s));
}

#[test]
fn bad_http_is_refused_without_taking_the_server_down() {
    let backend = backends().remove(0);
    let pki = setup(backend, "");
    let server = pki.env.serve();
    let req = pki.request_der(&["-no_nonce"]);

    // Invalid Content-Length, duplicate lengths: hyper answers 400.
    for head in [
        "POST /ocsp HTTP/1.1\r\nHost: t\r\nContent-Length: abc\r\n\r\n",
        "POST /ocsp HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabc",
    ] {
        let mut s = connect(&server);
        let mut pending = Vec::new();
        s.write_all(head.as_bytes()).unwrap();
        let r = read_reply(&mut s, &mut pending);
        assert_eq!(r.status, 400, "{head}");
    }
    // A head longer than 64 KiB: 431 (or a reset, if the server closes while the client still
    // writes); never an answer.
    let mut s = connect(&server);
    let huge = format!(
        "GET /ocsp/AA HTTP/1.1\r\nHost: t\r\nX-Filler: {}\r\n\r\n",
        "a".repeat(100_000)
    );
    let _ = s.write_all(huge.as_bytes());
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    let text = String::from_utf8_lossy(&got);
    assert!(
        got.is_empty() || text.starts_with("HTTP/1.1 431"),
        "{}",
        &text[..text.len().min(200)]
    );

    // A body longer than the OCSP limit: malformedRequest (through hyper, unread).
    let mut s = connect(&server);
    let mut pending = Vec::new();
    let big = vec![0x30u8; 70_000];
    s.write_all(post_head(big.len(), "").as_bytes()).unwrap();
    let _ = s.write_all(&big);
    let r = read_reply(&mut s, &mut pending);
    assert_eq!(
        (r.status, r.body.as_slice()),
        (200, &[0x30, 0x03, 0x0a, 0x01, 0x01][..])
    );

    // A client that stops mid-body: only its connection is affected.
    let mut stalled = connect(&server);
    stalled
        .write_all(post_head(req.len(), "").as_bytes())
        .unwrap();
    stalled.write_all(&req[..5]).unwrap();
    let (status, body) = post(&server.url("/ocsp"), &req);
    assert_eq!(status, 200);
    assert!(body.len() > 100);
    drop(stalled);

    // Many short connections in parallel, each with one request, then close.
    let url = server.url("/ocsp");
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let (url, req) = (url.clone(), req.clone());
            std::thread::spawn(move || {
                (0..25)
                    .map(|_| post(&url, &req))
                    .filter(|(s, b)| *s == 200 && b.len() > 100)
                    .count()
            })
        })
        .collect();
    let ok: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(ok, 200);
    assert!(!server.log().contains("panicked"), "{}", server.log());
}

/// Nonce requests want a live signature each. Beyond the live-signing budget (one at a time,
/// 10/s per address with a burst of 20) they do not queue for the HSM: the nonce is dropped and
/// the pre-produced answer served (RFC 5019 §2.1.1), so every request still gets a signed answer
/// at once, and the HSM signs no more than the budget.
#[test]
fn a_flood_of_live_signatures_stays_within_the_budget_not_a_queue() {
    let backend = backends().remove(0);
    let pki = setup(backend, "max_sign_queue = 0\n");
    let server = pki.env.serve();
    let url = server.url("/ocsp");
    let plain = pki.request_der(&["-no_nonce"]);
    let started = std::time::Instant::now();
    let threads: Vec<_> = (0..24)
        .map(|_| {
            let url = url.clone();
            // Each thread its own nonce request (the nonce is the request's last 16 bytes).
            let req = pki.request_der(&[]);
            std::thread::spawn(move || {
                let nonce = req[req.len() - 16..].to_vec();
                let mut tally = (0usize, 0usize, 0usize);
                for _ in 0..15 {
                    let (status, body) = post(&url, &req);
                    assert_eq!(status, 200);
                    if body.len() < 100 {
                        tally.2 += 1;
                    } else if body.windows(16).any(|w| w == nonce.as_slice()) {
                        tally.0 += 1;
                    } else {
                        tally.1 += 1;
                    }
                }
                tally
            })
        })
        .collect();
    let (mut echoed, mut cached, mut other) = (0, 0, 0);
    for t in threads {
        let (a, b, c) = t.join().unwrap();
        echoed += a;
        cached += b;
        other += c;
    }
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(other, 0, "every request gets a signed answer");
    assert!(
        echoed > 0,
        "live signatures still go through ({echoed} echoed, {cached} cached)"
    );
    assert!(
        cached > 0,
        "the overflow is served from the cache ({echoed} echoed, {cached} cached)"
    );
    let budget = 20.0 + 10.0 * secs.ceil();
    assert!(
        (echoed as f64) <= budget,
        "{echoed} live signatures in {secs:.1} s, budget {budget}"
    );
    // Cached answers never wait for the HSM, and once the flood is over signing works again.
    let (_, cached) = post(&url, &plain);
    let f = pki.env.path().join("cached.der");
    std::fs::write(&f, cached).unwrap();
    assert_status(&pki.check_file(&f), "good");
    assert_status(&pki.query(&url, &[]), "good");
}
