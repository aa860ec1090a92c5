//! One error type for every OAuth endpoint, carrying an RFC 6749 §5.2 code.
//!
//! The public `description` is what a client may see; `detail` is for the operator's log only
//! (it may say *why* a client failed, which would help an attacker).

use std::borrow::Cow;
use std::fmt;

/// The error codes of RFC 6749 §5.2, RFC 8707 §2 and the two 5xx codes of RFC 6749 §4.1.2.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// The request is missing a parameter, repeats one, or is otherwise malformed.
    InvalidRequest,
    /// Client authentication failed (unknown client, bad secret, no authentication).
    InvalidClient,
    /// The grant (password, refresh token) is invalid, expired, revoked or belongs to another client.
    InvalidGrant,
    /// The authenticated client may not use this grant type.
    UnauthorizedClient,
    /// The grant type is not one the server supports.
    UnsupportedGrantType,
    /// The requested scope is invalid, unknown or exceeds what the client may have.
    InvalidScope,
    /// RFC 8707: the requested resource or audience is not one the client may ask for.
    InvalidTarget,
    /// Too many failed attempts: try again later (answered with 429).
    SlowDown,
    /// An unexpected condition on our side.
    ServerError,
    /// A dependency (the database) is not reachable right now.
    TemporarilyUnavailable,
}

impl ErrorCode {
    /// The value of the `error` member on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope => "invalid_scope",
            Self::InvalidTarget => "invalid_target",
            Self::SlowDown => "slow_down",
            Self::ServerError => "server_error",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
        }
    }

    /// The HTTP status RFC 6749 §5.2 (and RFC 6585 for throttling) prescribes.
    pub fn http_status(self) -> u16 {
        match self {
            Self::InvalidClient => 401,
            Self::SlowDown => 429,
            Self::ServerError => 500,
            Self::TemporarilyUnavailable => 503,
            _ => 400,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

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
