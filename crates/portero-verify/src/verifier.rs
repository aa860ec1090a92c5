//! Verifying an access token: signature by a published key of the token's own algorithm,
//! `typ: at+jwt` (RFC 9068 §4), `iss`, `aud`, `exp`/`nbf` with a small leeway; or asking the
//! introspection endpoint (RFC 7662) for deployments that want revocation to bite at once.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::Value;

use crate::claims::Claims;
use crate::error::VerifyError;
use crate::jwks::JwksCache;

#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
    typ: Option<String>,
    /// RFC 7515 §4.1.11: extensions the recipient must understand. We understand none, so a
    /// header that has the member at all (even `null` or `[]`) is refused.
    #[serde(default)]
    crit: Present,
}

/// Whether a header member is there, whatever its value.
#[derive(Default)]
struct Present(bool);

impl<'de> Deserialize<'de> for Present {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(deserializer).map(|_| Self(true))
    }
}

fn decode_json<T: serde::de::DeserializeOwned>(part: &str) -> Option<T> {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).ok()?).ok()
}

enum Source {
    Jwks(JwksCache),
    Introspection { url: String, client_id: String, client_secret: String, http: reqwest::Client },
}

pub struct Verifier {
    source: Source,
    issuer: String,
    audience: String,
    leeway_seconds: u64,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier").field("issuer", &self.issuer).field("audience", &self.audience).finish()
    }
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap_or_default()
}

impl Verifier {
    /// Verifies locally against `jwks_url` (e.g. `https://auth.example/.well-known/jwks.json`).
    pub fn with_jwks(jwks_url: impl Into<String>, issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self::from_cache(JwksCache::new(jwks_url, http_client()), issuer, audience)
    }

    pub fn from_cache(cache: JwksCache, issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self { source: Source::Jwks(cache), issuer: issuer.into(), audience: audience.into(), leeway_seconds: 30 }
    }

    /// Asks the introspection endpoint about every token, authenticating as a client.
    pub fn with_introspection(
        introspection_url: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
        issuer: impl Into<String>,
        audience: impl Into<String>,
    ) -> Self {
        Self {
            source: Source::Introspection {
                url: introspection_url.into(),
                client_id: client_id.into(),
                client_secret: client_secret.into(),
                http: http_client(),
            },
            issuer: issuer.into(),
            audience: audience.into(),
            leeway_seconds: 30,
        }
    }

    /// Clock-skew allowance for `exp` and `nbf` (default 30 s).
    pub fn with_leeway(mut self, seconds: u64) -> Self {
        self.leeway_seconds = seconds;
        self
    }

    pub async fn verify(&self, token: &str) -> Result<Claims, VerifyError> {
        if token.len() > 16 * 1024 {
            return Err(VerifyError::InvalidToken("token too long".into()));
        }
        match &self.source {
            Source::Jwks(cache) => self.verify_signed(cache, token).await,
            Source::Introspection { url, client_id, client_secret, http } => {
                self.introspect(http, url, client_id, client_secret, token).await
            }
        }
    }

    /// Compact JWS by hand over aws-lc keys parsed once: the header's `alg` must be the key's
    /// own (no `none`, no HMAC with a public key), then `typ`, signature, and the claims.
    async fn verify_signed(&self, cache: &JwksCache, token: &str) -> Result<Claims, VerifyError> {
        let invalid = |why: &str| VerifyError::InvalidToken(why.to_owned());
        let (signing_input, signature) = token.rsplit_once('.').ok_or_else(|| invalid("not a JWS"))?;
        let (header, payload) = signing_input.split_once('.').ok_or_else(|| invalid("not a JWS"))?;
        let header: Header = decode_json(header).ok_or_else(|| invalid("malformed header"))?;
        if header.crit.0 {
            return Err(invalid("critical header extensions are not supported"));
        }
        let typ = header.typ.as_deref().unwrap_or("");
        if !typ.eq_ignore_ascii_case("at+jwt") && !typ.eq_ignore_ascii_case("application/at+jwt") {
            return Err(invalid("not an access token (typ must be at+jwt)"));
        }
        let kid = header.kid.as_deref().ok_or_else(|| invalid("no kid"))?;
        let key = cache.key(kid).await?;
        if header.alg != key.alg {
            return Err(invalid("algorithm does not match the key"));
        }
        let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| invalid("malformed signature"))?;
        key.key.verify_sig(signing_input.as_bytes(), &signature).map_err(|_| invalid("bad signature"))?;
        let claims: Claims = decode_json(payload).ok_or_else(|| invalid("malformed claims"))?;
        self.check_claims(&claims)?;
        Ok(claims)
    }

    /// `iss`, `aud`, `exp` and `nbf` (with the leeway), as RFC 9068 §4 asks.
    fn check_claims(&self, claims: &Claims) -> Result<(), VerifyError> {
        let invalid = |why: &str| Err(VerifyError::InvalidToken(why.to_owned()));
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
        let leeway = self.leeway_seconds as i64;
        if claims.exp + leeway <= now {
            return invalid("expired");
        }
        if claims.nbf.is_some_and(|nbf| nbf - leeway > now) {
            return invalid("not yet valid");
        }
        if claims.iss != self.issuer {
            return invalid("wrong issuer");
        }
        if !claims.has_audience(&self.audience) {
            return invalid("wrong audience");
        }
        if claims.sub.is_empty() {
            return invalid("no subject");
        }
        Ok(())
    }

    async fn introspect(
        &self,
        http: &reqwest::Client,
        url: &str,
        client_id: &str,
        client_secret: &str,
        token: &str,
    ) -> Result<Claims, VerifyError> {
        let response = http
            .post(url)
            .basic_auth(client_id, Some(client_secret))
            .form(&[("token", token), ("token_type_hint", "access_token")])
            .send()
            .await
            .map_err(|e| VerifyError::Unavailable(e.to_string()))?;
        if !response.status().is_success() {
            return Err(VerifyError::Unavailable(format!("introspection answered {}", response.status())));
        }
        let answer: Value = response.json().await.map_err(|e| VerifyError::Unavailable(e.to_string()))?;
        if answer.get("active") != Some(&Value::Bool(true)) || answer.get("token_type") != Some(&"Bearer".into()) {
            return Err(VerifyError::InvalidToken("inactive token".into()));
        }
        let claims: Claims = serde_json::from_value(answer).map_err(|e| VerifyError::InvalidToken(e.to_string()))?;
        self.check_claims(&claims)?;
        Ok(claims)
    }
}
