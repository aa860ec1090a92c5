//! The grant types Portero serves (RFC 6749 §4.3, §4.4, §6).

use std::fmt;

/// A `grant_type` value Portero serves.
///
/// Deliberately exhaustive: the server matches on it, and a new grant is a change every
/// match should see (a breaking release of this crate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    /// `client_credentials` (RFC 6749 §4.4).
    ClientCredentials,
    /// `password`, the resource owner password credentials grant (RFC 6749 §4.3).
    Password,
    /// `refresh_token` (RFC 6749 §6).
    RefreshToken,
}

impl GrantType {
    /// Every grant type, in a fixed order.
    pub const ALL: [GrantType; 3] = [Self::ClientCredentials, Self::Password, Self::RefreshToken];

    /// The `grant_type` value on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientCredentials => "client_credentials",
            Self::Password => "password",
            Self::RefreshToken => "refresh_token",
        }
    }

    /// The grant type named `text` exactly (values are case-sensitive, RFC 6749 §3.2), if any.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.as_str() == text)
    }
}

impl fmt::Display for GrantType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::GrantType;

    #[test]
    fn grant_types_round_trip() {
        for grant in GrantType::ALL {
            assert_eq!(GrantType::parse(grant.as_str()), Some(grant));
            let json = serde_json::to_string(&grant).unwrap();
            assert_eq!(json, format!("\"{grant}\""));
            assert_eq!(serde_json::from_str::<GrantType>(&json).unwrap(), grant);
        }
        assert_eq!(GrantType::parse("Password"), None);
        assert_eq!(GrantType::parse("authorization_code"), None);
    }
}
