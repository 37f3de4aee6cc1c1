//! OAuth2 client credentials and access tokens.
//!
//! Signing key choice: a P-256 key generated **in the HSM** on first start (label `pnc-api-jwt`,
//! non-extractable, like the CA keys), recorded in `api_signing_keys` with its public point. We
//! build the JWS ourselves (header.payload, SHA-256, `CKM_ECDSA` → raw `r‖s`, which is exactly the
//! JWS ES256 signature format) so the private key never exists in process memory or on disk, and
//! no extra secret has to be provisioned. Verification uses `jsonwebtoken` (pinned to ES256, `kid`
//! looked up, `exp`/`nbf`/`aud`/`iss` checked) with the public point, so it needs no HSM call.
//!
//! Optionally a JWKS file of an external issuer is trusted as well (`PNC_API_JWKS_FILE` +
//! `PNC_API_JWKS_ISSUER`); its tokens must carry the same claims (`role`, `tenants`, our `aud`).

use std::collections::HashMap;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use super::error::{ApiError, body_error};
use super::{AppState, Routes};
use crate::ca::{Actor, Ca};
use crate::hsm::{HashAlg, KeyAlg, KeyRef};
use crate::policy::identifiers;
use crate::store::api::{ClientRecord, SigningKeyRecord};
use crate::store::{AuditEvent, Store};

const B64URL: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Cpo,
    Mo,
    Oem,
    Cps,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Cpo => "cpo",
            Role::Mo => "mo",
            Role::Oem => "oem",
            Role::Cps => "cps",
            Role::Admin => "admin",
        }
    }
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "cpo" => Some(Role::Cpo),
            "mo" => Some(Role::Mo),
            "oem" => Some(Role::Oem),
            "cps" => Some(Role::Cps),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// Normalise a tenant prefix for a role: `DE*ABC` (EVSE operator) for CPOs, `DE8AA` (EMAID
/// provider) for MOs, a 3-character WMI for OEMs. CPS and admin clients have no tenants.
pub fn normalize_tenant(role: Role, t: &str) -> Result<String, String> {
    match role {
        Role::Cpo => identifiers::normalize_evse_tenant_prefix(t).map_err(|e| e.to_string()),
        Role::Mo => identifiers::normalize_emaid_tenant_prefix(t).map_err(|e| e.to_string()),
        Role::Oem => {
            let u = t.trim().to_ascii_uppercase();
            if u.len() == 3 && u.bytes().all(|b| b.is_ascii_alphanumeric()) {
                Ok(u)
            } else {
                Err(format!("'{t}' is not a 3-character WMI prefix"))
            }
        }
        Role::Cps | Role::Admin => {
            Err(format!("{} clients have no tenant prefixes", role.as_str()))
        }
    }
}

/// The authenticated caller.
#[derive(Clone, Debug)]
pub struct Principal {
    pub client_id: String,
    pub role: Role,
    pub tenants: Vec<String>,
}

impl Principal {
    pub fn actor(&self) -> Actor {
        Actor {
            name: format!("api:{}", self.client_id),
        }
    }
    pub fn require(&self, allowed: &[Role]) -> Result<(), ApiError> {
        if self.role == Role::Admin || allowed.contains(&self.role) {
            Ok(())
        } else {
            Err(self.forbid(
                "forbidden_role",
                format!("role {} may not use this operation", self.role.as_str()),
            ))
        }
    }
    /// A 403 that names this caller, so the request log and the audit entry can say who.
    pub fn forbid(&self, code: &str, detail: impl Into<String>) -> ApiError {
        let mut e = ApiError::forbidden(code, detail);
        e.actor = Some(format!("api:{}", self.client_id));
        e
    }
    /// Whether a certificate's tenant (as stored) is within this caller's scope.
    pub fn owns_tenant(&self, tenant: Option<&str>) -> bool {
        self.role == Role::Admin || tenant.is_some_and(|t| self.tenants.iter().any(|m| m == t))
    }
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    aud: String,
    exp: i64,
    nbf: i64,
    iat: i64,
    jti: String,
    role: String,
    #[serde(default)]
    tenants: Vec<String>,
    #[serde(default)]
    scope: String,
}

struct TrustedKey {
    key: DecodingKey,
    issuer: String,
}

pub struct Authenticator {
    kid: String,
    key: KeyRef,
    issuer: String,
    audience: String,
    ttl: i64,
    public_jwk: serde_json::Value,
    keys: HashMap<String, TrustedKey>,
}

