//! The access token's claims: RFC 9068 §2.2, plus the Cognito-style `token_use`, `version` and
//! `auth_time` of the Nequi example token, and the `tenants` the token may act for.

use serde::{Deserialize, Serialize};

use crate::grant::Authorization;

/// `version` in the Nequi example token (Cognito's access-token format version).
pub const TOKEN_VERSION: u32 = 2;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessTokenClaims {
    pub iss: String,
    /// The user for the password grant, the client otherwise.
    pub sub: String,
    /// One audience as a string, several as an array (RFC 7519 §4.1.3).
    pub aud: Audience,
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
    pub client_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(default)]
    pub tenants: Vec<String>,
    pub token_use: String,
    pub version: u32,
    pub auth_time: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    pub fn from_list(mut list: Vec<String>) -> Self {
        if list.len() == 1 { Self::One(list.remove(0)) } else { Self::Many(list) }
    }
}

impl AccessTokenClaims {
    pub fn new(issuer: &str, client_id: &str, authz: &Authorization, jti: String, now: i64, ttl: i64) -> Self {
        Self {
            iss: issuer.to_owned(),
            sub: authz.subject.clone(),
            aud: Audience::from_list(authz.audiences.clone()),
            exp: now + ttl,
            iat: now,
            jti,
            client_id: client_id.to_owned(),
            scope: (!authz.scopes.is_empty()).then(|| authz.scopes.join(" ")),
            tenants: authz.tenants.clone(),
            token_use: "access".to_owned(),
            version: TOKEN_VERSION,
            auth_time: authz.auth_time,
        }
    }
}
