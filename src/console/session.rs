//! Who is looking at a console page: the session cookie, the CSRF checks of every form, and the
//! sign-in form's own token (there is no session to hold one yet).
//!
//! - The cookie (`pnc_session`) holds a random value whose SHA-256 the store keeps; it is
//!   `HttpOnly`, `SameSite=Strict`, `Path=/ui` and, when the service is reached over TLS,
//!   `Secure`. Whether it is valid (idle and absolute timeouts, user enabled) is the RA's call.
//! - Every state-changing form carries the session's CSRF token, compared in constant time.
//! - The sign-in form carries a token of its own: a nonce and an expiry, signed with HMAC-SHA256
//!   under a key every replica shares, so any replica accepts a form another served and an
//!   anonymous visitor costs no row.
//! - On top, a POST whose `Origin` (or `Sec-Fetch-Site`) says it comes from another site is
//!   refused before anything else: that is what stops cross-site sign-in forgery, since a
//!   forger can fetch a valid sign-in token too.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use base64::Engine;
use hmac::{Hmac, Mac};

use super::ConsoleState;
use crate::ra::users::ConsoleSession;

const B64URL: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The session cookie's name.
pub const COOKIE: &str = "pnc_session";

/// How long a sign-in form stays usable, seconds.
const LOGIN_FORM_TTL: i64 = 3600;

/// The session cookie of a request, if any.
pub fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.trim().to_string())
}

/// `Set-Cookie` for a new session.
pub fn set_cookie(token: &str, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}={token}; Path=/ui; HttpOnly; SameSite=Strict{secure}")
}

/// `Set-Cookie` that removes the session cookie.
pub fn clear_cookie(secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}=; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=0{secure}")
}

/// Constant-time equality of two tokens.
pub fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len() && openssl::memcmp::eq(a.as_bytes(), b.as_bytes())
}

/// Whether a POST may be from our own pages: refused when the browser says it comes from
/// another site. Browsers send `Sec-Fetch-Site` on every request (authoritative when present);
/// older ones send `Origin`, which must then name this host. Under our `no-referrer` policy a
/// browser may send `Origin: null`, which says nothing; a client that sends neither (curl, a
/// test) is judged by the CSRF token alone.
pub fn same_origin(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return matches!(site, "same-origin" | "none");
    }
    let Some(origin) = headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .filter(|o| *o != "null")
    else {
        return true;
    };
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let origin_host = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
        .unwrap_or("");
    origin_host.eq_ignore_ascii_case(host)
}

fn mac(key: &[u8], nonce: &[u8], exp: i64) -> Option<Hmac<sha2::Sha256>> {
    let mut m = Hmac::<sha2::Sha256>::new_from_slice(key).ok()?;
    m.update(b"pnc-pki console sign-in form\n");
    m.update(nonce);
    m.update(&exp.to_be_bytes());
    Some(m)
}

/// A fresh sign-in form token, valid for an hour from `now`.
pub fn login_token(key: &[u8], now: i64) -> String {
    let nonce: [u8; 16] = rand::random();
    let exp = now + LOGIN_FORM_TTL;
    let tag = mac(key, &nonce, exp)
        .map(|m| m.finalize().into_bytes().to_vec())
        .unwrap_or_default();
    let mut raw = Vec::with_capacity(16 + 8 + tag.len());
    raw.extend_from_slice(&nonce);
    raw.extend_from_slice(&exp.to_be_bytes());
    raw.extend_from_slice(&tag);
    B64URL.encode(raw)
}

/// Whether `token` is a sign-in form token we made that has not expired at `now`.
pub fn login_token_valid(key: &[u8], token: &str, now: i64) -> bool {
    let Ok(raw) = B64URL.decode(token.trim()) else {
        return false;
    };
    if raw.len() != 16 + 8 + 32 {
        return false;
    }
    let (nonce, rest) = raw.split_at(16);
    let (exp, tag) = rest.split_at(8);
    let mut e = [0u8; 8];
    e.copy_from_slice(exp);
    let exp = i64::from_be_bytes(e);
    if exp < now || exp > now + LOGIN_FORM_TTL {
        return false;
    }
    mac(key, nonce, exp).is_some_and(|m| m.verify_slice(tag).is_ok())
}

/// The signed-in viewer of a page, or no one. Extracting never fails: pages decide what an
/// anonymous visitor gets (the sign-in page, or a redirect to it).
pub struct Viewer(pub Option<ConsoleSession>);

impl FromRequestParts<ConsoleState> for Viewer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        st: &ConsoleState,
    ) -> Result<Self, Self::Rejection> {
        let Some(token) = session_cookie(&parts.headers) else {
            return Ok(Viewer(None));
        };
        match st.ra.console_session(&token).await {
            Ok(s) => Ok(Viewer(s)),
            Err(e) => {
                // A store that cannot answer must not sign anyone in; the page says so.
                tracing::warn!(error = %e, "console: cannot read the session");
                Ok(Viewer(None))
            }
        }
    }
}

/// The signed-in viewer of a page that needs one; anyone else is sent to the sign-in page.
pub struct SignedIn(pub ConsoleSession);

impl FromRequestParts<ConsoleState> for SignedIn {
    type Rejection = axum::response::Response;

    async fn from_request_parts(
        parts: &mut Parts,
        st: &ConsoleState,
    ) -> Result<Self, Self::Rejection> {
        match Viewer::from_request_parts(parts, st).await {
            Ok(Viewer(Some(s))) => Ok(SignedIn(s)),
            _ => Err(super::layout::see_other("/ui/login")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_tokens_verify_only_unchanged_unexpired_and_under_our_key() {
        let key = [7u8; 32];
        let t = login_token(&key, 1000);
        assert!(login_token_valid(&key, &t, 1000));
        assert!(login_token_valid(&key, &t, 1000 + LOGIN_FORM_TTL));
        assert!(!login_token_valid(&key, &t, 1001 + LOGIN_FORM_TTL));
        assert!(!login_token_valid(&[8u8; 32], &t, 1000));
        let mut raw = B64URL.decode(&t).unwrap();
        raw[3] ^= 1;
        assert!(!login_token_valid(&key, &B64URL.encode(&raw), 1000));
        assert!(!login_token_valid(&key, "", 1000));
        assert!(!login_token_valid(&key, "not base64 !", 1000));
    }

    #[test]
    fn cross_site_posts_are_refused() {
        let mut h = HeaderMap::new();
        assert!(same_origin(&h));
        h.insert(header::HOST, "127.0.0.1:8080".parse().unwrap());
        h.insert(header::ORIGIN, "http://127.0.0.1:8080".parse().unwrap());
        assert!(same_origin(&h));
        h.insert(header::ORIGIN, "http://evil.example".parse().unwrap());
        assert!(!same_origin(&h));
        let mut h = HeaderMap::new();
        h.insert("sec-fetch-site", "cross-site".parse().unwrap());
        assert!(!same_origin(&h));
        h.insert("sec-fetch-site", "same-origin".parse().unwrap());
        h.insert(header::ORIGIN, "null".parse().unwrap());
        assert!(same_origin(&h), "what Chromium sends under no-referrer");
        h.insert("sec-fetch-site", "same-site".parse().unwrap());
        assert!(
            !same_origin(&h),
            "a sibling subdomain is another site's page"
        );
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, "a=1; pnc_session=abc; b=2".parse().unwrap());
        assert_eq!(session_cookie(&h).as_deref(), Some("abc"));
        assert!(set_cookie("x", true).contains("; Secure"));
        assert!(set_cookie("x", false).contains("HttpOnly; SameSite=Strict"));
    }
}
