//! OAuth error codes: RFC 6749 §5.2 (token endpoint), RFC 6750 §3.1 (resource servers),
//! RFC 7009 §2.2.1 (revocation), RFC 8707 §2 (resource indicators), and the codes Portero
//! borrows for throttling and outages.

use std::fmt;
use std::str::FromStr;

/// An error code Portero knows, as sent in the `error` member or the `WWW-Authenticate` challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
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
    /// An unexpected condition on the server's side.
    ServerError,
    /// A dependency (the database) is not reachable right now.
    TemporarilyUnavailable,
    /// RFC 6750: the access token is expired, revoked, malformed or otherwise invalid.
    InvalidToken,
    /// RFC 6750: the access token lacks a scope the request needs.
    InsufficientScope,
    /// RFC 7009: the server cannot revoke tokens of the hinted type.
    UnsupportedTokenType,
    /// RFC 9449 §5: the DPoP proof is missing (where one is required), malformed or invalid.
    InvalidDpopProof,
    /// RFC 9449 §8: the DPoP proof must carry the nonce the `DPoP-Nonce` header gives.
    UseDpopNonce,
}

impl ErrorCode {
    /// Every known code.
    pub const ALL: [ErrorCode; 15] = [
        Self::InvalidRequest,
        Self::InvalidClient,
        Self::InvalidGrant,
        Self::UnauthorizedClient,
        Self::UnsupportedGrantType,
        Self::InvalidScope,
        Self::InvalidTarget,
        Self::SlowDown,
        Self::ServerError,
        Self::TemporarilyUnavailable,
        Self::InvalidToken,
        Self::InsufficientScope,
        Self::UnsupportedTokenType,
        Self::InvalidDpopProof,
        Self::UseDpopNonce,
    ];

    /// The value on the wire.
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
            Self::InvalidToken => "invalid_token",
            Self::InsufficientScope => "insufficient_scope",
            Self::UnsupportedTokenType => "unsupported_token_type",
            Self::InvalidDpopProof => "invalid_dpop_proof",
            Self::UseDpopNonce => "use_dpop_nonce",
        }
    }

    /// The code spelled `text` exactly (codes are case-sensitive), if it is one this crate knows.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|code| code.as_str() == text)
    }

    /// The HTTP status the RFCs prescribe: 400 for most, 401 for `invalid_client` and
    /// `invalid_token`, 403 for `insufficient_scope`, 429 for `slow_down` (RFC 6585), 500 and 503
    /// for the server-side codes.
    pub fn http_status(self) -> u16 {
        match self {
            Self::InvalidClient | Self::InvalidToken => 401,
            Self::InsufficientScope => 403,
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

/// `text` is not an error code this crate knows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown OAuth error code {0:?}")]
pub struct UnknownErrorCode(pub String);

impl FromStr for ErrorCode {
    type Err = UnknownErrorCode;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text).ok_or_else(|| UnknownErrorCode(text.to_owned()))
    }
}

impl serde::Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// An error code as received from a peer: one this crate knows, or any other (RFC 6749 §8.5
/// lets servers define their own).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AnyErrorCode {
    /// A code this crate knows.
    Known(ErrorCode),
    /// Any other value, kept as sent (empty when the answer had no `error` member).
    Other(String),
}

impl AnyErrorCode {
    /// Never fails: an unknown code becomes [`AnyErrorCode::Other`].
    pub fn parse(text: &str) -> Self {
        ErrorCode::parse(text).map_or_else(|| Self::Other(text.to_owned()), Self::Known)
    }

    /// The value as sent.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Known(code) => code.as_str(),
            Self::Other(text) => text,
        }
    }

    /// The known code, if it is one.
    pub fn known(&self) -> Option<ErrorCode> {
        match self {
            Self::Known(code) => Some(*code),
            Self::Other(_) => None,
        }
    }
}

impl From<ErrorCode> for AnyErrorCode {
    fn from(code: ErrorCode) -> Self {
        Self::Known(code)
    }
}

impl PartialEq<ErrorCode> for AnyErrorCode {
    fn eq(&self, other: &ErrorCode) -> bool {
        self.known() == Some(*other)
    }
}

impl fmt::Display for AnyErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for AnyErrorCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for AnyErrorCode {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Ok(Self::parse(&text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_parses_back_and_unknown_ones_do_not() {
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::parse(code.as_str()), Some(code));
            assert_eq!(code.as_str().parse::<ErrorCode>(), Ok(code));
            assert_eq!(AnyErrorCode::parse(code.as_str()), AnyErrorCode::Known(code));
            assert_eq!(serde_json::to_string(&code).unwrap(), format!("\"{code}\""));
        }
        assert_eq!(ErrorCode::parse("Invalid_Grant"), None, "codes are case-sensitive");
        assert!("access_denied_by_bank".parse::<ErrorCode>().is_err());
        let other = AnyErrorCode::parse("access_denied_by_bank");
        assert_eq!(other, AnyErrorCode::Other("access_denied_by_bank".into()));
        assert_eq!(other.as_str(), "access_denied_by_bank");
        assert_eq!(other.known(), None);
        let parsed: AnyErrorCode = serde_json::from_str("\"invalid_client\"").unwrap();
        assert_eq!(parsed, ErrorCode::InvalidClient);
    }

    #[test]
    fn statuses_follow_the_rfcs() {
        assert_eq!(ErrorCode::InvalidRequest.http_status(), 400);
        assert_eq!(ErrorCode::InvalidClient.http_status(), 401);
        assert_eq!(ErrorCode::InvalidToken.http_status(), 401);
        assert_eq!(ErrorCode::InsufficientScope.http_status(), 403);
        assert_eq!(ErrorCode::SlowDown.http_status(), 429);
        assert_eq!(ErrorCode::ServerError.http_status(), 500);
        assert_eq!(ErrorCode::TemporarilyUnavailable.http_status(), 503);
    }
}
