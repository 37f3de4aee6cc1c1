//! Establishing who is asking: OAuth2 client credentials exchanged for access tokens, access
//! tokens verified, and client certificates mapped to clients. Failures are audited.
//!
//! Tokens are JWS ES256 signed in the HSM with the CA's token key (`Ca::sign_token`): header and
//! payload built here, SHA-256 and `CKM_ECDSA` in the token, so the private key never exists in
//! process memory. Verification uses `jsonwebtoken` (pinned to ES256, `kid` looked up,
//! `exp`/`nbf`/`aud`/`iss` checked) with the public point, so it needs no HSM call.
//!
//! Optionally a JWKS of an external issuer is trusted as well; its tokens must carry the same
//! claims (`role`, `tenants`, our `aud`).

use std::collections::HashMap;

use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use super::{Ra, RaError};
use crate::ca::tokens::TokenKey;
use crate::client_ip::ClientIp;
use crate::model::ClientRecord;
use crate::policy::authz::{Principal, Role};

const B64URL: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Clock difference tolerated on `exp` and `nbf`, seconds.
const LEEWAY: i64 = 30;

/// How tokens are issued and which external issuer is trusted.
#[derive(Clone, Debug)]
pub struct TokenSettings {
    /// `iss` of the tokens we issue.
    pub issuer: String,
    /// `aud` required in every token.
    pub audience: String,
    /// Lifetime of the tokens we issue, seconds.
    pub ttl: i64,
    /// An external issuer's JWKS (JSON text) and its `iss`.
    pub external: Option<(String, String)>,
}

/// The credential a request presented.
#[derive(Clone, Debug)]
pub enum Credential {
    /// An access token (`Authorization: Bearer`, `X-API-Key`).
    Bearer(String),
    /// A client certificate (DER) that verified against the configured client CA.
    ClientCertificate(std::sync::Arc<Vec<u8>>),
    /// Nothing.
    None,
}

/// A token granted to a client.
#[derive(Clone, Debug)]
pub struct Grant {
    /// The JWS.
    pub access_token: String,
    /// Lifetime, seconds.
    pub expires_in: i64,
    /// The client's role (OAuth2 `scope`).
    pub scope: Role,
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
    /// One of our own signing keys (its tokens' clients must still be enabled).
    ours: bool,
}

/// Issues and verifies access tokens.
pub struct Tokens {
    ra: Ra,
    key: TokenKey,
    settings: TokenSettings,
    public_jwk: serde_json::Value,
    keys: HashMap<String, TrustedKey>,
    verified: std::sync::Mutex<HashMap<[u8; 32], Verified>>,
}

/// Tokens whose signature and claims verified, by SHA-256 of the whole token, at most this
/// many. A client sends the same token for its lifetime (an hour), so a signature is checked
/// once per token and process, not once per request (ES256 verification was the largest single
/// cost of an enrollment). Only verified tokens get in, so an anonymous caller cannot fill it.
const VERIFIED_TOKENS: usize = 4096;

/// What a verified token says; times and the client's state are checked again at every use.
#[derive(Clone)]
struct Verified {
    sub: String,
    role: Role,
    tenants: Vec<String>,
    exp: i64,
    nbf: i64,
    /// Issued by us (its client must still be enabled).
    ours: bool,
}

fn unauthenticated(code: &'static str, detail: &str) -> RaError {
    RaError::Unauthenticated {
        code,
        detail: detail.to_string(),
    }
}

impl Tokens {
    /// Load (or create, on first start) the token signing key and the trusted external keys.
    pub async fn load(ra: &Ra, settings: TokenSettings) -> Result<Tokens, RaError> {
        let key = ra.ca()?.token_key().await?;
        let bad = |m: String| RaError::bad("config", m);
        let x = B64URL.encode(&key.public_point[1..33]);
        let y = B64URL.encode(&key.public_point[33..65]);
        let mut keys = HashMap::new();
        // Every signing key we ever recorded, not only the one this process signs with: a
        // replica that lost the race to create it (or ran before a rotation) verifies the others.
        for (kid, point) in ra.ca()?.token_verification_keys().await? {
            let (kx, ky) = (B64URL.encode(&point[1..33]), B64URL.encode(&point[33..65]));
            keys.insert(
                kid,
                TrustedKey {
                    key: DecodingKey::from_ec_components(&kx, &ky)
                        .map_err(|e| RaError::Internal(format!("token key: {e}")))?,
                    issuer: settings.issuer.clone(),
                    ours: true,
                },
            );
        }
        keys.insert(
            key.kid.clone(),
            TrustedKey {
                key: DecodingKey::from_ec_components(&x, &y)
                    .map_err(|e| RaError::Internal(format!("token key: {e}")))?,
                issuer: settings.issuer.clone(),
                ours: true,
            },
        );
        if let Some((text, iss)) = &settings.external {
            let set: jsonwebtoken::jwk::JwkSet =
                serde_json::from_str(text).map_err(|e| bad(format!("JWKS: {e}")))?;
            for jwk in &set.keys {
                let Some(kid) = jwk.common.key_id.clone() else {
                    return Err(bad("JWKS: every key needs a kid".into()));
                };
                if keys.contains_key(&kid) {
                    return Err(bad(format!("JWKS: kid {kid} collides with our own key")));
                }
                keys.insert(
                    kid,
                    TrustedKey {
                        key: DecodingKey::from_jwk(jwk).map_err(|e| bad(format!("JWKS: {e}")))?,
                        issuer: iss.clone(),
                        ours: false,
                    },
                );
            }
        }
        Ok(Tokens {
            public_jwk: serde_json::json!({
                "kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": key.kid, "alg": "ES256", "use": "sig"
            }),
            ra: ra.clone(),
            key,
            settings,
            keys,
            verified: std::sync::Mutex::new(HashMap::new()),
        })
    }

