#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// The token endpoint refused: an RFC 6749 §5.2 error (not retried).
    #[error("{status}: {error}{}", description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Refused { status: u16, error: String, description: Option<String> },
    /// Network trouble or a 5xx/429 that outlasted the retries.
    #[error("token endpoint unavailable: {0}")]
    Unavailable(String),
    /// An answer that is not a token response.
    #[error("unexpected token response: {0}")]
    Protocol(String),
    /// A configured header whose name or value cannot be sent (the value is not shown).
    #[error("header {0:?} has an invalid name or value")]
    InvalidHeader(String),
}

impl ClientError {
    /// Worth retrying: the network, a 5xx, or throttling.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Unavailable(_) => true,
            Self::Refused { status, .. } => *status >= 500 || *status == 429,
            Self::Protocol(_) | Self::InvalidHeader(_) => false,
        }
    }
}
