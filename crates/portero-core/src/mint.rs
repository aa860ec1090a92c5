//! Minting: the signed access token, and a fresh refresh token with the record that stores its hash.

use crate::claims::AccessTokenClaims;
use crate::error::OAuthError;
use crate::grant::{Authorization, GrantedScope, RefreshPlan};
use crate::keys::KeySet;
use crate::params::MAX_TOKEN_CHARS;
use crate::secret::{random_token, sha256_b64};
use crate::store::{Client, RefreshTokenRecord};

/// What one successful token request produced.
pub struct Minted {
    pub access_token: String,
    pub expires_in: i64,
    /// The refresh token value (sent to the client, never stored).
    pub refresh_token: Option<String>,
    /// The record to store for a new refresh token (its hash, never the value).
    pub refresh_record: Option<RefreshTokenRecord>,
}

/// Policy knobs minting reads.
pub struct Lifetimes {
    pub access_token: i64,
    pub refresh_token: i64,
}

pub fn mint(
    keys: &KeySet,
    issuer: &str,
    client: &Client,
    authz: &Authorization,
    lifetimes: &Lifetimes,
    now: i64,
) -> Result<Minted, OAuthError> {
    let ttl = client.token_ttl.unwrap_or(lifetimes.access_token);
    let claims = AccessTokenClaims::new(issuer, &client.id, authz, uuid::Uuid::new_v4().to_string(), now, ttl);
    let bound_to = authz.cnf.as_ref().and_then(|c| c.jkt.clone());
    let key = keys.active(now).map_err(|e| OAuthError::server_error(e.to_string()))?;
    let access_token = key.sign_jwt(&claims).map_err(|e| OAuthError::server_error(e.to_string()))?;
    if access_token.len() > MAX_TOKEN_CHARS {
        // Introspection and revocation would refuse it: never hand out a token Portero rejects.
        return Err(OAuthError::invalid_scope("the token would be too long; ask for fewer scopes or audiences")
            .with_detail(format!("{} characters, limit {MAX_TOKEN_CHARS}", access_token.len())));
    }
    let (refresh_token, refresh_record) = match &authz.refresh {
        RefreshPlan::None => (None, None),
        RefreshPlan::Redeliver { refresh_token } => (Some(refresh_token.clone()), None),
        RefreshPlan::NewFamily => {
            let family =
                Family { id: uuid::Uuid::now_v7().to_string(), expires_at: now + lifetimes.refresh_token, bound_to };
            let grant = GrantedScope { scopes: authz.scopes.clone(), audiences: authz.audiences.clone() };
            let (value, record) = new_refresh_token(random_token(32), client, authz, family, grant, now);
            (Some(value), Some(record))
        }
        RefreshPlan::Rotate { family_id, expires_at, grant, successor, jkt, .. } => {
            let family = Family { id: family_id.clone(), expires_at: *expires_at, bound_to: jkt.clone() };
            let value = successor.clone().unwrap_or_else(|| random_token(32));
            let (value, record) = new_refresh_token(value, client, authz, family, grant.clone(), now);
            (Some(value), Some(record))
        }
    };
    Ok(Minted { access_token, expires_in: ttl, refresh_token, refresh_record })
}

/// The refresh-token family a new token joins, when the family ends, and the DPoP key it is
/// bound to.
struct Family {
    id: String,
    expires_at: i64,
    bound_to: Option<String>,
}

fn new_refresh_token(
    value: String,
    client: &Client,
    authz: &Authorization,
    family: Family,
    grant: GrantedScope,
    now: i64,
) -> (String, RefreshTokenRecord) {
    let record = RefreshTokenRecord {
        hash: sha256_b64(value.as_bytes()),
        family_id: family.id,
        client_id: client.id.clone(),
        subject: authz.subject.clone(),
        user_id: authz.user_id.clone(),
        tenants: authz.tenants.clone(),
        scopes: grant.scopes,
        audiences: grant.audiences,
        auth_time: authz.auth_time,
        created_at: now,
        expires_at: family.expires_at,
        used_at: None,
        revoked_at: None,
        jkt: family.bound_to,
    };
    (value, record)
}
