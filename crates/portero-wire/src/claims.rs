//! The access token's claims: RFC 9068 §2.2, plus the Cognito-style `token_use`, `version` and
//! `auth_time` of the Nequi example token, and the `tenants` the token may act for.

use serde::{Deserialize, Serialize};

/// `version` in the Nequi example token (Cognito's access-token format version).
pub const TOKEN_VERSION: u32 = 2;

/// The claims of a Portero access token.
///
/// Portero always issues `jti`, `client_id`, `token_use`, `version` and `auth_time`; they are
/// optional here so that a verifier also reads tokens (or introspection answers) without them.
/// Members this type does not know are ignored when reading. Build one with
/// [`AccessTokenClaims::new`] and the `with_*` methods; more members may be added, so the
/// struct is `#[non_exhaustive]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AccessTokenClaims {
    /// The issuer (`iss`): the token service's URL.
    pub iss: String,
    /// The subject (`sub`): the user for the password grant, the client otherwise.
    pub sub: String,
    /// The audience (`aud`): the resource servers the token is for.
    pub aud: Audience,
    /// Expiry (`exp`), seconds since the Unix epoch.
    pub exp: i64,
    /// Issued at (`iat`), seconds since the Unix epoch.
    pub iat: i64,
    /// Not before (`nbf`), seconds since the Unix epoch. Portero does not issue it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// The token's unique id (`jti`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// The client the token was issued to (`client_id`, RFC 8693 §4.3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Granted scopes, space-separated (`scope`, RFC 8693 §4.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The tenants the token may act for (Portero's own claim; empty when absent).
    #[serde(default)]
    pub tenants: Vec<String>,
    /// `"access"` in Portero's tokens (Cognito's `token_use`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_use: Option<String>,
    /// The token format version, [`TOKEN_VERSION`] in Portero's tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// When the subject authenticated (`auth_time`), seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    /// The key the token is bound to (`cnf`, RFC 7800): a DPoP key (RFC 9449 §6) or a client
    /// certificate (RFC 8705 §3). A bound token is worthless without that key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
}

/// The `cnf` claim: what proves possession of a bound token.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Confirmation {
    /// The JWK SHA-256 thumbprint of the DPoP key (RFC 9449 §6.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jkt: Option<String>,
    /// The SHA-256 thumbprint of the client certificate (RFC 8705 §3.1).
    #[serde(rename = "x5t#S256", default, skip_serializing_if = "Option::is_none")]
    pub x5t_s256: Option<String>,
}

impl Confirmation {
    /// Bound to the DPoP key whose thumbprint is `jkt`.
    pub fn dpop(jkt: impl Into<String>) -> Self {
        Self { jkt: Some(jkt.into()), x5t_s256: None }
    }

    /// Bound to the certificate whose SHA-256 thumbprint is `x5t_s256`.
    pub fn certificate(x5t_s256: impl Into<String>) -> Self {
        Self { jkt: None, x5t_s256: Some(x5t_s256.into()) }
    }

    /// Whether nothing is bound.
    pub fn is_empty(&self) -> bool {
        self.jkt.is_none() && self.x5t_s256.is_none()
    }
}

/// The `aud` claim: one audience as a string, several as an array (RFC 7519 §4.1.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    /// A single audience, written as a string.
    One(String),
    /// Several audiences (or none), written as an array.
    Many(Vec<String>),
}

impl Audience {
    /// A string for one audience, an array otherwise.
    pub fn from_list(mut list: Vec<String>) -> Self {
        if list.len() == 1 { Self::One(list.remove(0)) } else { Self::Many(list) }
    }

    /// The audiences, one or many.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        let slice = match self {
            Self::One(one) => std::slice::from_ref(one),
            Self::Many(many) => many.as_slice(),
        };
        slice.iter().map(String::as_str)
    }

    /// Whether `audience` is one of them.
    pub fn contains(&self, audience: &str) -> bool {
        self.iter().any(|a| a == audience)
    }
}

impl AccessTokenClaims {
    /// Claims with the members every access token has; the optional ones are unset.
    pub fn new(iss: impl Into<String>, sub: impl Into<String>, aud: Audience, iat: i64, exp: i64) -> Self {
        Self {
            iss: iss.into(),
            sub: sub.into(),
            aud,
            exp,
            iat,
            nbf: None,
            jti: None,
            client_id: None,
            scope: None,
            tenants: Vec::new(),
            token_use: None,
            version: None,
            auth_time: None,
            cnf: None,
        }
    }

