//! The typed token request: what `Params` become once the grant type is known.

use crate::client_auth::ClientCredentials;
use crate::error::{ErrorCode, OAuthError};
use crate::params::Params;
use crate::registration::GrantType;

/// The grant and the parameters only that grant reads (RFC 6749 §4.3, §4.4, §6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    ClientCredentials,
    Password { username: String, password: Secret },
    RefreshToken { refresh_token: Secret },
}

impl Grant {
    pub fn grant_type(&self) -> GrantType {
        match self {
            Self::ClientCredentials => GrantType::ClientCredentials,
            Self::Password { .. } => GrantType::Password,
            Self::RefreshToken { .. } => GrantType::RefreshToken,
        }
    }
}

/// A string that never shows in `Debug` output (passwords, refresh tokens).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    pub grant: Grant,
    pub client: ClientCredentials,
    pub scope: Option<String>,
    pub audience: Option<String>,
    pub resources: Vec<String>,
    /// The key the caller proved it holds (a checked DPoP proof's), to bind the tokens to.
    pub confirmation: Option<crate::dpop::Confirmation>,
}

impl TokenRequest {
    /// Types the request: `invalid_request` for what is missing or malformed,
    /// `unsupported_grant_type` for a grant this server does not implement.
    pub fn parse(params: &Params, authorization: Option<&str>) -> Result<Self, OAuthError> {
        let grant_type =
            params.get("grant_type").ok_or_else(|| OAuthError::invalid_request("grant_type is missing"))?;
        let grant_type = GrantType::parse(grant_type).ok_or_else(|| {
            OAuthError::new(ErrorCode::UnsupportedGrantType, "the grant type is not supported")
                .with_detail(format!("grant_type {grant_type:?}"))
        })?;
        let client = ClientCredentials::from_request(authorization, params)?;
        let required = |name: &'static str| {
            params
                .get(name)
                .map(|v| Secret(v.to_owned()))
                .ok_or_else(|| OAuthError::invalid_request(format!("{name} is missing")))
        };
        let grant = match grant_type {
            GrantType::ClientCredentials => Grant::ClientCredentials,
            GrantType::Password => {
                Grant::Password { username: required("username")?.0, password: required("password")? }
            }
            GrantType::RefreshToken => Grant::RefreshToken { refresh_token: required("refresh_token")? },
        };
        Ok(Self {
            grant,
            client,
            scope: params.get("scope").map(str::to_owned),
            audience: params.get("audience").map(str::to_owned),
            resources: params.all("resource").into_iter().map(str::to_owned).collect(),
            confirmation: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::FieldLimits;

    fn parse(body: &str) -> Result<TokenRequest, OAuthError> {
        TokenRequest::parse(&Params::from_form(body.as_bytes(), &FieldLimits::default()).unwrap(), None)
    }

    #[test]
    fn grant_type_errors() {
        assert_eq!(parse("client_id=a").unwrap_err().code, ErrorCode::InvalidRequest);
        assert_eq!(
            parse("grant_type=authorization_code&client_id=a").unwrap_err().code,
            ErrorCode::UnsupportedGrantType
        );
    }

    #[test]
    fn password_needs_username_and_password() {
        assert_eq!(parse("grant_type=password&client_id=a&username=u").unwrap_err().code, ErrorCode::InvalidRequest);
        let request = parse("grant_type=password&client_id=a&client_secret=s&username=u&password=p").unwrap();
        assert!(matches!(request.grant, Grant::Password { .. }));
        assert!(!format!("{request:?}").contains("=p"));
    }
}
