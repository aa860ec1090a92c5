//! Reading the access token (Bearer or DPoP) and the tenant from request headers, with no web
//! framework.

use http::header;

use crate::claims::Claims;
use crate::error::VerifyError;
use crate::mtls::{PeerCertificate, check_certificate_binding};
use crate::verifier::Verifier;

/// The header that names the tenant a call acts on (the Zertiban document's `x-tenant-id`).
pub const TENANT_HEADER: &str = "x-tenant-id";

/// The tenant named by `x-tenant-id`, already checked against the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant(pub String);

/// The token of `Authorization: Bearer <token>` (RFC 6750 §2.1); one header only.
pub fn bearer_token(headers: &http::HeaderMap) -> Result<&str, VerifyError> {
    match authorization(headers)? {
        (scheme, token) if scheme.eq_ignore_ascii_case("bearer") => Ok(token),
        _ => Err(VerifyError::Missing),
    }
}

/// The scheme and token of the one `Authorization` header; the token must be a b64token.
fn authorization(headers: &http::HeaderMap) -> Result<(&str, &str), VerifyError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else { return Err(VerifyError::Missing) };
    if values.next().is_some() {
        return Err(VerifyError::InvalidRequest("more than one Authorization header".into()));
    }
    let value = value.to_str().map_err(|_| VerifyError::InvalidRequest("malformed Authorization header".into()))?;
    let (scheme, token) = value.split_once(' ').ok_or(VerifyError::Missing)?;
    let token = token.trim();
    let b64token = |c: char| c.is_ascii_alphanumeric() || "-._~+/=".contains(c);
    if token.is_empty() || !token.chars().all(b64token) {
        return Err(VerifyError::InvalidRequest("malformed access token".into()));
    }
    Ok((scheme, token))
}

/// Verifies the request's bearer token, and `x-tenant-id` against the token's tenants when
/// the header is present; returns what handlers may use. A DPoP-bound token is refused here:
/// use [`authenticate_request`], which also reads DPoP requests. So is a token bound to a TLS
/// client certificate (RFC 8705 §3): no certificate is known here (see
/// [`authenticate_request_with_certificate`]).
pub async fn authenticate(
    verifier: &Verifier,
    headers: &http::HeaderMap,
) -> Result<(Claims, Option<Tenant>), VerifyError> {
    let claims = verifier.verify(bearer_token(headers)?).await?;
    check_certificate_binding(&claims, None)?;
    let tenant = tenant(&claims, headers)?;
    Ok((claims, tenant))
}

/// `x-tenant-id`, checked against the token's tenants, when the request names one.
fn tenant(claims: &Claims, headers: &http::HeaderMap) -> Result<Option<Tenant>, VerifyError> {
    let Some(value) = headers.get(TENANT_HEADER) else { return Ok(None) };
    let tenant = value.to_str().map_err(|_| VerifyError::InvalidRequest("malformed x-tenant-id".into()))?;
    claims.require_tenant(tenant)?;
    Ok(Some(Tenant(tenant.to_owned())))
}

/// How a request presented its access token (RFC 6750 §2.1 or RFC 9449 §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presented<'a> {
    /// `Authorization: Bearer <token>`.
    Bearer(&'a str),
    /// `Authorization: DPoP <token>` and the request's one `DPoP` proof header.
    Dpop {
        /// The access token.
        token: &'a str,
        /// The proof (the `DPoP` header).
        proof: &'a str,
    },
}

/// The access token of the request, Bearer or DPoP; one `Authorization` header (and, for DPoP,
/// one `DPoP` header) only.
pub fn presented_token(headers: &http::HeaderMap) -> Result<Presented<'_>, VerifyError> {
    let (scheme, token) = authorization(headers)?;
    if scheme.eq_ignore_ascii_case("bearer") {
        return Ok(Presented::Bearer(token));
    }
    if !scheme.eq_ignore_ascii_case("dpop") {
        return Err(VerifyError::Missing);
    }
    let mut proofs = headers.get_all("dpop").iter();
    let (Some(proof), None) = (proofs.next(), proofs.next()) else {
        return Err(VerifyError::InvalidDpopProof("a DPoP request carries exactly one DPoP header".into()));
    };
    let proof = proof.to_str().map_err(|_| VerifyError::InvalidDpopProof("the DPoP header is not text".into()))?;
    Ok(Presented::Dpop { token, proof })
}

/// Verifies the request's access token however it came: a Bearer token (refused if it is bound
/// to a DPoP key), or a DPoP-bound token with a proof made for this `method` and `uri`; then
/// `x-tenant-id` as [`authenticate`] does. A token bound to a TLS client certificate is refused
/// here (no certificate is known): use [`authenticate_request_with_certificate`].
pub async fn authenticate_request(
    verifier: &Verifier,
    method: &http::Method,
    uri: &http::Uri,
    headers: &http::HeaderMap,
) -> Result<(Claims, Option<Tenant>), VerifyError> {
    authenticate_request_with_certificate(verifier, method, uri, headers, None).await
}

/// [`authenticate_request`] for a request that came over a TLS connection whose client
/// certificate is `peer` (`None`: none): a token bound to a certificate (`cnf["x5t#S256"]`,
/// RFC 8705 §3) is accepted only with that certificate.
pub async fn authenticate_request_with_certificate(
    verifier: &Verifier,
    method: &http::Method,
    uri: &http::Uri,
    headers: &http::HeaderMap,
    peer: Option<&PeerCertificate>,
) -> Result<(Claims, Option<Tenant>), VerifyError> {
    let claims = match presented_token(headers)? {
        Presented::Bearer(token) => verifier.verify(token).await?,
        Presented::Dpop { token, proof } => {
            let url = request_url(verifier.public_url(), uri, headers)?;
            verifier.verify_dpop(token, proof, method.as_str(), &url).await?
        }
    };
    check_certificate_binding(&claims, peer)?;
    let tenant = tenant(&claims, headers)?;
    Ok((claims, tenant))
}

/// The URL the client addressed: the configured public URL with the request's path; without
/// one, what the request itself says (an absolute URI, or the `Host` header over `https`, or
/// `http` for a loopback host). The request's own words are the client's choice, so a proof
/// made for another API behind the same token could pass: configure the public URL.
fn request_url(public_url: Option<&str>, uri: &http::Uri, headers: &http::HeaderMap) -> Result<String, VerifyError> {
    if let Some(base) = public_url {
        return Ok(format!("{base}{}", uri.path()));
    }
    if let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) {
        return Ok(format!("{scheme}://{authority}{}", uri.path()));
    }
    let host =
        headers.get(http::header::HOST).and_then(|h| h.to_str().ok()).filter(|h| !h.is_empty()).ok_or_else(|| {
            VerifyError::InvalidRequest("no Host header to check the DPoP proof's htu against".into())
        })?;
    let name = host.rsplit_once(':').map_or(host, |(name, port)| if port.parse::<u16>().is_ok() { name } else { host });
    let loopback =
        matches!(name, "localhost" | "[::1]") || name.parse::<std::net::Ipv4Addr>().is_ok_and(|ip| ip.is_loopback());
    let scheme = if loopback { "http" } else { "https" };
    Ok(format!("{scheme}://{host}{}", uri.path()))
}
