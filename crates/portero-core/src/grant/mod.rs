//! The three grants. Each handler turns an authenticated client and its grant into an
//! [`Authorization`]: who the token is for, with which scopes, audiences and tenants.

mod client_credentials;
mod password;
mod refresh_token;

pub use crate::registration::GrantType;

use crate::context::Context;
use crate::error::{ErrorCode, OAuthError};
use crate::request::{Grant, TokenRequest};
use crate::store::{Client, Store};

/// What happens to refresh tokens when this grant's token is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshPlan {
    None,
    /// Start a new family (password grant under a policy that issues refresh tokens).
    NewFamily,
    /// Replace the presented token within its family (refresh grant). The new refresh token
    /// carries the whole original grant (RFC 6749 §6), even when the access token was narrowed.
    Rotate {
        old_hash: String,
        family_id: String,
        expires_at: i64,
        grant: GrantedScope,
        /// The new token's value when the client has a retry window (`crate::successor`):
        /// derived from the presented one instead of random.
        successor: Option<String>,
        /// The DPoP key the family is bound to, which the new token keeps.
        jkt: Option<String>,
    },
    /// Hand out again the child a retried parent was already rotated into (its answer was
    /// lost): nothing is stored, the client gets the same refresh token and a new access token.
    Redeliver {
        refresh_token: String,
    },
}

/// The scopes and audiences a refresh-token family was granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantedScope {
    pub scopes: Vec<String>,
    pub audiences: Vec<String>,
}

/// The outcome of a grant: everything minting needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    pub grant_type: GrantType,
    pub subject: String,
    pub user_id: Option<String>,
    pub tenants: Vec<String>,
    pub scopes: Vec<String>,
    pub audiences: Vec<String>,
    pub auth_time: i64,
    pub refresh: RefreshPlan,
    /// The key the tokens are bound to (`cnf`): the request's DPoP proof's.
    pub cnf: Option<crate::dpop::Confirmation>,
}

/// Checks the client may use the grant (`unauthorized_client`), then runs its handler.
pub async fn handle<S: Store>(
    ctx: &Context<S>,
    client: &Client,
    request: TokenRequest,
    source: Option<std::net::IpAddr>,
    now: i64,
) -> Result<Authorization, OAuthError> {
    let grant_type = request.grant.grant_type();
    if !client.grants.contains(&grant_type) {
        return Err(OAuthError::new(ErrorCode::UnauthorizedClient, "the client may not use this grant type")
            .with_detail(format!("client {:?} lacks {}", client.id, grant_type.as_str())));
    }
    let target = request_target(&request);
    let cnf = request.confirmation.as_ref();
    let mut authz = match request.grant {
        Grant::ClientCredentials => client_credentials::handle(ctx, client, &target, now),
        Grant::Password { ref username, ref password } => {
            password::handle(ctx, client, username, &password.0, &target, source, now).await
        }
        Grant::RefreshToken { ref refresh_token } => {
            refresh_token::handle(ctx, client, &refresh_token.0, &target, cnf, source, now).await
        }
    }?;
    authz.cnf = request.confirmation.clone();
    Ok(authz)
}

/// The scope and audience a request asks for.
pub(crate) struct Target<'a> {
    pub scope: Option<&'a str>,
    pub audience: Option<&'a str>,
    pub resources: Vec<&'a str>,
}

fn request_target(request: &TokenRequest) -> Target<'_> {
    Target {
        scope: request.scope.as_deref(),
        audience: request.audience.as_deref(),
        resources: request.resources.iter().map(String::as_str).collect(),
    }
}

impl Target<'_> {
    /// Scopes and audiences for a new grant, checked against the client's allow-lists.
    pub(crate) fn resolve(&self, client: &Client, issuer: &str) -> Result<(Vec<String>, Vec<String>), OAuthError> {
        let scopes = crate::scope::resolve(self.scope, &client.scopes, client.ignore_unknown_scopes)?;
        let audiences = crate::audience::resolve(self.audience, &self.resources, &client.audiences, issuer)?;
        Ok((scopes, audiences))
    }
}

/// Whether a new grant starts a refresh-token family, by the client's policy (RFC 6749 §1.5:
/// only clients allowed the refresh grant get one).
pub(crate) fn refresh_plan(client: &Client, scopes: &[String]) -> RefreshPlan {
    use crate::registration::RefreshPolicy;
    if !client.grants.contains(&GrantType::RefreshToken) {
        return RefreshPlan::None;
    }
    match client.refresh_policy {
        RefreshPolicy::Always => RefreshPlan::NewFamily,
        RefreshPolicy::OfflineAccess if scopes.iter().any(|s| s == crate::scope::OFFLINE_ACCESS) => {
            RefreshPlan::NewFamily
        }
        _ => RefreshPlan::None,
    }
}
