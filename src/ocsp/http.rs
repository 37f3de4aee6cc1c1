//! HTTP binding (RFC 6960 appendix A, RFC 5019): `POST /ocsp`, `GET /ocsp/{base64}`.
//! Every answer is HTTP 200 `application/ocsp-response`, errors included (as OCSP statuses).

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Router};
use base64::Engine;

use super::responder::{Answer, Responder};
use super::wire::{ErrorStatus, MAX_REQUEST_LEN, encode_error_response};
use crate::client_ip::ClientIp;

/// The media type of every answer.
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

/// An OCSP answer as it goes over HTTP: the one definition both the axum handlers and the
/// plain-HTTP direct path (`server`) write.
pub struct Reply {
    /// What the responder said.
    pub answer: Answer,
    /// Answered to a GET: RFC 5019 caching headers.
    pub get: bool,
    /// The request came as hex text, so the answer goes back as hex text. CitrineOS sends
    /// `getEncodedHex()` of its request and parses the body it gets as hex
    /// (docs/ocsp.md); standard clients send DER and get DER.
    pub hex: bool,
    /// When it was answered (unix seconds, the responder's clock): caching headers count from it.
    pub now: i64,
}

impl Reply {
    /// An OCSP error status, in DER.
    pub fn error(status: ErrorStatus, get: bool, now: i64) -> Reply {
        Reply {
            answer: Answer::Error(status),
            get,
            hex: false,
            now,
        }
    }

    /// The headers besides Content-Length and Date, which the server adds.
    pub fn headers(&self, mut put: impl FnMut(HeaderName, &HeaderValue)) {
        static CT: HeaderValue = HeaderValue::from_static(CONTENT_TYPE);
        static TEXT: HeaderValue = HeaderValue::from_static("text/plain; charset=us-ascii");
        static NO_STORE: HeaderValue = HeaderValue::from_static("no-store");
        put(header::CONTENT_TYPE, if self.hex { &TEXT } else { &CT });
        match &self.answer {
            Answer::Error(_) => put(header::CACHE_CONTROL, &NO_STORE),
            Answer::Signed { entry, .. } => match (self.get, entry) {
                (true, Some(e)) => {
                    let max_age = (e.next_update - self.now).max(0);
                    if let Ok(v) = HeaderValue::from_str(&format!(
                        "max-age={max_age}, public, no-transform, must-revalidate"
                    )) {
                        put(header::CACHE_CONTROL, &v);
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
                            put(name, v);
                        }
                    }
                }
                (true, None) => put(header::CACHE_CONTROL, &NO_STORE),
                _ => {}
            },
        }
    }

    /// The body: the signed response or the 5-byte error response (as hex text for hex clients).
    pub fn into_body(self) -> Bytes {
        let der = match self.answer {
            Answer::Signed { der, .. } => der,
            Answer::Error(s) => Bytes::from(encode_error_response(s)),
        };
        if self.hex {
            Bytes::from(hex::encode(&der))
        } else {
            der
        }
    }
}

/// An HTTP date (IMF-fixdate) for a Unix time: the one formatter of both HTTP paths.
pub fn http_date(unix: i64) -> Option<HeaderValue> {
    let t = std::time::UNIX_EPOCH
        .checked_add(std::time::Duration::from_secs(u64::try_from(unix).ok()?))?;
    HeaderValue::from_str(&httpdate::fmt_http_date(t)).ok()
}

fn respond(reply: Reply) -> Response {
    let mut h = HeaderMap::with_capacity(6);
    reply.headers(|name, v| {
        h.insert(name, v.clone());
    });
    (StatusCode::OK, h, reply.into_body()).into_response()
}

/// Some clients (CitrineOS) POST the request as hex text.
fn body_der(body: &[u8]) -> Option<Vec<u8>> {
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

/// The answer to a POST body (DER, or hex text) from `ip`.
pub async fn answer_post(r: &Responder, body: &[u8], ip: Option<ClientIp>) -> Reply {
    let (answer, hex) = if body.is_empty() {
        (Answer::Error(ErrorStatus::MalformedRequest), false)
    } else {
        match body_der(body) {
            Some(der) => (r.answer_der(&der, ip).await, true),
            None => (r.answer_der(body, ip).await, false),
        }
    };
    Reply {
        answer,
        get: false,
        hex,
        now: r.now(),
    }
}

/// The answer to `GET {path}` (the path without its query) from `ip`.
pub async fn answer_get(r: &Responder, path: &str, ip: Option<ClientIp>) -> Reply {
    let answer = match decode_get_path(path) {
        Some(der) => r.answer_der(&der, ip).await,
        None => Answer::Error(ErrorStatus::MalformedRequest),
    };
    Reply {
        answer,
        get: true,
        hex: false,
        now: r.now(),
    }
}

/// Bodies above this are refused unread (malformedRequest); a request is at most 4 KiB, hex
/// text twice that plus line breaks.
pub const MAX_BODY_LEN: usize = 16 * MAX_REQUEST_LEN;

/// `POST /ocsp`.
pub async fn post_ocsp(
    State(r): State<Responder>,
    ip: Option<Extension<ClientIp>>,
    body: Body,
) -> Response {
    // Bounded read: a body over the limit is refused without buffering it all (malformedRequest).
    let reply = match axum::body::to_bytes(body, MAX_BODY_LEN).await {
        Ok(b) => answer_post(&r, &b, ip.map(|e| e.0)).await,
        Err(_) => Reply::error(ErrorStatus::MalformedRequest, false, r.now()),
    };
    respond(reply)
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

/// `GET /ocsp/{base64}`.
pub async fn get_ocsp(
    State(r): State<Responder>,
    ip: Option<Extension<ClientIp>>,
    uri: Uri,
) -> Response {
    respond(answer_get(&r, uri.path(), ip.map(|e| e.0)).await)
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
    fn http_dates_are_imf_fixdate() {
        assert_eq!(http_date(0).unwrap(), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(
            http_date(1_795_600_000).unwrap(),
            "Wed, 25 Nov 2026 09:46:40 GMT"
        );
        assert!(http_date(-1).is_none());
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
