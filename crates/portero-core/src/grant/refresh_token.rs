//! RFC 6749 §6 with RFC 9700 §4.14.2 rotation: every refresh token redeems once; presenting a
//! used one revokes its whole family (someone holds a stolen copy).

use super::{Authorization, GrantType, RefreshPlan};
use crate::error::OAuthError;
use crate::secret::sha256_b64;
use crate::store::{Client, RefreshTokenRecord, Store};
use crate::token_endpoint::Context;

pub(super) async fn handle<S: Store>(
    ctx: &Context<S>,
    client: &Client,
    refresh_token: &str,
    scope: Option<&str>,
    source: Option<std::net::IpAddr>,
    now: i64,
) -> Result<Authorization, OAuthError> {
    let invalid = || OAuthError::invalid_grant("the refresh token is invalid, expired or revoked");
    let hash = sha256_b64(refresh_token.as_bytes());
    let Some(mut record) = ctx.store.find_refresh_token(&hash).await? else {
        return Err(invalid().with_detail("unknown refresh token"));
    };
    if record.used_at.is_some()
        && let Some(successor) = undelivered_successor(ctx, &record, now).await?
    {
        tracing::info!(client_id = %client.id, family = %record.family_id, "redeeming a rotation whose answer was lost");
        record = successor;
    }
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
        crate::audit::family_revoked(ctx, &record.client_id, &record.subject, &record.family_id, revoked, source, now)
            .await;
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
        refresh: RefreshPlan::Rotate {
            old_hash: record.hash,
            family_id: record.family_id,
            expires_at: record.expires_at,
        },
    })
}

/// The successor `parent` was rotated into, if that rotation was never answered (see
/// `crate::pending`) and the successor is still live: the client retrying with `parent` is then
/// owed it. Anything else leaves `parent` to be treated as reused.
async fn undelivered_successor<S: Store>(
    ctx: &Context<S>,
    parent: &RefreshTokenRecord,
    now: i64,
) -> Result<Option<RefreshTokenRecord>, OAuthError> {
    let Some(successor_hash) = ctx.pending.take_undelivered(&parent.hash) else {
        return Ok(None);
    };
    let successor = ctx.store.find_refresh_token(&successor_hash).await?;
    Ok(successor.filter(|s| {
        s.family_id == parent.family_id && s.used_at.is_none() && s.revoked_at.is_none() && s.expires_at > now
    }))
}
