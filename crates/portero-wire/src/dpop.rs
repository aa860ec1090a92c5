//! DPoP proofs (RFC 9449 §4), checked once for Portero's token endpoint and its verifier.
//!
//! A proof is a compact JWS with `typ: dpop+jwt`, an asymmetric `alg` (RS256, PS256, ES256,
//! EdDSA) and the signer's public key as `jwk` in its header. [`verify`] checks everything
//! RFC 9449 §4.3 asks of one proof on its own: the header, the signature under the header's
//! key (never a private key), `htm` and `htu` against the request, `iat` within a window, a
//! bounded `jti`, and `ath` (the access token's hash) when the proof comes with a token. What
//! needs memory is left to the caller, which has it: that the `jti` was not seen before, that
//! the `nonce` is one it issued, and that the key's [`Proof::thumbprint`] is the one the token
//! or refresh token is bound to (`cnf.jkt`, RFC 9449 §6).
//!
//! ```
//! use portero_wire::dpop::{self, Expected};
//!
//! let expected = Expected::new("POST", "https://auth.example/oauth2/token", 1_700_000_000);
//! // A proof must be a JWS whose header says `typ: dpop+jwt`.
//! assert!(dpop::verify("not.a.proof", &expected).is_err());
//! ```

use aws_lc_rs::digest::{SHA256, digest};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use crate::jws::{Algorithm, CompactJws, KeyError, PublicKey};

/// The `typ` of every DPoP proof (RFC 9449 §4.2).
pub const PROOF_TYPE: &str = "dpop+jwt";
/// The longest proof read: room for an RSA-4096 `jwk` and a long `htu`.
pub const MAX_PROOF_BYTES: usize = 8 * 1024;
/// The longest `jti` accepted (RFC 9449 §4.2 asks for 96 random bits; this leaves room).
pub const MAX_JTI_CHARS: usize = 256;
/// How old a proof's `iat` may be, by default: a proof is made for one request.
pub const DEFAULT_MAX_AGE: i64 = 300;
/// How far ahead of the server's clock a proof's `iat` may be, by default.
pub const DEFAULT_LEEWAY: i64 = 30;
/// The algorithms a proof may be signed with (`dpop_signing_alg_values_supported`).
pub const SIGNING_ALGS: [&str; 4] = ["RS256", "PS256", "ES256", "EdDSA"];

/// What the request a proof came with looks like, and the time window.
#[derive(Debug, Clone)]
pub struct Expected<'a> {
    /// The request's method (`htm`), e.g. `POST`.
    pub method: &'a str,
    /// The request's URL as the client addressed it (`htu`); query and fragment are ignored.
    pub url: &'a str,
    /// The access token sent with the proof, whose hash `ath` must be (RFC 9449 §7.1).
    pub access_token: Option<&'a str>,
    /// Now, in seconds since the Unix epoch.
    pub now: i64,
    /// How old `iat` may be.
    pub max_age: i64,
    /// How far in the future `iat` may be.
    pub leeway: i64,
}

impl<'a> Expected<'a> {
    /// A proof for `method` on `url` at `now`, with the default window and no access token.
    pub fn new(method: &'a str, url: &'a str, now: i64) -> Self {
        Self { method, url, access_token: None, now, max_age: DEFAULT_MAX_AGE, leeway: DEFAULT_LEEWAY }
    }

    /// The proof must also carry `ath` for `token`.
    pub fn with_access_token(mut self, token: &'a str) -> Self {
        self.access_token = Some(token);
        self
    }
}

/// A proof that passed [`verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Proof {
    /// The JWK SHA-256 thumbprint (RFC 7638) of the proof's key: what `cnf.jkt` binds to.
    pub thumbprint: String,
    /// The proof's unique id, for the caller's replay check.
    pub jti: String,
    /// When the proof was made.
    pub iat: i64,
    /// The server nonce the proof carries, if any.
    pub nonce: Option<String>,
    /// The algorithm it was signed with.
    pub alg: Algorithm,
}

impl Proof {
    /// The key under which a replay record of this proof is kept: the key's thumbprint and the
    /// `jti`, so two clients cannot block each other's proofs by choosing the same `jti`.
    pub fn replay_key(&self) -> String {
        format!("{}:{}", self.thumbprint, self.jti)
    }
}

/// Why a proof was refused; the reason is for logs, the answer is always `invalid_dpop_proof`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("DPoP proof: {0}")]
pub struct ProofError(pub String);

fn refuse<T>(reason: impl Into<String>) -> Result<T, ProofError> {
    Err(ProofError(reason.into()))
}

