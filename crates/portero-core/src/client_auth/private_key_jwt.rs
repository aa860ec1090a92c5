//! `private_key_jwt` (RFC 7523 §2.2, §3): a JWT the client signed with one of the keys of its
//! registered JWK Set. The signature is checked by `portero_wire::jws` (RS256, PS256, ES256, EdDSA;
//! `none` and HMAC are refused before any key is looked at); then `iss` = `sub` = the client,
//! `aud` names this server, `exp` is near (at most [`MAX_LIFETIME`] ahead), `nbf`/`iat` are not
//! in the future, and the `jti` was never accepted before (a record kept until `exp`).

use std::net::IpAddr;
use std::sync::Arc;

use portero_wire::jws::{CompactJws, Jwks};
use serde_json::Value;

use super::{ClientCredentials, unguessable};
use crate::context::Context;
use crate::error::OAuthError;
use crate::secret::Verdict;
use crate::store::{Client, Store, StoreError};

/// Clock skew allowed on `exp`, `nbf` and `iat`.
pub const LEEWAY: i64 = 30;
/// How far ahead of now an assertion's `exp` may be: assertions are for one request.
pub const MAX_LIFETIME: i64 = 300;
/// The path of the standard token endpoint, whose URL is accepted as `aud`.
const TOKEN_PATH: &str = "/oauth2/token";

/// Checks the assertion of `credentials` for `client` (`None`: unknown id); a refusal counts
/// against the caller's address (see `unguessable`). Every refusal is the same
/// `invalid_client`; the reason is only logged.
pub(super) async fn authenticate<S: Store>(
    ctx: &Context<S>,
    client: Option<Client>,
    credentials: &ClientCredentials,
    source: Option<IpAddr>,
    now: i64,
) -> Result<Client, OAuthError> {
    let assertion = credentials.assertion.as_deref().unwrap_or_default();
    let mut refusal = String::from("unknown client");
    let mut store_error: Option<StoreError> = None;
    let check = async {
        let checked = match &client {
            Some(client) => match client_keys(ctx, client, assertion).await {
                Ok(keys) => check(client, &keys, assertion, &ctx.policy.issuer, now),
                Err(reason) => Err(reason),
            },
            None => {
                dummy_verification(assertion);
                Err(format!("unknown client {:?}", credentials.client_id))
            }
        };
        match checked {
            Err(reason) => {
                refusal = reason;
                Verdict::NoMatch
            }
            Ok(seen) => match ctx.store.remember_jti(&seen.key, seen.expires_at).await {
                Ok(true) => Verdict::Match,
                Ok(false) => {
                    refusal = "the client assertion was used before (jti replayed)".to_owned();
                    Verdict::NoMatch
                }
                Err(error) => {
                    store_error = Some(error);
                    Verdict::Unavailable
                }
            },
        }
    };
    let verdict = unguessable(ctx, source, now, check).await?;
    match (verdict, client) {
        (Verdict::Match, Some(client)) => Ok(client),
        (Verdict::Unavailable, _) => Err(store_error.map_or_else(
            || OAuthError::temporarily_unavailable("client assertions cannot be checked now"),
            OAuthError::from,
        )),
        _ => Err(OAuthError::invalid_client().with_detail(refusal)),
    }
}

/// The replay record of an accepted assertion.
struct Seen {
    key: String,
    expires_at: i64,
}

/// The work of one signature check, for an unknown client: its refusal then takes as long as a
/// known client's bad signature, and the time does not tell which ids exist. An ECDSA P-256
/// verification of the assertion's bytes under a key made once, whose result is ignored.
fn dummy_verification(assertion: &str) {
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{
        ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair, UnparsedPublicKey,
    };
    static DUMMY_KEY: std::sync::OnceLock<Option<Vec<u8>>> = std::sync::OnceLock::new();
    let key = DUMMY_KEY.get_or_init(|| {
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new()).ok()?;
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).ok()?;
        Some(pair.public_key().as_ref().to_vec())
    });
    if let Some(key) = key {
        // A well-formed (r, s), so the whole verification runs; it cannot match.
        let signature = [0x5a_u8; 64];
        let _ = UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, key).verify(assertion.as_bytes(), &signature);
    }
}

