//! What a client is registered for: the grants it may use, how it authenticates, when it gets
//! refresh tokens. Leaf types, named as on the wire (RFC 6749, RFC 7591).

pub use portero_wire::GrantType;

/// When a client receives refresh tokens (always only with a grant that allows them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshPolicy {
    Always,
    /// Only when `offline_access` is among the granted scopes (the Pay-me document).
    OfflineAccess,
    Never,
}

impl RefreshPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Always => "always",
            Self::OfflineAccess => "offline_access",
            Self::Never => "never",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "always" => Some(Self::Always),
            "offline_access" => Some(Self::OfflineAccess),
            "never" => Some(Self::Never),
            _ => None,
        }
    }
}

/// How a client proves who it is at the token, introspection and revocation endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthMethod {
    /// HTTP Basic with the client id and secret (RFC 6749 §2.3.1).
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the request body (RFC 6749 §2.3.1).
    ClientSecretPost,
    /// A JWT signed with one of the client's registered keys (RFC 7523 §2.2).
    PrivateKeyJwt,
    /// A TLS client certificate that chains to the client CA, with the registered subject DN
    /// (RFC 8705 §2.1).
    TlsClientAuth,
    /// A TLS client certificate whose public key is one of the client's registered JWKs
    /// (RFC 8705 §2.2), self-signed or not.
    SelfSignedTlsClientAuth,
}

impl AuthMethod {
    pub const ALL: [AuthMethod; 5] = [
        Self::ClientSecretBasic,
        Self::ClientSecretPost,
        Self::PrivateKeyJwt,
        Self::TlsClientAuth,
        Self::SelfSignedTlsClientAuth,
    ];

    /// The RFC 7591 / RFC 8414 name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
            Self::PrivateKeyJwt => "private_key_jwt",
            Self::TlsClientAuth => "tls_client_auth",
            Self::SelfSignedTlsClientAuth => "self_signed_tls_client_auth",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == text)
    }

    /// Whether a client registered for `registered` may authenticate with this method. A client
    /// registered for no particular method (every client made before methods were recorded, and
    /// any made without one) accepts both secret methods, never a key or certificate method.
    pub fn allowed_for(self, registered: Option<AuthMethod>) -> bool {
        match registered {
            Some(registered) => registered == self,
            None => matches!(self, Self::ClientSecretBasic | Self::ClientSecretPost),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unregistered_clients_accept_both_secret_methods() {
        for method in AuthMethod::ALL {
            let secret = matches!(method, AuthMethod::ClientSecretBasic | AuthMethod::ClientSecretPost);
            assert_eq!(method.allowed_for(None), secret);
            assert!(method.allowed_for(Some(method)));
            assert_eq!(AuthMethod::parse(method.as_str()), Some(method));
        }
        assert!(!AuthMethod::ClientSecretPost.allowed_for(Some(AuthMethod::ClientSecretBasic)));
        assert!(!AuthMethod::ClientSecretBasic.allowed_for(Some(AuthMethod::ClientSecretPost)));
        assert!(!AuthMethod::PrivateKeyJwt.allowed_for(Some(AuthMethod::ClientSecretPost)));
        assert!(!AuthMethod::ClientSecretBasic.allowed_for(Some(AuthMethod::PrivateKeyJwt)));
        assert_eq!(AuthMethod::parse("none"), None);
    }

    #[test]
    fn names_round_trip() {
        for grant in GrantType::ALL {
            assert_eq!(GrantType::parse(grant.as_str()), Some(grant));
        }
        for policy in [RefreshPolicy::Always, RefreshPolicy::OfflineAccess, RefreshPolicy::Never] {
            assert_eq!(RefreshPolicy::parse(policy.as_str()), Some(policy));
        }
    }
}