impl Authenticator {
    pub async fn load(ca: &Ca, cfg: &super::ApiConfig) -> anyhow::Result<Authenticator> {
        let rec = match ca.store.current_signing_key().await? {
            Some(r) => r,
            None => {
                let hsm = ca.hsm.clone();
                let (key, public) = tokio::task::spawn_blocking(move || {
                    hsm.generate_ca_key(KeyAlg::EcP256, "pnc-api-jwt")
                })
                .await??;
                let kid = hex::encode(&<sha2::Sha256 as sha2::Digest>::digest(&public.point)[..8]);
                let rec = SigningKeyRecord {
                    kid: kid.clone(),
                    key_id: hex::encode(&key.id),
                    key_alg: "ec-p256".into(),
                    public_point: public.point.clone(),
                    created_at: crate::store::now(),
                };
                let ev = AuditEvent::new(
                    "service",
                    "api.signing_key.create",
                    &kid,
                    serde_json::json!({"alg": "ES256", "hsm_key_id": rec.key_id}),
                );
                ca.store.insert_signing_key(&rec, &ev).await?;
                tracing::info!(kid = %kid, "created access-token signing key in the HSM");
                rec
            }
        };
        if rec.public_point.len() != 65 || rec.public_point[0] != 4 {
            anyhow::bail!(
                "token signing key {} has an unexpected public point",
                rec.kid
            );
        }
        let x = B64URL.encode(&rec.public_point[1..33]);
        let y = B64URL.encode(&rec.public_point[33..65]);
        let mut keys = HashMap::new();
        keys.insert(
            rec.kid.clone(),
            TrustedKey {
                key: DecodingKey::from_ec_components(&x, &y)?,
                issuer: cfg.issuer.clone(),
            },
        );
        if let (Some(file), Some(iss)) = (&cfg.jwks_file, &cfg.jwks_issuer) {
            let text = std::fs::read_to_string(file)
                .map_err(|e| anyhow::anyhow!("JWKS file {file}: {e}"))?;
            let set: jsonwebtoken::jwk::JwkSet = serde_json::from_str(&text)
                .map_err(|e| anyhow::anyhow!("JWKS file {file}: {e}"))?;
            for jwk in &set.keys {
                let Some(kid) = jwk.common.key_id.clone() else {
                    anyhow::bail!("JWKS file {file}: every key needs a kid");
                };
                if kid == rec.kid {
                    anyhow::bail!("JWKS file {file}: kid {kid} collides with our own key");
                }
                keys.insert(
                    kid,
                    TrustedKey {
                        key: DecodingKey::from_jwk(jwk)?,
                        issuer: iss.clone(),
                    },
                );
            }
        }
        Ok(Authenticator {
            public_jwk: serde_json::json!({
                "kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": rec.kid, "alg": "ES256", "use": "sig"
            }),
            kid: rec.kid,
            key: KeyRef {
                id: hex::decode(&rec.key_id)?,
                alg: KeyAlg::EcP256,
            },
            issuer: cfg.issuer.clone(),
            audience: cfg.audience.clone(),
            ttl: cfg.token_ttl,
            keys,
        })
    }

    /// A signed access token for a client (signature made in the HSM).
    async fn issue(&self, ca: &Ca, c: &ClientRecord) -> Result<(String, i64), ApiError> {
        let now = crate::store::now();
        let claims = Claims {
            iss: self.issuer.clone(),
            sub: c.client_id.clone(),
            aud: self.audience.clone(),
            exp: now + self.ttl,
            nbf: now - 5,
            iat: now,
            jti: hex::encode(rand::random::<[u8; 12]>()),
            role: c.role.clone(),
            tenants: c.tenants.clone(),
            scope: c.role.clone(),
        };
        let header = serde_json::json!({"alg": "ES256", "typ": "JWT", "kid": self.kid});
        let input = format!(
            "{}.{}",
            B64URL.encode(header.to_string()),
            B64URL.encode(serde_json::to_vec(&claims).map_err(ApiError::internal)?)
        );
        let hsm = ca.hsm.clone();
        let key = self.key.clone();
        let data = input.clone().into_bytes();
        let sig = tokio::task::spawn_blocking(move || hsm.sign_raw(&key, HashAlg::Sha256, &data))
            .await
            .map_err(ApiError::internal)?
            .map_err(|e| ApiError::from(crate::ca::CaError::from(e)))?;
        Ok((format!("{input}.{}", B64URL.encode(sig)), self.ttl))
    }

