//! RFC 6749 §6 with RFC 9700 §4.14.2 rotation: every refresh token redeems once; presenting a
//! used one revokes its whole family (someone holds a stolen copy). A family issued with a DPoP
//! proof redeems only with a proof from the same key (RFC 9449 §5.0).

use super::{Authorization, GrantType, GrantedScope, RefreshPlan, Target};
use crate::context::Context;
use crate::error::OAuthError;
use crate::secret::sha256_b64;
use crate::store::{Client, RefreshTokenRecord, Store};

pub(super) async fn handle<S: Store>(
    ctx: &Context<S>,
    client: &Client,
    refresh_token: &str,
    target: &Target<'_>,
    presented: Option<&crate::dpop::Confirmation>,
    source: Option<std::net::IpAddr>,
    now: i64,
) -> Result<Authorization, OAuthError> {
    let invalid = || OAuthError::invalid_grant("the refresh token is invalid, expired or revoked");
    let hash = sha256_b64(refresh_token.as_bytes());
    let Some(mut record) = ctx.store.find_refresh_token(&hash).await? else {
        return Err(invalid().with_detail("unknown refresh token"));
    };
    if record.client_id != client.id {
        return Err(
            invalid().with_detail(format!("refresh token of {:?} presented by {:?}", record.client_id, client.id))
        );
    }
    // Before anything changes: a stolen bound token presented without its key spends nothing,
    // and does not revoke the family as a reuse would.
    if !crate::dpop::refresh_allowed(record.jkt.as_deref(), presented) {
        return Err(OAuthError::invalid_grant("the refresh token is bound to a DPoP key; send a proof made with it")
            .with_detail("DPoP-bound refresh token without a proof from its key"));
    }
    let window = client.refresh_retry_window.unwrap_or(ctx.policy.refresh_retry_window);
    if let Some(used_at) = record.used_at {
        if let Some(child) = retried_within_window(ctx, &record, refresh_token, used_at, window, now).await? {
            tracing::info!(client_id = %client.id, family = %record.family_id, "refresh retried within its window: same child");
            let refresh_token = ctx.successors.child_of(refresh_token);
            return authorization(client, child, target, |_| RefreshPlan::Redeliver { refresh_token });
        }
        if let Some(successor) = undelivered_successor(ctx, &record, now).await? {
            tracing::info!(client_id = %client.id, family = %record.family_id, "redeeming a rotation whose answer was lost");
            record = successor;
        }
    }
    if record.revoked_at.is_some() {
        return Err(invalid().with_detail("revoked refresh token"));
    }
    if record.used_at.is_some() {
        let revoked = ctx.store.revoke_refresh_family(&record.family_id, now).await?;
        tracing::warn!(client_id = %client.id, family = %record.family_id, revoked, "refresh token reuse: family revoked");
        crate::audit::family_revoked(
            &ctx.audit,
            &record.client_id,
            &record.subject,
            &record.family_id,
            revoked,
            source,
            now,
        )
        .await;
        return Err(invalid().with_detail("reused refresh token; family revoked"));
    }
    if record.expires_at <= now {
        return Err(invalid().with_detail("expired refresh token"));
    }
    let successor = (window > 0).then(|| ctx.successors.child_of(refresh_token));
    authorization(client, record, target, |record| RefreshPlan::Rotate {
        old_hash: record.hash.clone(),
        family_id: record.family_id.clone(),
        expires_at: record.expires_at,
        grant: GrantedScope { scopes: record.scopes.clone(), audiences: record.audiences.clone() },
        successor,
        jkt: record.jkt.clone(),
    })
}

/// The access token for `record`'s grant, narrowed to what the request asks for (RFC 6749 §6,
/// RFC 8707 §2.2); the refresh plan (`refresh`) keeps the whole grant.
fn authorization(
    client: &Client,
    mut record: RefreshTokenRecord,
    target: &Target<'_>,
    refresh: impl FnOnce(&RefreshTokenRecord) -> RefreshPlan,
) -> Result<Authorization, OAuthError> {
    // Scopes the client lost since the grant are not renewed.
    record.scopes.retain(|s| client.scopes.contains(s));
    let scopes = crate::scope::narrow(target.scope, &record.scopes)?;
    let audiences = crate::audience::narrow(target.audience, &target.resources, &record.audiences)?;
    let refresh = refresh(&record);
    Ok(Authorization {
        grant_type: GrantType::RefreshToken,
        subject: record.subject,
        user_id: record.user_id,
        tenants: record.tenants,
        scopes,
        audiences,
        auth_time: record.auth_time,
        refresh,
        cnf: None,
    })
}

/// The child `parent` (presented as `value`, used at `used_at`) was rotated into, if the client's
/// retry window still covers it: the child is derived from the parent (`crate::successor`), so
/// it is found from the stored hashes on any node, after a restart.
async fn retried_within_window<S: Store>(
    ctx: &Context<S>,
    parent: &RefreshTokenRecord,
    value: &str,
    used_at: i64,
    window: i64,
    now: i64,
) -> Result<Option<RefreshTokenRecord>, OAuthError> {
    if window <= 0 || now - used_at > window {
        return Ok(None);
    }
    let child_hash = sha256_b64(ctx.successors.child_of(value).as_bytes());
    let child = ctx.store.find_refresh_token(&child_hash).await?;
    Ok(child.filter(|c| c.family_id == parent.family_id && crate::successor::redeliverable(c, used_at, window, now)))
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
