//! The successful token response (RFC 6749 §5.1).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A successful token response. Members this type does not know are ignored when reading;
/// more may be added, so the struct is `#[non_exhaustive]` (build one with
/// [`TokenResponse::bearer`]).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TokenResponse {
    /// The access token.
    pub access_token: String,
    /// `Bearer` from Portero; optional here because some servers leave it out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_type: Option<String>,
    /// Lifetime in seconds. RFC 6749 only recommends it: `None` means the server did not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<u64>,
    /// A refresh token, when the grant issued one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// The granted scopes, space-separated, when they differ from the requested ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

impl TokenResponse {
    /// A `Bearer` token response lasting `expires_in` seconds.
    pub fn bearer(access_token: impl Into<String>, expires_in: u64) -> Self {
        Self {
            access_token: access_token.into(),
            token_type: Some("Bearer".to_owned()),
            expires_in: Some(expires_in),
            refresh_token: None,
            scope: None,
        }
    }

    /// Sets the refresh token.
    pub fn with_refresh_token(mut self, refresh_token: impl Into<String>) -> Self {
        self.refresh_token = Some(refresh_token.into());
        self
    }

    /// Sets the granted scopes.
    pub fn with_scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// The lifetime, if the server gave one.
    pub fn lifetime(&self) -> Option<Duration> {
        self.expires_in.map(Duration::from_secs)
    }
}

/// Never shows a token.
impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("refresh_token", &self.refresh_token.as_ref().map(|_| "[redacted]"))
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_response_round_trip_and_missing_expires_in() {
        let response = TokenResponse::bearer("at", 300).with_refresh_token("rt").with_scope("a b");
        let text = serde_json::to_string(&response).unwrap();
        assert_eq!(
            text,
            r#"{"access_token":"at","token_type":"Bearer","expires_in":300,"refresh_token":"rt","scope":"a b"}"#
        );
        assert_eq!(serde_json::from_str::<TokenResponse>(&text).unwrap(), response);
        let bare: TokenResponse = serde_json::from_str(r#"{"access_token":"at","extra":1}"#).unwrap();
        assert_eq!(bare.lifetime(), None);
        assert!(!format!("{response:?}").contains("rt\""), "Debug hides tokens");
    }
}
