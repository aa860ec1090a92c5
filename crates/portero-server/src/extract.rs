//! HTTP request → `TokenInput`: the body by its content type, `grant_type` from the query
//! string when the body lacks it, the `Authorization` header, and the dialect.

use std::net::{IpAddr, SocketAddr};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Request, header};
use portero_core::dialect::Dialect;
use portero_core::error::{ErrorCode, OAuthError};
use portero_core::params::{FORBIDDEN_IN_QUERY, FieldLimits, Params};
use portero_core::token_endpoint::{ClientCertificate, ProofInput, TokenInput};

use crate::config::ServerConfig;

/// A rejected request, with the dialect it was spoken in if that was learnt before the failure.
pub struct Rejected {
    pub error: OAuthError,
    pub dialect: Dialect,
    pub status_override: Option<u16>,
}

impl From<OAuthError> for Rejected {
    fn from(error: OAuthError) -> Self {
        Self { error, dialect: Dialect::Standard, status_override: None }
    }
}

enum BodyKind {
    Form,
    Json,
    Empty,
}

fn body_kind(headers: &HeaderMap, body_is_empty: bool) -> Result<BodyKind, OAuthError> {
    let Some(content_type) = headers.get(header::CONTENT_TYPE) else {
        return if body_is_empty {
            Ok(BodyKind::Empty)
        } else {
            Err(OAuthError::invalid_request("Content-Type is required"))
        };
    };
    let mime = content_type.to_str().unwrap_or("").split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match mime.as_str() {
        "application/x-www-form-urlencoded" => Ok(BodyKind::Form),
        "application/json" => Ok(BodyKind::Json),
        _ if mime.ends_with("+json") => Ok(BodyKind::Json),
        _ => Err(OAuthError::invalid_request(
            "Content-Type must be application/x-www-form-urlencoded or application/json",
        )),
    }
}

/// The caller's address: behind a proxy that is configured as trusted (`client_address_header`),
/// the last address that proxy appended to the header; otherwise the peer of the connection.
fn source_address(parts: &axum::http::request::Parts, address_header: Option<&str>) -> Option<IpAddr> {
    if let Some(name) = address_header {
        let last = parts.headers.get_all(name).iter().next_back()?.to_str().ok()?.rsplit(',').next()?;
        return last.trim().parse().ok();
    }
    parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|info| info.0.ip())
}

/// The caller's address, as `source_address` works it out (for handlers outside the token path).
pub fn caller_address(parts: &axum::http::request::Parts, address_header: Option<&str>) -> Option<IpAddr> {
    source_address(parts, address_header)
}

/// A body that could not be read: too large (413), too slow (408) or cut off (400).
fn body_rejected(error: axum::Error) -> Rejected {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&error);
    let mut status = 400;
    while let Some(cause) = source {
        if cause.is::<http_body_util::LengthLimitError>() {
            status = 413;
        } else if cause.is::<tower_http::timeout::TimeoutError>() {
            status = 408;
        }
        source = cause.source();
    }
    let description = match status {
        413 => "the request body is too large",
        408 => "the request body was not received in time",
        _ => "the request body could not be read",
    };
    Rejected {
        error: OAuthError::invalid_request(description),
        dialect: Dialect::Standard,
        status_override: Some(status),
    }
}

/// Reads one token request. `api_version_header` names the header whose value is passed on.
pub async fn token_input(
    request: Request<Body>,
    limits: &FieldLimits,
    max_body_bytes: usize,
    api_version_header: Option<&str>,
    config: &ServerConfig,
) -> Result<TokenInput, Rejected> {
    let (parts, body) = request.into_parts();
    let source = source_address(&parts, config.client_address_header.as_deref());
    let client_cert = client_certificate(&parts, config)?;
    let query = match parts.uri.query() {
        Some(query) => Params::from_query(query, limits)?,
        None => Params::default(),
    };
    if let Some(name) = FORBIDDEN_IN_QUERY.iter().find(|name| query.contains(name)) {
        return Err(OAuthError::invalid_request(format!("{name} must not be sent in the query string")).into());
    }
    let bytes = axum::body::to_bytes(body, max_body_bytes).await.map_err(body_rejected)?;
    let (mut params, is_json) = match body_kind(&parts.headers, bytes.is_empty())? {
        BodyKind::Form => (Params::from_form(&bytes, limits)?, false),
        BodyKind::Json => (Params::from_json(&bytes, limits)?, true),
        BodyKind::Empty => (Params::default(), false),
    };
    // The Pay-me dialect is a JSON body with `action`; elsewhere `action` means nothing.
    let dialect = match params.take("action") {
        Some(action) if is_json => Dialect::envelope(&action)?,
        _ => Dialect::Standard,
    };
    let reject = |error: OAuthError| Rejected { error, dialect: dialect.clone(), status_override: None };
    if let Some(grant_type) = query.get("grant_type") {
        params.insert_if_absent("grant_type", grant_type);
    }
    let header_text = |name: &str| -> Result<Option<String>, Rejected> {
        match parts.headers.get_all(name).iter().collect::<Vec<_>>().as_slice() {
            [] => Ok(None),
            [value] => value
                .to_str()
                .map(|v| Some(v.to_owned()))
                .map_err(|_| reject(OAuthError::invalid_request(format!("the {name} header is not valid text")))),
            _ => Err(reject(OAuthError::invalid_request(format!("the {name} header is repeated")))),
        }
    };
    let authorization = header_text(header::AUTHORIZATION.as_str())?;
    let api_version = match api_version_header {
        Some(name) => header_text(name)?,
        None => None,
    };
    // RFC 9449 §4.3: exactly one proof; two `DPoP` headers are a bad proof, not a bad request.
    let proof = header_text("dpop").map_err(|mut rejected| {
        rejected.error = OAuthError::new(ErrorCode::InvalidDpopProof, "send one DPoP proof, as text");
        rejected
    })?;
    let dpop = ProofInput { proof, path: parts.uri.path().to_owned() };
    Ok(TokenInput { params, authorization, dialect, api_version, source, dpop, client_cert })
}

