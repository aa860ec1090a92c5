//! RFC 6749 §4.4: the client acts on its own behalf, for its own tenants. No refresh token
//! (§4.4.3: it SHOULD NOT be included).

use super::{Authorization, GrantType, RefreshPlan, Target};
use crate::context::Context;
use crate::error::OAuthError;
use crate::store::{Client, Store};

pub(super) fn handle<S: Store>(
    ctx: &Context<S>,
    client: &Client,
    target: &Target<'_>,
    now: i64,
) -> Result<Authorization, OAuthError> {
    let (scopes, audiences) = target.resolve(client, &ctx.policy.issuer)?;
    Ok(Authorization {
        grant_type: GrantType::ClientCredentials,
        subject: client.id.clone(),
        user_id: None,
        tenants: client.tenants.clone(),
        scopes,
        audiences,
        auth_time: now,
        refresh: RefreshPlan::None,
        cnf: None,
    })
}