    /// Our public key as a JWKS.
    pub fn jwks(&self) -> serde_json::Value {
        serde_json::json!({ "keys": [self.public_jwk] })
    }

    /// Exchange client credentials for a token, for a request from `ip`. A failure is audited
    /// with the client id (not a secret, and it helps trace brute force); the secret is never
    /// logged. Limits: see `Ra::check_client_secret`.
    pub async fn grant(
        &self,
        ip: ClientIp,
        client_id: &str,
        secret: String,
    ) -> Result<Grant, RaError> {
        self.ra.admit_source(ip, "/oauth/token").await?;
        let Some(client) = self.ra.check_client_secret(ip, client_id, secret).await? else {
            let who = format!("client:{}", super::clients::cut(client_id));
            self.ra
                .audit_auth_failure(ip, &who, "invalid_client", "/oauth/token")
                .await;
            return Err(unauthenticated(
                "invalid_client",
                "client authentication failed",
            ));
        };
        let access_token = self.sign(&client).await?;
        Ok(Grant {
            access_token,
            expires_in: self.settings.ttl,
            scope: client.role,
        })
    }

    async fn sign(&self, c: &ClientRecord) -> Result<String, RaError> {
        let now = self.ra.now();
        let claims = Claims {
            iss: self.settings.issuer.clone(),
            sub: c.client_id.clone(),
            aud: self.settings.audience.clone(),
            exp: now + self.settings.ttl,
            nbf: now - 5,
            iat: now,
            jti: hex::encode(rand::random::<[u8; 12]>()),
            role: c.role.as_str().to_string(),
            tenants: c.tenants.clone(),
            scope: c.role.as_str().to_string(),
        };
        let header = serde_json::json!({"alg": "ES256", "typ": "JWT", "kid": self.key.kid});
        let payload = serde_json::to_vec(&claims).map_err(|e| RaError::Internal(e.to_string()))?;
        let input = format!(
            "{}.{}",
            B64URL.encode(header.to_string()),
            B64URL.encode(payload)
        );
        let sig = self
            .ra
            .ca()?
            .sign_token(&self.key, input.as_bytes())
            .await?;
        Ok(format!("{input}.{}", B64URL.encode(sig)))
    }

    /// The principal a credential establishes for a request from `ip`. Failures are audited
    /// with `resource` (the request path, aggregated per address) and answered without echoing
    /// the credential; an address that failed too often is refused (429) before any check.
    pub async fn authenticate(
        &self,
        credential: Credential,
        resource: &str,
        ip: ClientIp,
    ) -> Result<Principal, RaError> {
        self.ra.admit_source(ip, resource).await?;
        let result = match credential {
            Credential::Bearer(t) => self.verify(&t).await,
            Credential::ClientCertificate(der) => {
                match self.ra.client_for_certificate(&der).await {
                    Ok(Some(c)) => {
                        Ok(Principal::client(&c.client_id, c.role, c.tenants).named(&c.name))
                    }
                    // A certificate no client is registered for is no credential.
                    Ok(None) => Err(unauthenticated(
                        "missing_credentials",
                        "an access token is required (Authorization: Bearer or X-API-Key)",
                    )),
                    Err(e) => Err(e),
                }
            }
            Credential::None => Err(unauthenticated(
                "missing_credentials",
                "an access token is required (Authorization: Bearer or X-API-Key)",
            )),
        };
        if let Err(e) = &result
            && e.kind() == crate::error::ErrorKind::Unauthenticated
        {
            self.ra
                .audit_auth_failure(ip, "anonymous", e.code(), resource)
                .await;
        }
        result
    }