    /// Verify a bearer token; the error says why (never echoing the token).
    fn verify(&self, token: &str) -> Result<Principal, (&'static str, String)> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| ("invalid_token", "malformed token".to_string()))?;
        if header.alg != Algorithm::ES256 {
            return Err(("invalid_token", "token algorithm must be ES256".into()));
        }
        let kid = header
            .kid
            .ok_or(("invalid_token", "token has no kid".to_string()))?;
        let trusted = self.keys.get(&kid).ok_or((
            "invalid_token",
            "token signed by an unknown key".to_string(),
        ))?;
        let mut v = Validation::new(Algorithm::ES256);
        v.set_audience(&[&self.audience]);
        v.set_issuer(&[&trusted.issuer]);
        v.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
        v.leeway = 30;
        v.validate_nbf = true;
        let data = jsonwebtoken::decode::<Claims>(token, &trusted.key, &v).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            match e.kind() {
                K::ExpiredSignature => ("token_expired", "token has expired".to_string()),
                K::InvalidAudience => (
                    "invalid_audience",
                    "token audience is not this service".to_string(),
                ),
                K::InvalidIssuer => ("invalid_issuer", "token issuer is not trusted".to_string()),
                K::InvalidSignature => (
                    "bad_signature",
                    "token signature does not verify".to_string(),
                ),
                K::ImmatureSignature => ("invalid_token", "token not valid yet".to_string()),
                _ => ("invalid_token", "token is not valid".to_string()),
            }
        })?;
        let role = Role::parse(&data.claims.role)
            .ok_or(("invalid_token", "token has no valid role".to_string()))?;
        Ok(Principal {
            client_id: data.claims.sub,
            role,
            tenants: data.claims.tenants,
        })
    }
}

/// Bearer token from `Authorization: Bearer …` or `X-API-Key: …` (MaEVe sends both with the
/// same value; if both are present they must agree).
fn bearer(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.trim().split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| rest.trim().to_string())
        });
    let key = headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().trim_start_matches("Bearer ").trim().to_string());
    match (auth, key) {
        (Some(a), Some(k)) if a != k => Err(ApiError::unauthorized(
            "invalid_token",
            "Authorization and X-API-Key carry different tokens",
        )),
        (Some(a), _) => Ok(Some(a)),
        (None, k) => Ok(k.filter(|s| !s.is_empty())),
    }
}

async fn audit_auth_failure(store: &Store, who: &str, code: &str, path: &str) {
    let ev = AuditEvent::new(
        who,
        "auth.failure",
        path,
        serde_json::json!({ "reason": code }),
    );
    if let Err(e) = store.audit(&ev).await {
        tracing::error!(error = %e, "could not audit an authentication failure");
    }
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, Self::Rejection> {
        let path = parts.uri.path().to_string();
        let token = match bearer(&parts.headers) {
            Ok(Some(t)) => t,
            Ok(None) => {
                // Mutual TLS: a verified client certificate whose CN is a registered client id.
                let peer = parts
                    .extensions
                    .get::<axum::extract::ConnectInfo<super::tls::PeerInfo>>()
                    .and_then(|c| c.0.client_cert_cn.clone());
                if let Some(cn) = peer
                    && let Some(c) = st.ca.store.get_client(&cn).await?
                    && c.disabled_at.is_none()
                    && let Some(role) = Role::parse(&c.role)
                {
                    return Ok(Principal {
                        client_id: c.client_id,
                        role,
                        tenants: c.tenants,
                    });
                }
                st.metrics.auth_failure("missing_credentials");
                audit_auth_failure(&st.ca.store, "anonymous", "missing_credentials", &path).await;
                return Err(ApiError::unauthorized(
                    "missing_credentials",
                    "an access token is required (Authorization: Bearer or X-API-Key)",
                ));
            }
            Err(e) => {
                st.metrics.auth_failure(&e.code);
                audit_auth_failure(&st.ca.store, "anonymous", &e.code, &path).await;
                return Err(e);
            }
        };
        match st.auth.verify(&token) {
            Ok(p) => Ok(p),
            Err((code, detail)) => {
                st.metrics.auth_failure(code);
                audit_auth_failure(&st.ca.store, "anonymous", code, &path).await;
                Err(ApiError::unauthorized(code, detail))
            }
        }
    }
}

pub fn routes(r: Routes) -> Routes {
    r.add("/oauth/token", &["POST"], post(token))
        .add("/oauth/jwks.json", &["GET"], get(jwks))
}

async fn jwks(State(st): State<AppState>) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "keys": [st.auth.public_jwk] }))
}

#[derive(Debug, Default, serde::Deserialize)]
struct TokenRequest {
    grant_type: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    #[allow(dead_code)]
    audience: Option<String>,
    #[allow(dead_code)]
    scope: Option<String>,
}

/// RFC 6749 §5.2 error body (with our traceId).
fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let mut resp = (
        status,
        Json(serde_json::json!({
            "error": error,
            "error_description": description,
            "traceId": super::error::current_trace_id(),
        })),
    )
        .into_response();
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    resp
}

