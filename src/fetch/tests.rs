//! The fetcher against real sockets on loopback: what it refuses never sees a connection.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::*;

/// A listener on `ip` that counts connections and answers each with `answer` (or nothing, and
/// holds the connection, when `None`).
fn listener(ip: &str, answer: Option<Vec<u8>>) -> (u16, Arc<AtomicUsize>) {
    let l = TcpListener::bind((ip, 0)).unwrap();
    let port = l.local_addr().unwrap().port();
    let n = Arc::new(AtomicUsize::new(0));
    let seen = n.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            seen.fetch_add(1, Ordering::SeqCst);
            let answer = answer.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
                let _ = s.read(&mut buf);
                match answer {
                    Some(a) => {
                        let _ = s.write_all(&a);
                    }
                    None => std::thread::sleep(Duration::from_secs(10)),
                }
            });
        }
    });
    (port, n)
}

fn http(status: &str, extra: &str, body: &[u8]) -> Vec<u8> {
    let mut v = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n",
        body.len()
    )
    .into_bytes();
    v.extend_from_slice(body);
    v
}

fn fetcher(allow: &str, timeout_ms: u64) -> Fetcher {
    Fetcher::new(FetchConfig {
        allow: Allow::parse_list(allow).unwrap(),
        timeout: Duration::from_millis(timeout_ms),
        ..FetchConfig::default()
    })
}

#[test]
fn the_address_table() {
    for (ip, refused) in [
        ("127.0.0.1", true),
        ("10.1.2.3", true),
        ("172.20.0.1", true),
        ("192.168.1.1", true),
        ("169.254.169.254", true),
        ("100.64.0.1", true),
        ("0.0.0.0", true),
        ("224.0.0.1", true),
        ("::1", true),
        ("::", true),
        ("fd00::1", true),
        ("fe80::1", true),
        ("ff02::1", true),
        ("::ffff:127.0.0.1", true),
        ("::ffff:169.254.169.254", true),
        ("64:ff9b::a9fe:a9fe", true),
        ("2002:7f00:1::", true),
        ("8.8.8.8", false),
        ("2001:4860:4860::8888", false),
    ] {
        let a: IpAddr = ip.parse().unwrap();
        assert_eq!(forbidden_reason(a).is_some(), refused, "{ip}");
    }
}

#[test]
fn odd_ipv4_spellings_are_the_addresses_they_denote() {
    for u in [
        "http://2130706433/",
        "http://0177.0.0.1/",
        "http://127.1/",
        "http://0x7f.0.0.1/",
        "http://[::ffff:127.0.0.1]/",
    ] {
        let t = parse(u).unwrap();
        let ip: IpAddr = t
            .host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .unwrap();
        assert_eq!(
            address::canonical(ip),
            "127.0.0.1".parse::<IpAddr>().unwrap(),
            "{u}"
        );
    }
    assert!(matches!(parse("ftp://x/"), Err(FetchError::BadUrl(_))));
    assert!(matches!(parse("http://u:p@x/"), Err(FetchError::BadUrl(_))));
    assert!(matches!(
        parse("file:///etc/passwd"),
        Err(FetchError::BadUrl(_))
    ));
}

#[tokio::test]
async fn ssrf_targets_are_never_contacted() {
    let (port, seen) = listener("127.0.0.1", Some(http("200 OK", "", b"secret")));
    let f = fetcher("", 1000);
    for u in [
        format!("http://127.0.0.1:{port}/"),
        format!("http://localhost:{port}/"),
        format!("http://[::ffff:127.0.0.1]:{port}/"),
        format!("http://2130706433:{port}/"),
        format!("http://0177.0.0.1:{port}/"),
        format!("http://127.1:{port}/"),
        format!("https://127.0.0.1:{port}/"),
        "http://169.254.169.254/latest/meta-data/".to_string(),
        "http://[fd00::1]/".to_string(),
    ] {
        let t = Instant::now();
        let r = f.get(&u, 1024).await;
        assert!(matches!(r, Err(FetchError::Forbidden(_))), "{u}: {r:?}");
        assert!(
            t.elapsed() < Duration::from_millis(900),
            "{u}: answered within the budget"
        );
    }
    assert_eq!(
        seen.load(Ordering::SeqCst),
        0,
        "the listener saw a connection"
    );
    assert!(
        f.stats.outcomes().contains(&("forbidden", 9)),
        "{:?}",
        f.stats.outcomes()
    );
}

