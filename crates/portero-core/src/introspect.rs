//! RFC 7662 token introspection, for any authenticated client (resource servers are clients).
//! Access tokens are checked by signature, issuer, expiry and the revocation list; refresh
//! tokens by their stored record, and only for the client they were issued to.

use serde_json::{Map, Value, json};

use crate::client_auth::authenticate_request;
use crate::context::Context;
use crate::error::OAuthError;
use crate::secret::sha256_b64;
use crate::store::Store;
use crate::token_endpoint::TokenInput;

/// The introspection answer for `token` (RFC 7662 §2.2); `{"active": false}` for anything not
/// currently valid, whatever the reason.
pub async fn introspect<S: Store>(ctx: &Context<S>, input: &TokenInput, now: i64) -> Result<Value, OAuthError> {
    let client = authenticate_request(
        ctx,
        &input.params,
        input.authorization.as_deref(),
        input.client_cert.as_ref(),
        input.source,
        now,
    )
    .await?;
    let params = &input.params;
    let token = params.get("token").ok_or_else(|| OAuthError::invalid_request("token is missing"))?;
    if let Some(claims) = active_access_token(ctx, token, now).await? {
        let mut answer = Map::new();
        answer.insert("active".into(), true.into());
        // RFC 9449 §6.2: a DPoP-bound token says so, and its `cnf` tells the key.
        let bound = claims.get("cnf").and_then(|c| c.get("jkt")).is_some();
        answer.insert("token_type".into(), if bound { "DPoP" } else { "Bearer" }.into());
        for name in ["scope", "client_id", "sub", "aud", "iss", "exp", "iat", "jti", "tenants", "auth_time", "cnf"] {
            if let Some(value) = claims.get(name) {
                answer.insert(name.into(), value.clone());
            }
        }
        return Ok(Value::Object(answer));
    }
    let Some(record) = ctx.store.find_refresh_token(&sha256_b64(token.as_bytes())).await? else {
        return Ok(inactive());
    };
    let live = record.used_at.is_none() && record.revoked_at.is_none() && record.expires_at > now;
    if !live || record.client_id != client.id || !client_is_live(ctx, &record.client_id).await? {
        return Ok(inactive());
    }
    let mut answer = json!({
        "active": true,
        "token_type": "refresh_token",
        "client_id": record.client_id,
        "sub": record.subject,
        "scope": record.scopes.join(" "),
        "exp": record.expires_at,
        "iat": record.created_at,
        "iss": ctx.policy.issuer,
    });
    if let Some(jkt) = record.jkt {
        answer["cnf"] = json!({ "jkt": jkt });
    }
    Ok(answer)
}

fn inactive() -> Value {
    json!({ "active": false })
}

/// The claims of a valid, unexpired, unrevoked access token we issued.
pub(crate) async fn active_access_token<S: Store>(
    ctx: &Context<S>,
    token: &str,
    now: i64,
) -> Result<Option<Value>, OAuthError> {
    let Some(claims) = signed_access_token(ctx, token) else {
        return Ok(None);
    };
    let unexpired = claims.get("exp").and_then(Value::as_i64).is_some_and(|exp| exp > now);
    if !unexpired {
        return Ok(None);
    }
    let jti = claims.get("jti").and_then(Value::as_str).unwrap_or_default();
    if ctx.store.is_access_token_revoked(jti).await? {
        return Ok(None);
    }
    let client_id = claims.get("client_id").and_then(Value::as_str).unwrap_or_default();
    if !client_is_live(ctx, client_id).await? {
        return Ok(None);
    }
    // Everything of the client or the user issued up to a revocation of it is over.
    let (iat, sub) = (claims.get("iat").and_then(Value::as_i64), claims.get("sub").and_then(Value::as_str));
    if let Some(cutoff) = ctx.store.revoked_before(client_id, sub).await?
        && iat.is_none_or(|iat| iat <= cutoff)
    {
        return Ok(None);
    }
    Ok(Some(claims))
}

/// Whether the client exists and is not disabled (read through this node's client cache, which
/// every change drops at once).
async fn client_is_live<S: Store>(ctx: &Context<S>, client_id: &str) -> Result<bool, OAuthError> {
    Ok(ctx.clients.get(&ctx.store, client_id).await?.is_some_and(|c| c.disabled_at.is_none()))
}

/// The claims of an access token signed by one of our keys for our issuer, expired or not.
pub(crate) fn signed_access_token<S: Store>(ctx: &Context<S>, token: &str) -> Option<Value> {
    let claims = ctx.keys.current().verify(token)?;
    (claims.get("iss")?.as_str()? == ctx.policy.issuer).then_some(claims)
}