/// The longest `Client-Cert` header value read: the base64 of the largest certificate accepted.
const MAX_CERT_HEADER_CHARS: usize = portero_core::mtls::MAX_CERT_BYTES / 3 * 4 + 8;

/// The request's client certificate (RFC 8705). With `client_cert_header` configured, only the
/// header a trusted TLS-terminating proxy sets counts (RFC 9440: `Client-Cert: :BASE64-DER:`,
/// verified by the proxy, so taken as chained); otherwise the leaf the client presented on this
/// connection's TLS handshake, chained or not as `client_ca` says.
pub fn client_certificate(
    parts: &axum::http::request::Parts,
    config: &ServerConfig,
) -> Result<Option<ClientCertificate>, OAuthError> {
    use base64::Engine;
    let (der, chained) = match &config.client_cert_header {
        Some(name) => {
            let bad = || OAuthError::invalid_request(format!("the {name} header is not one RFC 9440 certificate"));
            let value = match parts.headers.get_all(name).iter().collect::<Vec<_>>().as_slice() {
                [] => return Ok(None),
                [value] => *value,
                _ => return Err(bad()),
            };
            let text = value.to_str().map_err(|_| bad())?.trim();
            if text.len() > MAX_CERT_HEADER_CHARS {
                return Err(bad());
            }
            let encoded = text.strip_prefix(':').and_then(|t| t.strip_suffix(':')).ok_or_else(bad)?;
            (base64::engine::general_purpose::STANDARD.decode(encoded).map_err(|_| bad())?, true)
        }
        None => {
            let Some(info) = parts.extensions.get::<std::sync::Arc<crate::tls::TlsInfo>>() else {
                return Ok(None);
            };
            let Some(leaf) = info.peer_certificates.first() else {
                return Ok(None);
            };
            let chained = config.client_ca.as_ref().is_some_and(|ca| ca.chained(&info.peer_certificates));
            (leaf.clone(), chained)
        }
    };
    ClientCertificate::from_der(&der, chained).map(Some).map_err(|e| OAuthError::invalid_request(e.to_string()))
}

/// Whether the request's `Authorization: Bearer` token is `expected`: compared as SHA-256
/// digests, in constant time.
pub fn bearer_is(headers: &HeaderMap, expected: &[u8; 32]) -> bool {
    use subtle::ConstantTimeEq;
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|token| crate::state::digest(token.trim()));
    presented.is_some_and(|digest| bool::from(digest.ct_eq(expected)))
}

/// Whether an error code is the client's fault (logged at info) or ours (logged at error).
pub fn is_server_side(code: ErrorCode) -> bool {
    matches!(code, ErrorCode::ServerError | ErrorCode::TemporarilyUnavailable)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(peer: &str, forwarded: Option<&str>) -> axum::http::request::Parts {
        let mut request = Request::builder().uri("/oauth2/token");
        if let Some(value) = forwarded {
            request = request.header("X-Forwarded-For", value);
        }
        let (mut parts, ()) = request.body(()).unwrap().into_parts();
        parts.extensions.insert(ConnectInfo::<SocketAddr>(peer.parse().unwrap()));
        parts
    }

    #[test]
    fn the_peer_is_the_caller() {
        assert_eq!(source_address(&parts("192.0.2.1:5000", None), None), Some("192.0.2.1".parse().unwrap()));
        assert_eq!(source_address(&parts("[2001:db8::1]:5000", None), None), Some("2001:db8::1".parse().unwrap()));
        assert_eq!(source_address(&parts("127.0.0.1:5000", None), None), Some("127.0.0.1".parse().unwrap()));
        // Forwarded headers mean nothing unless the operator said a proxy sets one.
        assert_eq!(
            source_address(&parts("192.0.2.1:5000", Some("203.0.113.9")), None),
            Some("192.0.2.1".parse().unwrap())
        );
    }

    #[test]
    fn behind_a_trusted_proxy_the_last_forwarded_address_counts() {
        let header = Some("X-Forwarded-For");
        let forged_then_real = parts("127.0.0.1:5000", Some("10.0.0.1, 203.0.113.9"));
        assert_eq!(source_address(&forged_then_real, header), Some("203.0.113.9".parse().unwrap()));
        assert_eq!(source_address(&parts("127.0.0.1:5000", None), header), None);
        assert_eq!(source_address(&parts("127.0.0.1:5000", Some("not an address")), header), None);
    }
}