/// Checks one proof against the request it came with (RFC 9449 §4.3, steps 2 to 12 but the
/// nonce and replay, which need the caller's memory).
pub fn verify(proof: &str, expected: &Expected<'_>) -> Result<Proof, ProofError> {
    if proof.len() > MAX_PROOF_BYTES {
        return refuse(format!("longer than {MAX_PROOF_BYTES} bytes"));
    }
    let jws = CompactJws::parse(proof).map_err(|e| ProofError(e.to_string()))?;
    let header = jws.header();
    if header.typ.as_deref() != Some(PROOF_TYPE) {
        return refuse("typ must be dpop+jwt");
    }
    let Some(jwk) = header.jwk.as_ref() else {
        return refuse("no jwk in the header");
    };
    if holds_private_key(jwk) {
        return refuse("the header's jwk holds a private key");
    }
    let key = PublicKey::from_jwk(jwk).map_err(|e| ProofError(format!("header jwk: {e}")))?;
    let claims: Value = jws.verify_json(&key).map_err(|e| ProofError(e.to_string()))?;
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    let jti = text("jti").filter(|j| !j.is_empty() && j.len() <= MAX_JTI_CHARS).ok_or(ProofError("no jti".into()))?;
    if text("htm") != Some(expected.method) {
        return refuse("htm does not match the request's method");
    }
    if !text("htu").is_some_and(|htu| same_target(htu, expected.url)) {
        return refuse("htu does not match the request's URL");
    }
    let iat = claims.get("iat").and_then(numeric_date).ok_or(ProofError("no iat".into()))?;
    if iat > expected.now + expected.leeway {
        return refuse("iat is in the future");
    }
    if iat < expected.now - expected.max_age {
        return refuse("iat is too old");
    }
    if let Some(token) = expected.access_token
        && text("ath") != Some(access_token_hash(token).as_str())
    {
        return refuse("ath does not match the access token");
    }
    let nonce = match claims.get("nonce") {
        None => None,
        Some(Value::String(nonce)) if nonce.len() <= MAX_JTI_CHARS => Some(nonce.clone()),
        Some(_) => return refuse("nonce is not a string"),
    };
    let thumbprint = thumbprint(jwk).map_err(|e| ProofError(format!("header jwk: {e}")))?;
    Ok(Proof { thumbprint, jti: jti.to_owned(), iat, nonce, alg: header.alg })
}

/// `ath`: base64url(SHA-256(access token)) (RFC 9449 §4.2).
pub fn access_token_hash(access_token: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest(&SHA256, access_token.as_bytes()))
}

/// The JWK SHA-256 thumbprint of a public key (RFC 7638 §3): the hash of its required members,
/// in lexicographic order, without whitespace.
pub fn thumbprint(jwk: &Value) -> Result<String, KeyError> {
    let member = |name: &str| -> Result<String, KeyError> {
        let value = jwk.get(name).and_then(Value::as_str).ok_or(KeyError::Invalid)?;
        serde_json::to_string(value).map_err(|_| KeyError::Invalid)
    };
    let canonical = match jwk.get("kty").and_then(Value::as_str) {
        Some("EC") => format!(r#"{{"crv":{},"kty":"EC","x":{},"y":{}}}"#, member("crv")?, member("x")?, member("y")?),
        Some("OKP") => format!(r#"{{"crv":{},"kty":"OKP","x":{}}}"#, member("crv")?, member("x")?),
        Some("RSA") => format!(r#"{{"e":{},"kty":"RSA","n":{}}}"#, member("e")?, member("n")?),
        _ => return Err(KeyError::Unsupported),
    };
    Ok(URL_SAFE_NO_PAD.encode(digest(&SHA256, canonical.as_bytes())))
}

/// Whether a JWK carries private or symmetric key material.
fn holds_private_key(jwk: &Value) -> bool {
    ["d", "p", "q", "dp", "dq", "qi", "k"].iter().any(|name| jwk.get(name).is_some())
}

/// A NumericDate (RFC 7519 §2): an integer, or a number with a fraction (truncated).
fn numeric_date(value: &Value) -> Option<i64> {
    value.as_i64().or_else(|| value.as_f64().filter(|f| f.is_finite() && f.abs() < 1e15).map(|f| f as i64))
}

/// Whether `htu` and `url` name the same target, ignoring query and fragment, after RFC 3986
/// §6.2.2/§6.2.3 normalisation: case of scheme and host, the scheme's default port, an empty
/// path as `/`.
pub fn same_target(htu: &str, url: &str) -> bool {
    match (normalized(htu), normalized(url)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

fn normalized(url: &str) -> Option<String> {
    let url = url.split(['?', '#']).next().unwrap_or_default();
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "https" && scheme != "http" {
        return None;
    }
    let (authority, path) = match rest.find('/') {
        Some(at) => rest.split_at(at),
        None => (rest, "/"),
    };
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    let authority = authority.to_ascii_lowercase();
    let default_port = if scheme == "https" { ":443" } else { ":80" };
    let authority = authority.strip_suffix(default_port).unwrap_or(&authority);
    Some(format!("{scheme}://{authority}{path}"))
}

#[cfg(test)]
mod tests;
