//! RFC 6749 §4.3: a user of one of the client's tenants, by username and password.
//! Unknown user and wrong password give the same answer after the same argon2 work. A password
//! imported with another provider's hash is checked on the same workers, and the first match
//! replaces that hash by argon2id (see `crate::rehash`).

use super::{Authorization, GrantType, Target, refresh_plan};
use crate::context::Context;
use crate::error::OAuthError;
use crate::secret::Verdict;
use crate::store::{Client, Store, TokenOwner, User};

pub(super) async fn handle<S: Store>(
    ctx: &Context<S>,
    client: &Client,
    username: &str,
    password: &str,
    target: &Target<'_>,
    source: Option<std::net::IpAddr>,
    now: i64,
) -> Result<Authorization, OAuthError> {
    let (scopes, audiences) = target.resolve(client, &ctx.policy.issuer)?;
    let key = crate::throttle::user_key(&client.id, username);
    ctx.throttle.check(&ctx.store, &key, now).await?;
    let flight = crate::single_flight::flight_key(&[&key, password]);
    let attempt = throttled_check(ctx, client, &key, username, password, source, now);
    let Some(user) = ctx.verifier.password_checks.run(flight, attempt).await? else {
        return Err(OAuthError::invalid_grant("invalid username or password")
            .with_detail(format!("password grant failed for client {:?}", client.id)));
    };
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
        cnf: None,
    })
}

/// One check of a password, inside the throttle: the slots are taken before the slow hash runs
/// (a burst of guesses cannot all be checked), given back on success or when the check could
/// not be made, and kept as failures on a miss.
async fn throttled_check<S: Store>(
    ctx: &Context<S>,
    client: &Client,
    key: &str,
    username: &str,
    password: &str,
    source: Option<std::net::IpAddr>,
    now: i64,
) -> Result<Option<User>, OAuthError> {
    let slots = ctx.throttle.reserve(&ctx.store, key, source, now).await?;
    match find_user(ctx, client, username, password, now).await {
        Ok(Some(user)) => {
            ctx.throttle.release(&ctx.store, slots).await;
            Ok(Some(user))
        }
        Ok(None) => {
            ctx.throttle.failed(slots);
            Ok(None)
        }
        Err(error) => {
            ctx.throttle.release(&ctx.store, slots).await;
            Err(error)
        }
    }
}

/// The user of one of the client's tenants whose password this is; `None` for an unknown user
/// or a wrong password, after the same argon2 work. `temporarily_unavailable` when the check
/// could not be made (it is then no failed login).
async fn find_user<S: Store>(
    ctx: &Context<S>,
    client: &Client,
    username: &str,
    password: &str,
    now: i64,
) -> Result<Option<User>, OAuthError> {
    let mut candidates =
        if client.tenants.is_empty() { Vec::new() } else { ctx.store.find_users(username, &client.tenants).await? };
    // A disabled user is refused as an unknown one: after the same dummy check.
    candidates.retain(|user| user.disabled_at.is_none());
    let unavailable = || OAuthError::temporarily_unavailable("password verification is at capacity");
    if candidates.is_empty() {
        return match ctx.verifier.verify_password(password, None).await.verdict {
            Verdict::Unavailable => Err(unavailable()),
            _ => Ok(None),
        };
    }
    // The same username may exist in several of the client's tenants; the password decides.
    for candidate in candidates {
        let checked = ctx.verifier.verify_password(password, Some(&candidate.password_hash)).await;
        match checked.verdict {
            Verdict::Match => {
                let owner = TokenOwner::User(&candidate.id);
                let (hash, seen) = (&candidate.password_hash, candidate.last_seen_at);
                crate::rehash::after_success(ctx, owner, hash, checked.upgrade, seen, now).await;
                return Ok(Some(candidate));
            }
            Verdict::Unavailable => return Err(unavailable()),
            Verdict::NoMatch => {}
        }
    }
    Ok(None)
}
