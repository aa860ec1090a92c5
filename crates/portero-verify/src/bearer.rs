//! Reading the bearer token and the tenant from request headers, with no web framework.

use http::header;

use crate::claims::Claims;
use crate::error::VerifyError;
use crate::verifier::Verifier;

/// The header that names the tenant a call acts on (the Zertiban document's `x-tenant-id`).
pub const TENANT_HEADER: &str = "x-tenant-id";

/// The tenant named by `x-tenant-id`, already checked against the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant(pub String);

/// The token of `Authorization: Bearer <token>` (RFC 6750 §2.1); one header only.
pub fn bearer_token(headers: &http::HeaderMap) -> Result<&str, VerifyError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else { return Err(VerifyError::Missing) };
    if values.next().is_some() {
        return Err(VerifyError::InvalidRequest("more than one Authorization header".into()));
    }
    let value = value.to_str().map_err(|_| VerifyError::InvalidRequest("malformed Authorization header".into()))?;
    let (scheme, token) = value.split_once(' ').ok_or(VerifyError::Missing)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(VerifyError::Missing);
    }
    let token = token.trim();
    let b64token = |c: char| c.is_ascii_alphanumeric() || "-._~+/=".contains(c);
    if token.is_empty() || !token.chars().all(b64token) {
        return Err(VerifyError::InvalidRequest("malformed bearer token".into()));
    }
    Ok(token)
}

/// Verifies the request's bearer token, and `x-tenant-id` against the token's tenants when
/// the header is present; returns what handlers may use.
pub async fn authenticate(
    verifier: &Verifier,
    headers: &http::HeaderMap,
) -> Result<(Claims, Option<Tenant>), VerifyError> {
    let claims = verifier.verify(bearer_token(headers)?).await?;
    let tenant = match headers.get(TENANT_HEADER) {
        None => None,
        Some(value) => {
            let tenant = value.to_str().map_err(|_| VerifyError::InvalidRequest("malformed x-tenant-id".into()))?;
            claims.require_tenant(tenant)?;
            Some(Tenant(tenant.to_owned()))
        }
    };
    Ok((claims, tenant))
}
