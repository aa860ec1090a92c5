//! The claims a resource server reads from a Portero access token (RFC 9068 §2.2 plus
//! `scope`, `tenants`, `client_id`), and the checks it makes on them.

use serde::Deserialize;
use serde_json::Value;

use crate::error::VerifyError;

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub aud: Value,
    pub exp: i64,
    pub iat: i64,
    #[serde(default)]
    pub nbf: Option<i64>,
    #[serde(default)]
    pub jti: Option<String>,
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub scope: Option<String>,
    #[serde(default)]
    pub tenants: Vec<String>,
}

impl Claims {
    /// `aud` is one string or an array (RFC 7519 §4.1.3).
    pub fn has_audience(&self, audience: &str) -> bool {
        match &self.aud {
            Value::String(aud) => aud == audience,
            Value::Array(list) => list.iter().any(|a| a.as_str() == Some(audience)),
            _ => false,
        }
    }

    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope.as_deref().unwrap_or("").split(' ').filter(|s| !s.is_empty())
    }

    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes().any(|s| s == scope)
    }

    /// `insufficient_scope` (403) unless the token carries every scope in `required`.
    pub fn require_scopes(&self, required: &[&str]) -> Result<(), VerifyError> {
        match required.iter().find(|s| !self.has_scope(s)) {
            None => Ok(()),
            Some(_) => Err(VerifyError::InsufficientScope(required.join(" "))),
        }
    }

    /// 403 unless `tenant` (the `x-tenant-id` header) is one of the token's tenants.
    pub fn require_tenant(&self, tenant: &str) -> Result<(), VerifyError> {
        if self.tenants.iter().any(|t| t == tenant) { Ok(()) } else { Err(VerifyError::WrongTenant(tenant.to_owned())) }
    }
}