#[tokio::test]
async fn allowed_addresses_are_fetched_and_bounded() {
    let (counting, seen) = listener("127.0.0.1", Some(http("200 OK", "", b"secret")));
    let (ok, _) = listener("127.0.0.5", Some(http("200 OK", "", b"hello")));
    let (redirect, _) = listener(
        "127.0.0.5",
        Some(http(
            "302 Found",
            &format!("Location: http://127.0.0.1:{counting}/\r\n"),
            b"",
        )),
    );
    let (hang, _) = listener("127.0.0.5", None);
    let big = vec![b'x'; 10 * 1024 * 1024];
    let (huge, _) = listener("127.0.0.5", Some(http("200 OK", "", &big)));
    let (chunked, _) = listener(
        "127.0.0.5",
        Some(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n100000\r\n"
                .iter()
                .copied()
                .chain(std::iter::repeat_n(b'y', 0x100000))
                .chain(*b"\r\n0\r\n\r\n")
                .collect(),
        ),
    );
    let (error, _) = listener(
        "127.0.0.5",
        Some(http("500 Internal Server Error", "", b"")),
    );
    let f = fetcher("127.0.0.5/32", 400);
    assert_eq!(
        f.get(&format!("http://127.0.0.5:{ok}/x?y=1"), 1024)
            .await
            .unwrap(),
        b"hello"
    );
    assert!(matches!(
        f.get(&format!("http://127.0.0.5:{redirect}/"), 1024).await,
        Err(FetchError::Redirect(_))
    ));
    let t = Instant::now();
    let r = f.get(&format!("http://127.0.0.5:{hang}/"), 1024).await;
    assert!(matches!(r, Err(FetchError::Timeout(_))), "{r:?}");
    assert!(
        t.elapsed() < Duration::from_millis(1500),
        "one budget: {:?}",
        t.elapsed()
    );
    assert!(matches!(
        f.get(&format!("http://127.0.0.5:{huge}/"), 64 * 1024).await,
        Err(FetchError::TooLarge(_))
    ));
    let r = f
        .get(&format!("http://127.0.0.5:{chunked}/"), 64 * 1024)
        .await;
    assert!(
        matches!(
            r,
            Err(FetchError::TooLarge(_)) | Err(FetchError::Timeout(_))
        ),
        "{r:?}"
    );
    assert_eq!(
        f.get(&format!("http://127.0.0.5:{error}/"), 1024).await,
        Err(FetchError::Status(500))
    );
    // The allow-list names 127.0.0.5 only: 127.0.0.1 stays refused.
    assert!(matches!(
        f.get(&format!("http://127.0.0.1:{counting}/"), 1024).await,
        Err(FetchError::Forbidden(_))
    ));
    assert_eq!(
        seen.load(Ordering::SeqCst),
        0,
        "the redirect target was never contacted"
    );
}

#[tokio::test]
async fn a_slow_host_cannot_take_every_slot() {
    let (hang, _) = listener("127.0.0.5", None);
    let f = Arc::new(Fetcher::new(FetchConfig {
        allow: Allow::parse_list("127.0.0.5").unwrap(),
        timeout: Duration::from_millis(2000),
        max_in_flight: 16,
        max_per_host: 2,
        own: Vec::new(),
    }));
    let mut tasks = Vec::new();
    for _ in 0..2 {
        let f = f.clone();
        tasks.push(tokio::spawn(async move {
            f.get(&format!("http://127.0.0.5:{hang}/"), 1024).await
        }));
    }
    // Both hold their slot until their budget ends (2 s); a third finds none.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = f.get(&format!("http://127.0.0.5:{hang}/"), 1024).await;
    assert!(matches!(r, Err(FetchError::Busy(_))), "{r:?}");
    for t in tasks {
        assert!(matches!(t.await.unwrap(), Err(FetchError::Timeout(_))));
    }
}

#[test]
fn own_listen_addresses_are_refused() {
    let f = Fetcher::new(FetchConfig {
        allow: Vec::new(),
        own: vec!["0.0.0.0:8080".parse().unwrap()],
        ..FetchConfig::default()
    });
    assert!(f.refused("x", "8.8.8.8:8080".parse().unwrap()).is_some());
    assert!(f.refused("x", "8.8.8.8:443".parse().unwrap()).is_none());
}
