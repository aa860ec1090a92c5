//! What can go wrong getting a token.

use portero_wire::AnyErrorCode;

/// Why no token could be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The token endpoint refused: an RFC 6749 §5.2 error (not retried unless 5xx or 429).
    #[error("{status}: {}{}", code_text(error), description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The `error` member; [`AnyErrorCode::Other`] for codes this crate does not know
        /// (empty when the answer had none). A 5xx or 429 without a JSON body is `server_error`.
        error: AnyErrorCode,
        /// The `error_description` member.
        description: Option<String>,
    },
    /// Network trouble or a 5xx/429 that outlasted the retries.
    #[error("token endpoint unavailable: {0}")]
    Unavailable(String),
    /// An answer that is not a token response.
    #[error("unexpected token response: {0}")]
    Protocol(String),
    /// A configured header whose name or value cannot be sent (the value is not shown).
    #[error("header {0:?} has an invalid name or value")]
    InvalidHeader(String),
    /// The HTTP client could not be built (TLS setup, say); no client without timeouts is
    /// used instead.
    #[error("the HTTP client could not be built: {0}")]
    HttpClient(String),
    /// A private key that cannot be read or used (the key itself is never shown).
    #[error("unusable private key: {0}")]
    InvalidKey(String),
}

fn code_text(code: &AnyErrorCode) -> &str {
    if code.as_str().is_empty() { "(no error code)" } else { code.as_str() }
}

impl ClientError {
    /// Worth retrying: the network, a 5xx, or throttling.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Unavailable(_) => true,
            Self::Refused { status, .. } => *status >= 500 || *status == 429,
            Self::Protocol(_) | Self::InvalidHeader(_) | Self::HttpClient(_) | Self::InvalidKey(_) => false,
        }
    }
}
