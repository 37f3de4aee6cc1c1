//! HTTP binding (RFC 6960 appendix A, RFC 5019): `POST /ocsp`, `GET /ocsp/{base64}`.
//! Every answer is HTTP 200 `application/ocsp-response`, errors included (as OCSP statuses).

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;

use super::responder::{Answer, Responder};
use super::wire::{ErrorStatus, MAX_REQUEST_LEN, encode_error_response};

pub const CONTENT_TYPE: &str = "application/ocsp-response";

/// The public OCSP routes with state applied (the API router registers the same handlers in its
/// own route table; this stand-alone form serves tests and embedders). The OCPP-shaped lookups
/// (`/api/v1/ocsp/*`) are authenticated and live in the API router.
pub fn routes(responder: Responder) -> Router {
    Router::new()
        .route("/ocsp", post(post_ocsp).get(get_ocsp))
        .route("/ocsp/", post(post_ocsp).get(get_ocsp))
        .route("/ocsp/{*request}", post(post_ocsp).get(get_ocsp))
        .with_state(responder)
}

fn error(status: ErrorStatus) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        encode_error_response(status),
    )
        .into_response()
}

fn http_date(unix: i64) -> Option<HeaderValue> {
    let t = time::OffsetDateTime::from_unix_timestamp(unix).ok()?;
    let f = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    HeaderValue::from_str(&t.format(&f).ok()?).ok()
}

fn respond(answer: Answer, get: bool) -> Response {
    match answer {
        Answer::Error(s) => error(s),
        Answer::Signed { der, entry } => {
            let mut h = HeaderMap::with_capacity(6);
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
            match (get, entry) {
                (true, Some(e)) => {
                    let now = crate::store::now();
                    let max_age = (e.next_update - now).max(0);
                    if let Ok(v) = HeaderValue::from_str(&format!(
                        "max-age={max_age}, public, no-transform, must-revalidate"
                    )) {
                        h.insert(header::CACHE_CONTROL, v);
                    }
                    let [etag, last_modified, expires] = e.http.get_or_init(|| {
                        [
                            HeaderValue::from_str(&e.etag).ok(),
                            http_date(e.produced_at),
                            http_date(e.next_update),
                        ]
                    });
                    for (name, v) in [
                        (header::ETAG, etag),
                        (header::LAST_MODIFIED, last_modified),
                        (header::EXPIRES, expires),
                    ] {
                        if let Some(v) = v {
                            h.insert(name, v.clone());
                        }
                    }
                }
                (true, None) => {
                    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                }
                _ => {}
            }
            (StatusCode::OK, h, der).into_response()
        }
    }
}

/// Some clients (CitrineOS) POST the request as hex text.
fn body_der(body: &Bytes) -> Option<Vec<u8>> {
    if body.first() == Some(&0x30) {
        return None;
    }
    let t: Vec<u8> = body
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    if !t.is_empty() && t.len().is_multiple_of(2) && t.iter().all(u8::is_ascii_hexdigit) {
        hex::decode(&t).ok()
    } else {
        None
    }
}

pub async fn post_ocsp(State(r): State<Responder>, body: Body) -> Response {
    // Bounded read: a body over the limit is refused without buffering it all (malformedRequest).
    let bytes = match axum::body::to_bytes(body, 16 * MAX_REQUEST_LEN).await {
        Ok(b) => b,
        Err(_) => return error(ErrorStatus::MalformedRequest),
    };
    if bytes.is_empty() {
        return error(ErrorStatus::MalformedRequest);
    }
    let answer = match body_der(&bytes) {
        Some(der) => r.answer_der(&der).await,
        None => r.answer_der(&bytes).await,
    };
    respond(answer, false)
}

fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let h = b.get(i + 1..i + 3)?;
            let v = u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok()?;
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

/// Base64 of a GET path: standard or URL-safe alphabet, padded or not, percent-encoded or not.
pub fn decode_get_path(path: &str) -> Option<Vec<u8>> {
    let rest = path.strip_prefix("/ocsp").unwrap_or(path);
    let rest = rest.trim_start_matches('/');
    if rest.is_empty() || rest.len() > 4 * MAX_REQUEST_LEN {
        return None;
    }
    let raw = percent_decode(rest)?;
    let mut text: Vec<u8> = raw
        .into_iter()
        .filter(|c| !c.is_ascii_whitespace())
        .map(|c| match c {
            b'-' => b'+',
            b'_' => b'/',
            other => other,
        })
        .collect();
    while text.last() == Some(&b'=') {
        text.pop();
    }
    base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(&text)
        .ok()
}

pub async fn get_ocsp(State(r): State<Responder>, uri: Uri) -> Response {
    match decode_get_path(uri.path()) {
        Some(der) => respond(r.answer_der(&der).await, true),
        None => error(ErrorStatus::MalformedRequest),
    }
}

/// An HTTP/1.1-only accept loop (no HTTP/2 preface sniffing, `TCP_NODELAY`, keep-alive): what
/// OCSP clients speak. Measured against `axum::serve` in docs/benchmarks-ocsp.md.
pub async fn serve_http1<S>(
    listener: tokio::net::TcpListener,
    app: S,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()>
where
    S: tower::Service<
            axum::http::Request<Body>,
            Response = Response,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    use hyper_util::rt::TokioIo;
    use hyper_util::service::TowerToHyperService;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let tcp = match accepted {
                    Ok((tcp, _)) => tcp,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                        continue;
                    }
                };
                let _ = tcp.set_nodelay(true);
                let app = app.clone();
                let svc = TowerToHyperService::new(tower::service_fn(
                    move |req: axum::http::Request<hyper::body::Incoming>| {
                        tower::ServiceExt::oneshot(app.clone(), req.map(Body::new))
                    },
                ));
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .timer(hyper_util::rt::TokioTimer::new())
                        .header_read_timeout(std::time::Duration::from_secs(10))
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(tcp), svc)
                        .await;
                });
            }
            _ = &mut shutdown => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_paths_decode() {
        let der = vec![0x30, 0x03, 0xfb, 0xff, 0x3e];
        let std = base64::engine::general_purpose::STANDARD.encode(&der);
        assert!(std.contains('+') || std.contains('/'));
        assert_eq!(decode_get_path(&format!("/ocsp/{std}")), Some(der.clone()));
        let enc = std
            .replace('+', "%2B")
            .replace('/', "%2F")
            .replace('=', "%3D");
        assert_eq!(decode_get_path(&format!("/ocsp/{enc}")), Some(der.clone()));
        let url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&der);
        assert_eq!(decode_get_path(&format!("/ocsp//{url}")), Some(der.clone()));
        assert_eq!(decode_get_path("/ocsp/"), None);
        assert_eq!(decode_get_path("/ocsp/%zz"), None);
        assert_eq!(decode_get_path("/ocsp/!!!"), None);
    }

    #[test]
    fn hex_bodies_are_recognised() {
        assert_eq!(
            body_der(&Bytes::from_static(b"3003")),
            Some(vec![0x30, 0x03])
        );
        assert_eq!(body_der(&Bytes::from_static(&[0x30, 0x03])), None);
        assert_eq!(body_der(&Bytes::from_static(b"xyz")), None);
    }
}