    /// Audit and return a credential the front end could not even read (two different tokens).
    pub async fn refuse(
        &self,
        ip: ClientIp,
        code: &'static str,
        detail: &str,
        resource: &str,
    ) -> RaError {
        if let Err(e) = self.ra.admit_source(ip, resource).await {
            return e;
        }
        self.ra
            .audit_auth_failure(ip, "anonymous", code, resource)
            .await;
        unauthenticated(code, detail)
    }

    /// Verify a bearer token; the error says why (never echoing the token). A token we issued
    /// also needs its client to be enabled still (checked at most every `CLIENT_STATE_TTL`).
    async fn verify(&self, token: &str) -> Result<Principal, RaError> {
        let digest: [u8; 32] = <sha2::Sha256 as sha2::Digest>::digest(token.as_bytes()).into();
        let known = self
            .verified
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&digest)
            .cloned();
        let v = match known {
            Some(v) => v,
            None => {
                let v = self.verify_signed(token)?;
                let mut cache = self.verified.lock().unwrap_or_else(|p| p.into_inner());
                if cache.len() >= VERIFIED_TOKENS {
                    let now = self.ra.now();
                    cache.retain(|_, t| t.exp + LEEWAY >= now);
                    if cache.len() >= VERIFIED_TOKENS {
                        cache.clear();
                    }
                }
                cache.insert(digest, v.clone());
                v
            }
        };
        let now = self.ra.now();
        if v.exp + LEEWAY < now {
            return Err(unauthenticated("token_expired", "token has expired"));
        }
        if v.nbf - LEEWAY > now {
            return Err(unauthenticated("invalid_token", "token not valid yet"));
        }
        let principal = Principal::client(&v.sub, v.role, v.tenants);
        if !v.ours {
            return Ok(principal);
        }
        match self.ra.active_client_name(&v.sub).await? {
            Some(name) => Ok(principal.named(&name)),
            None => Err(unauthenticated(
                "client_disabled",
                "the client of this token is disabled",
            )),
        }
    }

    /// Check a token's signature and claims (not its times or client state).
    fn verify_signed(&self, token: &str) -> Result<Verified, RaError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| unauthenticated("invalid_token", "malformed token"))?;
        if header.alg != Algorithm::ES256 {
            return Err(unauthenticated(
                "invalid_token",
                "token algorithm must be ES256",
            ));
        }
        let kid = header
            .kid
            .ok_or_else(|| unauthenticated("invalid_token", "token has no kid"))?;
        let trusted = self
            .keys
            .get(&kid)
            .ok_or_else(|| unauthenticated("invalid_token", "token signed by an unknown key"))?;
        let mut v = Validation::new(Algorithm::ES256);
        v.set_audience(&[&self.settings.audience]);
        v.set_issuer(&[&trusted.issuer]);
        v.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
        // Times are checked below against the injected clock, not the system's.
        v.validate_exp = false;
        v.validate_nbf = false;
        let data = jsonwebtoken::decode::<Claims>(token, &trusted.key, &v).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            match e.kind() {
                K::ExpiredSignature => unauthenticated("token_expired", "token has expired"),
                K::InvalidAudience => {
                    unauthenticated("invalid_audience", "token audience is not this service")
                }
                K::InvalidIssuer => {
                    unauthenticated("invalid_issuer", "token issuer is not trusted")
                }
                K::InvalidSignature => {
                    unauthenticated("bad_signature", "token signature does not verify")
                }
                K::ImmatureSignature => unauthenticated("invalid_token", "token not valid yet"),
                _ => unauthenticated("invalid_token", "token is not valid"),
            }
        })?;
        // ECDSA is malleable: (r, n − s) verifies as well as (r, s). We sign low-S only
        // (`Ca::sign_token`) and take our own tokens in low-S form only, so that one token of
        // ours cannot be turned into a second, different one that still verifies. An external
        // issuer's tokens are taken in either form: most JWT libraries (jsonwebtoken among
        // them) do not normalise S, so half of a real identity provider's tokens would be
        // refused, and a malleated copy grants nothing the original did not.
        if trusted.ours
            && let Some(raw) = token
                .rsplit_once('.')
                .and_then(|(_, sig)| B64URL.decode(sig).ok())
            && !crate::x509::ecdsa::p256_is_low_s(&raw)
        {
            return Err(unauthenticated(
                "non_canonical_signature",
                "token signature is not in low-S form",
            ));
        }
        let role: Role = data
            .claims
            .role
            .parse()
            .map_err(|_| unauthenticated("invalid_token", "token has no valid role"))?;
        Ok(Verified {
            sub: data.claims.sub,
            role,
            tenants: data.claims.tenants,
            exp: data.claims.exp,
            nbf: data.claims.nbf,
            ours: trusted.ours,
        })
    }
}
