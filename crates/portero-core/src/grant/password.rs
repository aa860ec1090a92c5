//! RFC 6749 §4.3: a user of one of the client's tenants, by username and password.
//! Unknown user and wrong password give the same answer after the same argon2 work.

use super::{Authorization, GrantType, Target, refresh_plan};
use crate::error::OAuthError;
use crate::store::{Client, Store};
use crate::token_endpoint::Context;

pub(super) async fn handle<S: Store>(
    ctx: &Context<S>,
    client: &Client,
    username: &str,
    password: &str,
    target: &Target<'_>,
    now: i64,
) -> Result<Authorization, OAuthError> {
    let (scopes, audiences) = target.resolve(client, &ctx.policy.issuer)?;
    let key = crate::throttle::user_key(&client.id, username);
    let had_failures = ctx.throttle.check(&ctx.store, &key, now).await?;
    let candidates =
        if client.tenants.is_empty() { Vec::new() } else { ctx.store.find_users(username, &client.tenants).await? };
    let mut user = None;
    if candidates.is_empty() {
        ctx.verifier.verify_password(password, None).await;
    }
    // The same username may exist in several of the client's tenants; the password decides.
    for candidate in candidates {
        if ctx.verifier.verify_password(password, Some(&candidate.password_hash)).await {
            user = Some(candidate);
            break;
        }
    }
    let Some(user) = user else {
        ctx.throttle.failed(&ctx.store, &key, now).await?;
        return Err(OAuthError::invalid_grant("invalid username or password")
            .with_detail(format!("password grant failed for client {:?}", client.id)));
    };
    if had_failures {
        ctx.throttle.succeeded(&ctx.store, &key).await?;
    }
    let refresh = refresh_plan(client, &scopes);
    Ok(Authorization {
        grant_type: GrantType::Password,
        subject: user.id.clone(),
        user_id: Some(user.id),
        // The token acts for this user, so only within the user's tenant.
        tenants: vec![user.tenant_id],
        scopes,
        audiences,
        auth_time: now,
        refresh,
    })
}
