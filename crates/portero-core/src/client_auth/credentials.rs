//! What a request presents to authenticate its client (RFC 6749 §2.3.1): HTTP Basic
//! (`client_secret_basic`), `client_id`/`client_secret` in the body (`client_secret_post`), or
//! a signed JWT in `client_assertion` (`private_key_jwt`, RFC 7521 §4.2), exactly one of them.

use base64::Engine;
use base64::engine::general_purpose::GeneralPurpose;
use base64::engine::{DecodePaddingMode, GeneralPurposeConfig};

use super::AuthMethod;
use crate::error::OAuthError;
use crate::params::{Params, form_decode};

/// Standard alphabet; padding optional (some clients strip it).
const BASIC_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A client's claimed identity and how it proves it; the secret is not shown by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientCredentials {
    pub client_id: String,
    /// The method the request used.
    pub method: AuthMethod,
    pub secret: Option<String>,
    /// Basic id and secret exactly as sent, when form-decoding changed them (see [`decode_basic`]).
    pub undecoded: Option<(String, String)>,
    /// The `client_assertion` JWT (`private_key_jwt`), not yet checked.
    pub assertion: Option<String>,
}

/// `client_assertion_type` of a JWT client assertion (RFC 7523 §2.2).
pub const JWT_BEARER_ASSERTION: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// What a Basic header carried.
#[derive(Clone, PartialEq, Eq)]
pub struct BasicCredentials {
    pub id: String,
    pub secret: String,
    pub undecoded: Option<(String, String)>,
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("client_id", &self.client_id)
            .field("method", &self.method)
            .field("secret", &self.secret.as_ref().map(|_| "[redacted]"))
            .field("assertion", &self.assertion.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

impl ClientCredentials {
    /// Reads the credentials from the `Authorization` header or the body, never both.
    pub fn from_request(authorization: Option<&str>, params: &Params) -> Result<Self, OAuthError> {
        let body_id = params.get("client_id");
        let body_secret = params.get("client_secret");
        let assertion_type = params.get("client_assertion_type");
        let assertion = params.get("client_assertion");
        if assertion_type.is_some() || assertion.is_some() {
            if authorization.is_some() || body_secret.is_some() {
                return Err(OAuthError::invalid_request("use one client authentication method, not two"));
            }
            return Self::from_assertion(body_id, assertion_type, assertion);
        }
        match authorization {
            Some(header) => {
                let basic = decode_basic(header)?;
                if body_secret.is_some() {
                    return Err(OAuthError::invalid_request("use one client authentication method, not two"));
                }
                let raw_id = basic.undecoded.as_ref().map(|(id, _)| id.as_str());
                if body_id.is_some_and(|id| id != basic.id && Some(id) != raw_id) {
                    return Err(OAuthError::invalid_request("client_id does not match the Authorization header"));
                }
                Ok(Self {
                    client_id: basic.id,
                    method: AuthMethod::ClientSecretBasic,
                    secret: Some(basic.secret),
                    undecoded: basic.undecoded,
                    assertion: None,
                })
            }
            None => match body_id {
                Some(id) => Ok(Self {
                    client_id: id.to_owned(),
                    method: AuthMethod::ClientSecretPost,
                    secret: body_secret.map(str::to_owned),
                    undecoded: None,
                    assertion: None,
                }),
                None => Err(OAuthError::invalid_client().with_detail("no client authentication")),
            },
        }
    }
}

impl ClientCredentials {
    /// A JWT client assertion. The client is the `client_id` sent, or else the assertion's
    /// unverified `sub` (only to find the client and its keys: the check verifies it).
    fn from_assertion(
        body_id: Option<&str>,
        assertion_type: Option<&str>,
        assertion: Option<&str>,
    ) -> Result<Self, OAuthError> {
        if assertion_type != Some(JWT_BEARER_ASSERTION) {
            return Err(OAuthError::invalid_request(format!("client_assertion_type must be {JWT_BEARER_ASSERTION}")));
        }
        let Some(assertion) = assertion.filter(|a| !a.is_empty()) else {
            return Err(OAuthError::invalid_request("client_assertion is missing"));
        };
        let client_id = match body_id {
            Some(id) => id.to_owned(),
            None => unverified_subject(assertion)
                .ok_or_else(|| OAuthError::invalid_client().with_detail("the client assertion names no client"))?,
        };
        Ok(Self {
            client_id,
            method: AuthMethod::PrivateKeyJwt,
            secret: None,
            undecoded: None,
            assertion: Some(assertion.to_owned()),
        })
    }
}

/// The `sub` of a compact JWT's payload, read without checking anything.
fn unverified_subject(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("sub")?.as_str().filter(|s| !s.is_empty() && s.len() <= 256).map(str::to_owned)
}

/// Decodes `Basic base64(urlencode(id) ":" urlencode(secret))` (RFC 6749 §2.3.1, RFC 7617).
///
/// RFC 6749 asks clients to form-encode both parts, and careful libraries (the `oauth2` crate,
/// node-oidc-provider's clients) do; curl's `-u`, Postman and most payment SDKs send them raw.
/// A raw secret with `+` or `%` would not survive decoding, so when decoding changes a part,
/// the part as sent is kept too and tried second (see `client_secret`).
pub fn decode_basic(header: &str) -> Result<BasicCredentials, OAuthError> {
    let malformed = || OAuthError::invalid_request("malformed Basic authorization header");
    let (scheme, encoded) = header.trim().split_once(' ').ok_or_else(malformed)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(OAuthError::invalid_request("only the Basic authorization scheme is accepted here"));
    }
    let decoded = BASIC_BASE64.decode(encoded.trim()).map_err(|_| malformed())?;
    let decoded = String::from_utf8(decoded).map_err(|_| malformed())?;
    let (raw_id, raw_secret) = decoded.split_once(':').ok_or_else(malformed)?;
    if raw_id.is_empty() || decoded.chars().any(char::is_control) {
        return Err(malformed());
    }
    // A part that is not valid form-encoding can only have been sent raw.
    let id = form_decode(raw_id.as_bytes()).unwrap_or_else(|_| raw_id.to_owned());
    let secret = form_decode(raw_secret.as_bytes()).unwrap_or_else(|_| raw_secret.to_owned());
    if id.is_empty() || id.chars().chain(secret.chars()).any(char::is_control) {
        return Err(malformed());
    }
    let undecoded = (id != raw_id || secret != raw_secret).then(|| (raw_id.to_owned(), raw_secret.to_owned()));
    Ok(BasicCredentials { id, secret, undecoded })
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;

    fn basic(raw: &str) -> String {
        format!("Basic {}", STANDARD.encode(raw))
    }

    #[test]
    fn decodes_form_encoded_parts() {
        // RFC 6749 §2.3.1: id and secret are form-encoded before base64 (the oauth2 crate does this).
        let creds = decode_basic(&basic("my%3Aapp:s%2Bc+r%25t:x")).unwrap();
        assert_eq!(creds.id, "my:app");
        assert_eq!(creds.secret, "s+c r%t:x");
        assert_eq!(creds.undecoded, Some(("my%3Aapp".into(), "s%2Bc+r%25t:x".into())));
    }

    #[test]
    fn raw_parts_that_are_not_form_encoding_are_kept_as_sent() {
        let creds = decode_basic(&basic("app:100%sure")).unwrap();
        assert_eq!((creds.id.as_str(), creds.secret.as_str()), ("app", "100%sure"));
        assert_eq!(creds.undecoded, None);
    }

    #[test]
    fn accepts_plain_curl_style_and_missing_padding() {
        assert_eq!(decode_basic(&basic("trusted-app:secret")).unwrap().id, "trusted-app");
        let unpadded = format!("Basic {}", STANDARD.encode("a:b").trim_end_matches('='));
        let creds = decode_basic(&unpadded).unwrap();
        assert_eq!((creds.id.as_str(), creds.secret.as_str()), ("a", "b"));
        assert_eq!(decode_basic(&format!("bAsIc {}", STANDARD.encode("a:"))).unwrap().secret, "");
    }

    #[test]
    fn rejects_malformed_headers() {
        for header in ["Basic", "Basic !!!", "Bearer abc", &basic("no-colon"), &basic(":secret"), &basic("a:b\u{0}")] {
            assert!(decode_basic(header).is_err(), "{header}");
        }
        let invalid_utf8 = format!("Basic {}", STANDARD.encode([0xff, b':', b'a']));
        assert!(decode_basic(&invalid_utf8).is_err());
    }

    #[test]
    fn one_method_only() {
        let limits = crate::params::FieldLimits::default();
        let params = Params::from_form(b"client_secret=x", &limits).unwrap();
        assert!(ClientCredentials::from_request(Some(&basic("a:b")), &params).is_err());
        let params = Params::from_form(b"client_id=other", &limits).unwrap();
        assert!(ClientCredentials::from_request(Some(&basic("a:b")), &params).is_err());
        let params = Params::from_form(b"client_id=a", &limits).unwrap();
        let basic = ClientCredentials::from_request(Some(&basic("a:b")), &params).unwrap();
        assert_eq!(basic.method, AuthMethod::ClientSecretBasic);
        let params = Params::from_form(b"client_id=a&client_secret=b", &limits).unwrap();
        let post = ClientCredentials::from_request(None, &params).unwrap();
        assert_eq!(post.method, AuthMethod::ClientSecretPost);
    }

    #[test]
    fn assertions_come_alone() {
        let limits = crate::params::FieldLimits::default();
        let form = |body: &str| Params::from_form(body.as_bytes(), &limits).unwrap();
        let kind = "client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer";
        // {"sub":"app"}
        let jwt = "e30.eyJzdWIiOiJhcHAifQ.sig";
        let creds = ClientCredentials::from_request(None, &form(&format!("{kind}&client_assertion={jwt}"))).unwrap();
        assert_eq!((creds.client_id.as_str(), creds.method), ("app", AuthMethod::PrivateKeyJwt));
        let both = form(&format!("{kind}&client_assertion={jwt}&client_secret=x"));
        assert!(ClientCredentials::from_request(None, &both).is_err());
        let with_basic = form(&format!("{kind}&client_assertion={jwt}"));
        assert!(ClientCredentials::from_request(Some(&basic("app:x")), &with_basic).is_err());
        assert!(ClientCredentials::from_request(None, &form(&format!("client_assertion={jwt}"))).is_err());
        assert!(ClientCredentials::from_request(None, &form(kind)).is_err());
    }

    #[test]
    fn debug_hides_the_secret() {
        let creds = ClientCredentials {
            client_id: "a".into(),
            method: AuthMethod::ClientSecretPost,
            secret: Some("hunter2".into()),
            undecoded: None,
            assertion: Some("eyJhbGciOi.x.y".into()),
        };
        assert!(!format!("{creds:?}").contains("hunter2"));
        assert!(!format!("{creds:?}").contains("eyJ"));
    }
}
