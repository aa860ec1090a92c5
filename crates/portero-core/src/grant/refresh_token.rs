//! RFC 6749 §6 with RFC 9700 §4.14.2 rotation: every refresh token redeems once; presenting a
//! used one revokes its whole family (someone holds a stolen copy).

use super::{Authorization, GrantType, RefreshPlan};
use crate::error::OAuthError;
use crate::secret::sha256_b64;
use crate::store::{Client, Store};
use crate::token_endpoint::Context;

pub(super) async fn handle<S: Store>(
    ctx: &Context<S>,
    client: &Client,
    refresh_token: &str,
    scope: Option<&str>,
    now: i64,
) -> Result<Authorization, OAuthError> {
    let invalid = || OAuthError::invalid_grant("the refresh token is invalid, expired or revoked");
    let hash = sha256_b64(refresh_token.as_bytes());
    let Some(record) = ctx.store.find_refresh_token(&hash).await? else {
        return Err(invalid().with_detail("unknown refresh token"));
    };
    if record.client_id != client.id {
        return Err(
            invalid().with_detail(format!("refresh token of {:?} presented by {:?}", record.client_id, client.id))
        );
    }
    if record.revoked_at.is_some() {
        return Err(invalid().with_detail("revoked refresh token"));
    }
    if record.used_at.is_some() {
        let revoked = ctx.store.revoke_refresh_family(&record.family_id, now).await?;
        tracing::warn!(client_id = %client.id, family = %record.family_id, revoked, "refresh token reuse: family revoked");
        return Err(invalid().with_detail("reused refresh token; family revoked"));
    }
    if record.expires_at <= now {
        return Err(invalid().with_detail("expired refresh token"));
    }
    // Scopes the client lost since the grant are not renewed.
    let still_allowed: Vec<String> = record.scopes.iter().filter(|s| client.scopes.contains(s)).cloned().collect();
    let scopes = crate::scope::narrow(scope, &still_allowed)?;
    Ok(Authorization {
        grant_type: GrantType::RefreshToken,
        subject: record.subject,
        user_id: record.user_id,
        tenants: record.tenants,
        scopes,
        audiences: record.audiences,
        auth_time: record.auth_time,
        refresh: RefreshPlan::Rotate { old_hash: hash, family_id: record.family_id, expires_at: record.expires_at },
    })
}
