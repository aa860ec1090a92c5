//! RFC 6750 §3 errors: what a resource server answers when a token does not do.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// No bearer token at all (RFC 6750 §3.1: a bare challenge, no error code).
    #[error("no bearer token")]
    Missing,
    /// The request is malformed (two tokens, a bad header).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// Expired, forged, for another audience or issuer, unknown key, wrong type...
    #[error("invalid token: {0}")]
    InvalidToken(String),
    /// Valid token, but without a scope this call needs.
    #[error("insufficient scope: {0}")]
    InsufficientScope(String),
    /// Valid token, but not for the tenant named by `x-tenant-id`.
    #[error("wrong tenant: {0}")]
    WrongTenant(String),
    /// The JWKS or the introspection endpoint could not be reached.
    #[error("token service unavailable: {0}")]
    Unavailable(String),
}

impl VerifyError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Missing | Self::InvalidToken(_) => StatusCode::UNAUTHORIZED,
            Self::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            Self::InsufficientScope(_) | Self::WrongTenant(_) => StatusCode::FORBIDDEN,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The `WWW-Authenticate` challenge (RFC 6750 §3).
    pub fn challenge(&self) -> String {
        let (code, description, scope) = match self {
            Self::Missing | Self::Unavailable(_) => return "Bearer realm=\"api\"".to_owned(),
            Self::InvalidRequest(_) => ("invalid_request", "the request is malformed", None),
            Self::InvalidToken(_) => ("invalid_token", "the access token is invalid", None),
            Self::InsufficientScope(scope) => ("insufficient_scope", "the token lacks a required scope", Some(scope)),
            Self::WrongTenant(_) => ("insufficient_scope", "the token is not valid for this tenant", None),
        };
        let mut challenge = format!("Bearer realm=\"api\", error=\"{code}\", error_description=\"{description}\"");
        if let Some(scope) = scope {
            // Scope tokens cannot contain '"' or '\' (RFC 6749 §3.3), so no escaping is needed.
            challenge.push_str(&format!(", scope=\"{scope}\""));
        }
        challenge
    }
}

impl IntoResponse for VerifyError {
    fn into_response(self) -> Response {
        tracing::debug!(error = %self, "request refused");
        let mut response = self.status().into_response();
        if let Ok(value) = HeaderValue::from_str(&self.challenge()) {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
        }
        response
    }
}
