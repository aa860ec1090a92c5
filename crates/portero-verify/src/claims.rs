//! The verified claims a handler reads, and the scope and tenant checks it makes on them.

use portero_wire::AccessTokenClaims;

use crate::error::VerifyError;

/// The claims of a token that passed verification (signature or introspection, `typ`, `iss`,
/// `aud`, `exp`, `nbf`, `sub`). Read the members through [`std::ops::Deref`] to
/// [`AccessTokenClaims`] (`claims.sub`, `claims.has_scope(..)`); behind [`BearerLayer`] a
/// handler takes `Claims` as an argument.
///
/// [`BearerLayer`]: crate::BearerLayer
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims(AccessTokenClaims);

impl Claims {
    pub(crate) fn new(claims: AccessTokenClaims) -> Self {
        Self(claims)
    }

    /// The wire claims.
    pub fn into_inner(self) -> AccessTokenClaims {
        self.0
    }

    /// [`VerifyError::InsufficientScope`] (403) unless the token carries every scope in `required`.
    pub fn require_scopes(&self, required: &[&str]) -> Result<(), VerifyError> {
        match required.iter().find(|s| !self.0.has_scope(s)) {
            None => Ok(()),
            Some(_) => Err(VerifyError::InsufficientScope(required.join(" "))),
        }
    }

    /// [`VerifyError::WrongTenant`] (403) unless `tenant` is one of the token's tenants.
    pub fn require_tenant(&self, tenant: &str) -> Result<(), VerifyError> {
        if self.0.has_tenant(tenant) { Ok(()) } else { Err(VerifyError::WrongTenant(tenant.to_owned())) }
    }
}

impl std::ops::Deref for Claims {
    type Target = AccessTokenClaims;

    fn deref(&self) -> &AccessTokenClaims {
        &self.0
    }
}

impl From<Claims> for AccessTokenClaims {
    fn from(claims: Claims) -> Self {
        claims.0
    }
}