/// `POST /oauth/token`: client credentials in a JSON (MaEVe, ev-server) or form (CitrineOS)
/// body, or in HTTP Basic (RFC 6749 §2.3.1). `audience` is accepted and ignored: our tokens
/// always carry our own audience.
async fn token(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(e) => return body_error(e).into_response(),
    };
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let trimmed = body.trim_ascii_start();
    let parsed: Result<TokenRequest, String> =
        if ctype.contains("json") || trimmed.first() == Some(&b'{') {
            serde_json::from_slice(&body).map_err(|e| format!("invalid JSON body: {e}"))
        } else {
            serde_urlencoded::from_bytes(&body).map_err(|e| format!("invalid form body: {e}"))
        };
    let mut req = match parsed {
        Ok(r) => r,
        Err(e) => return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", &e),
    };
    if let Some((id, secret)) = basic_credentials(&headers) {
        req.client_id.get_or_insert(id);
        req.client_secret.get_or_insert(secret);
    }
    if req.grant_type.as_deref() != Some("client_credentials") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "grant_type must be client_credentials",
        );
    }
    let (Some(id), Some(secret)) = (req.client_id, req.client_secret) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "client_id and client_secret are required",
        );
    };
    let client = match st.ca.store.get_client(&id).await {
        Ok(c) => c,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let ok = match &client {
        Some(c) if c.disabled_at.is_none() => verify_secret(&c.secret_hash, secret).await,
        // Spend the same time on unknown clients so response time does not reveal which ids exist.
        _ => {
            let _ = verify_secret(DUMMY_HASH.as_str(), secret).await;
            false
        }
    };
    let Some(client) = client.filter(|_| ok) else {
        st.metrics.auth_failure("invalid_client");
        // The client id is not a secret and helps trace brute force; the secret is never logged.
        let who = format!("client:{}", id.chars().take(64).collect::<String>());
        audit_auth_failure(&st.ca.store, &who, "invalid_client", "/oauth/token").await;
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client authentication failed",
        );
    };
    match st.auth.issue(&st.ca, &client).await {
        Ok((tok, ttl)) => {
            let mut resp = Json(serde_json::json!({
                "access_token": tok,
                "token_type": "Bearer",
                "expires_in": ttl,
                "scope": client.role,
            }))
            .into_response();
            resp.headers_mut().insert(
                header::CACHE_CONTROL,
                header::HeaderValue::from_static("no-store"),
            );
            resp
        }
        Err(e) => e.into_response(),
    }
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = v.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let s = String::from_utf8(raw).ok()?;
    let (id, secret) = s.split_once(':')?;
    Some((id.to_string(), secret.to_string()))
}

static DUMMY_HASH: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| hash_secret("dummy-secret-for-timing").unwrap_or_default());

pub fn hash_secret(secret: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    argon2::Argon2::default()
        .hash_password(secret.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Argon2 is deliberately slow: run it off the async workers.
async fn verify_secret(hash: &str, secret: String) -> bool {
    let hash = hash.to_string();
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash)
            .map(|h| {
                argon2::Argon2::default()
                    .verify_password(secret.as_bytes(), &h)
                    .is_ok()
            })
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false)
}

/// Register a client: validates role and tenants, stores the argon2 hash, audits, and returns
/// the record with the secret (shown once, never stored).
pub async fn create_client(
    store: &Store,
    name: &str,
    role: Role,
    tenants: &[String],
    actor: &Actor,
) -> Result<(ClientRecord, String), ApiError> {
    let name = name.trim();
    if name.is_empty() || name.len() > 200 || name.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "invalid_client_name",
            "name must be 1–200 printable characters",
        ));
    }
    let mut norm = Vec::new();
    for t in tenants {
        let n =
            normalize_tenant(role, t).map_err(|e| ApiError::bad_request("invalid_tenant", e))?;
        if !norm.contains(&n) {
            norm.push(n);
        }
    }
    let client_id = format!("pnc_{}", hex::encode(rand::random::<[u8; 10]>()));
    let secret = B64URL.encode(rand::random::<[u8; 32]>());
    let s2 = secret.clone();
    let secret_hash = tokio::task::spawn_blocking(move || hash_secret(&s2))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    let rec = ClientRecord {
        client_id: client_id.clone(),
        name: name.to_string(),
        role: role.as_str().to_string(),
        tenants: norm.clone(),
        secret_hash,
        disabled_at: None,
        created_at: crate::store::now(),
    };
    let ev = AuditEvent::new(
        &actor.name,
        "client.create",
        &client_id,
        serde_json::json!({"name": name, "role": role.as_str(), "tenants": norm}),
    );
    store.insert_client(&rec, &ev).await?;
    Ok((rec, secret))
}

pub async fn disable_client(
    store: &Store,
    client_id: &str,
    actor: &Actor,
) -> Result<bool, ApiError> {
    let ev = AuditEvent::new(
        &actor.name,
        "client.disable",
        client_id,
        serde_json::json!({}),
    );
    Ok(store
        .disable_client(client_id, crate::store::now(), &ev)
        .await?)
}
