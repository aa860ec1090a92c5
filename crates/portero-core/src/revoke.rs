//! RFC 7009 token revocation. A refresh token takes its whole family with it; an access token
//! is listed by `jti` until it would have expired anyway, so introspection on every node sees it.

use serde_json::Value;

use crate::audit::AuditEvent;
use crate::client_auth::authenticate_request;
use crate::context::Context;
use crate::error::{ErrorCode, OAuthError};
use crate::introspect::signed_access_token;
use crate::secret::sha256_b64;
use crate::store::Store;
use crate::token_endpoint::TokenInput;

/// Revokes `token` if the authenticated client owns it. Unknown or invalid tokens are not an
/// error (RFC 7009 §2.2); another client's token is refused (§2.1).
pub async fn revoke<S: Store>(ctx: &Context<S>, input: &TokenInput, now: i64) -> Result<(), OAuthError> {
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
    let not_yours = || {
        OAuthError::new(ErrorCode::UnauthorizedClient, "the token was not issued to this client")
            .with_detail(format!("client {:?} tried to revoke another client's token", client.id))
    };
    if let Some(claims) = signed_access_token(ctx, token) {
        if claims.get("client_id").and_then(Value::as_str) != Some(client.id.as_str()) {
            return Err(not_yours());
        }
        let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or(0);
        let jti = claims.get("jti").and_then(Value::as_str).unwrap_or_default();
        if exp > now && !jti.is_empty() {
            ctx.store.revoke_access_token(jti, &client.id, exp, now).await?;
            tracing::info!(client_id = %client.id, jti, "access token revoked");
            revoked(ctx, &client.id, claims.get("sub").and_then(Value::as_str), format!("access token {jti}"), now)
                .await;
        }
        return Ok(());
    }
    if let Some(record) = ctx.store.find_refresh_token(&sha256_b64(token.as_bytes())).await? {
        if record.client_id != client.id {
            return Err(not_yours());
        }
        let revoked = ctx.store.revoke_refresh_family(&record.family_id, now).await?;
        tracing::info!(client_id = %client.id, family = %record.family_id, revoked, "refresh token family revoked");
        let detail = format!("refresh token family {} ({revoked} live)", record.family_id);
        self::revoked(ctx, &client.id, Some(&record.subject), detail, now).await;
    }
    Ok(())
}

async fn revoked<S: Store>(ctx: &Context<S>, client_id: &str, subject: Option<&str>, detail: String, now: i64) {
    let mut event = AuditEvent::new(now, "token_revoked", "revoked");
    event.client_id = Some(client_id.to_owned());
    event.subject = subject.map(str::to_owned);
    event.detail = Some(detail);
    ctx.audit.keep(event).await;
}