/// The client's keys: its registered JWK Set, or the one its `jwks_uri` publishes (cached; a
/// `kid` the cached set lacks may fetch it again).
async fn client_keys<S: Store>(ctx: &Context<S>, client: &Client, assertion: &str) -> Result<Arc<Jwks>, String> {
    if let Some(text) = client.jwks.as_deref() {
        return ctx.remote_keys.registered(text).map_err(|e| format!("client {:?}: {e}", client.id));
    }
    let Some(uri) = client.jwks_uri.as_deref() else {
        return Err(format!("client {:?} has no registered keys", client.id));
    };
    let kid = CompactJws::parse(assertion).ok().and_then(|jws| jws.header().kid.clone());
    ctx.remote_keys.keys(uri, kid.as_deref()).await.map_err(|e| format!("client {:?}: its jwks_uri: {e}", client.id))
}

/// Everything but the replay check; the reason of a refusal.
fn check(client: &Client, keys: &Jwks, assertion: &str, issuer: &str, now: i64) -> Result<Seen, String> {
    let jws = CompactJws::parse(assertion).map_err(|e| format!("client assertion: {e}"))?;
    let header = jws.header();
    let candidates: Vec<_> = match &header.kid {
        Some(kid) => keys.get(kid).into_iter().collect(),
        None => keys.kids().filter_map(|kid| keys.get(kid)).filter(|k| k.accepts(header.alg)).collect(),
    };
    let claims: Value = candidates
        .iter()
        .find_map(|key| jws.verify_json(key).ok())
        .ok_or_else(|| "client assertion: no registered key verifies the signature".to_owned())?;
    let text_claim = |name: &str| claims.get(name).and_then(Value::as_str);
    if text_claim("iss") != Some(client.id.as_str()) || text_claim("sub") != Some(client.id.as_str()) {
        return Err(format!("client assertion: iss and sub must both be {:?}", client.id));
    }
    if !audience_matches(claims.get("aud"), issuer) {
        return Err("client assertion: aud names neither the issuer nor the token endpoint".to_owned());
    }
    let time = |name: &str| claims.get(name).and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)));
    let exp = time("exp").ok_or("client assertion: no exp")?;
    if exp.saturating_add(LEEWAY) <= now {
        return Err("client assertion: expired".to_owned());
    }
    if exp > now + MAX_LIFETIME + LEEWAY {
        return Err(format!("client assertion: exp more than {MAX_LIFETIME} s ahead"));
    }
    for name in ["nbf", "iat"] {
        if claims.get(name).is_some() && time(name).is_none_or(|t| t > now + LEEWAY) {
            return Err(format!("client assertion: {name} in the future"));
        }
    }
    let jti = text_claim("jti").filter(|j| !j.is_empty() && j.len() <= 256).ok_or("client assertion: no jti")?;
    // Client ids cannot contain ':' (see `admin::create_client`), so the key is unambiguous.
    Ok(Seen { key: format!("{}:{jti}", client.id), expires_at: exp.saturating_add(LEEWAY) })
}

/// Whether `aud` (a string or an array of them) names the issuer or the token endpoint's URL.
fn audience_matches(aud: Option<&Value>, issuer: &str) -> bool {
    let base = issuer.trim_end_matches('/');
    let token_endpoint = format!("{base}{TOKEN_PATH}");
    let accepted = |value: &Value| {
        value.as_str().is_some_and(|v| v == issuer || v.trim_end_matches('/') == base || v == token_endpoint)
    };
    match aud {
        Some(Value::Array(values)) => values.iter().any(accepted),
        Some(value) => accepted(value),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn audiences() {
        let issuer = "https://auth.example.com/";
        assert!(audience_matches(Some(&json!("https://auth.example.com")), issuer));
        assert!(audience_matches(Some(&json!("https://auth.example.com/oauth2/token")), issuer));
        assert!(audience_matches(Some(&json!(["x", "https://auth.example.com/"])), issuer));
        assert!(!audience_matches(Some(&json!("https://evil.example.com")), issuer));
        assert!(!audience_matches(Some(&json!(["x"])), issuer));
        assert!(!audience_matches(None, issuer));
    }
}
