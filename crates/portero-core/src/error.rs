//! One error type for every OAuth endpoint, carrying an RFC 6749 §5.2 code.
//!
//! The public `description` is what a client may see; `detail` is for the operator's log only
//! (it may say *why* a client failed, which would help an attacker).

use std::borrow::Cow;
use std::fmt;

/// The error codes (RFC 6749 §5.2, RFC 6750, RFC 7009, RFC 8707, and the 5xx codes), shared
/// with the verifier and the client.
pub use portero_wire::ErrorCode;

/// An OAuth error: the code, a public description and a private detail for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    pub code: ErrorCode,
    pub description: Cow<'static, str>,
    pub detail: Option<String>,
    /// Seconds before trying again (`Retry-After`), for throttling.
    pub retry_after: Option<u64>,
}

impl OAuthError {
    pub fn new(code: ErrorCode, description: impl Into<Cow<'static, str>>) -> Self {
        Self { code, description: description.into(), detail: None, retry_after: None }
    }

    /// Adds a reason for the operator's log; never sent to the client.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn invalid_request(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidRequest, description)
    }

    /// Every client-authentication failure looks the same from outside.
    pub fn invalid_client() -> Self {
        Self::new(ErrorCode::InvalidClient, "client authentication failed")
    }

    pub fn invalid_grant(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidGrant, description)
    }

    pub fn invalid_scope(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidScope, description)
    }

    /// 503 with `Retry-After: 1`: the database cannot be reached, or did not answer in time.
    pub fn temporarily_unavailable(detail: impl Into<String>) -> Self {
        let mut error = Self::new(ErrorCode::TemporarilyUnavailable, "the service is temporarily unavailable");
        error.retry_after = Some(1);
        error.with_detail(detail)
    }

    pub fn server_error(detail: impl Into<String>) -> Self {
        Self::new(ErrorCode::ServerError, "internal error").with_detail(detail)
    }
}

impl fmt::Display for OAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.description)?;
        if let Some(detail) = &self.detail {
            write!(f, " ({detail})")?;
        }
        Ok(())
    }
}

impl std::error::Error for OAuthError {}
