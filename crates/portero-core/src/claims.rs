//! The access token's claims. The shape is [`portero_wire::AccessTokenClaims`] (shared with
//! the verifier and the client); this module fills it from a grant's [`Authorization`].

use serde::Serialize;

use crate::grant::Authorization;

pub use portero_wire::{Audience, TOKEN_VERSION};

/// The claims Portero signs: the wire shape, always with `jti`, `client_id`, `token_use`,
/// `version` and `auth_time`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct AccessTokenClaims(pub portero_wire::AccessTokenClaims);

impl std::ops::Deref for AccessTokenClaims {
    type Target = portero_wire::AccessTokenClaims;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl AccessTokenClaims {
    pub fn new(issuer: &str, client_id: &str, authz: &Authorization, jti: String, now: i64, ttl: i64) -> Self {
        let aud = Audience::from_list(authz.audiences.clone());
        Self(
            portero_wire::AccessTokenClaims::new(issuer, authz.subject.clone(), aud, now, now + ttl)
                .with_jti(jti)
                .with_client_id(client_id)
                .with_scopes(&authz.scopes)
                .with_tenants(authz.tenants.clone())
                .with_portero_members(authz.auth_time)
                .with_confirmation(authz.cnf.clone()),
        )
    }
}