    /// Sets `jti`.
    pub fn with_jti(mut self, jti: impl Into<String>) -> Self {
        self.jti = Some(jti.into());
        self
    }

    /// Sets `client_id`.
    pub fn with_client_id(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = Some(client_id.into());
        self
    }

    /// Sets `scope` from a list; an empty list leaves the claim out.
    pub fn with_scopes<I: IntoIterator<Item = S>, S: AsRef<str>>(mut self, scopes: I) -> Self {
        let joined = scopes.into_iter().map(|s| s.as_ref().to_owned()).collect::<Vec<_>>().join(" ");
        self.scope = (!joined.is_empty()).then_some(joined);
        self
    }

    /// Sets `tenants`.
    pub fn with_tenants(mut self, tenants: Vec<String>) -> Self {
        self.tenants = tenants;
        self
    }

    /// Sets `nbf`.
    pub fn with_not_before(mut self, nbf: i64) -> Self {
        self.nbf = Some(nbf);
        self
    }

    /// Sets Portero's Cognito-style members: `token_use: "access"`, `version`
    /// ([`TOKEN_VERSION`]) and `auth_time`.
    pub fn with_portero_members(mut self, auth_time: i64) -> Self {
        self.token_use = Some("access".to_owned());
        self.version = Some(TOKEN_VERSION);
        self.auth_time = Some(auth_time);
        self
    }

    /// Sets `cnf`; an empty confirmation leaves the claim out.
    pub fn with_confirmation(mut self, cnf: Option<Confirmation>) -> Self {
        self.cnf = cnf.filter(|c| !c.is_empty());
        self
    }

    /// The DPoP key thumbprint the token is bound to (`cnf.jkt`), if any.
    pub fn dpop_thumbprint(&self) -> Option<&str> {
        self.cnf.as_ref().and_then(|c| c.jkt.as_deref())
    }

    /// Whether the token is for `audience`.
    pub fn has_audience(&self, audience: &str) -> bool {
        self.aud.contains(audience)
    }

    /// The granted scopes.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope.as_deref().unwrap_or("").split(' ').filter(|s| !s.is_empty())
    }

    /// Whether `scope` was granted.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes().any(|s| s == scope)
    }

    /// Whether the token may act for `tenant`.
    pub fn has_tenant(&self, tenant: &str) -> bool {
        self.tenants.iter().any(|t| t == tenant)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn portero_claims_round_trip_in_their_issued_order() {
        let claims = AccessTokenClaims::new("https://auth", "merchant-42", Audience::One("https://api".into()), 10, 70)
            .with_jti("j-1")
            .with_client_id("merchant-42")
            .with_scopes(["post:charges", "create:token"])
            .with_tenants(vec!["t1".into()])
            .with_portero_members(5);
        let text = serde_json::to_string(&claims).unwrap();
        assert_eq!(
            text,
            r#"{"iss":"https://auth","sub":"merchant-42","aud":"https://api","exp":70,"iat":10,"jti":"j-1","client_id":"merchant-42","scope":"post:charges create:token","tenants":["t1"],"token_use":"access","version":2,"auth_time":5}"#
        );
        let back: AccessTokenClaims = serde_json::from_str(&text).unwrap();
        assert_eq!(back, claims);
        assert!(back.has_scope("create:token") && !back.has_scope("post"));
        assert!(back.has_tenant("t1") && !back.has_tenant("t2"));
    }

    #[test]
    fn minimal_claims_and_audience_shapes_read() {
        let claims: AccessTokenClaims = serde_json::from_value(json!({
            "iss": "i", "sub": "s", "aud": ["a", "b"], "exp": 2, "iat": 1, "nbf": 1, "unknown": true
        }))
        .unwrap();
        assert!(claims.has_audience("b") && !claims.has_audience("c"));
        assert_eq!(claims.nbf, Some(1));
        assert!(claims.tenants.is_empty() && claims.jti.is_none() && claims.scopes().next().is_none());
        assert_eq!(Audience::from_list(vec!["x".into()]), Audience::One("x".into()));
        assert_eq!(serde_json::to_value(Audience::from_list(vec![])).unwrap(), json!([]));
        assert!(
            serde_json::from_value::<AccessTokenClaims>(
                json!({ "iss": "i", "sub": "s", "aud": 3, "exp": 2, "iat": 1 })
            )
            .is_err()
        );
        let no_scopes =
            AccessTokenClaims::new("i", "s", Audience::Many(vec![]), 1, 2).with_scopes(Vec::<String>::new());
        assert_eq!(no_scopes.scope, None);
    }
}
