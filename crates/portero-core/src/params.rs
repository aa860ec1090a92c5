//! Request parameters: the only place that reads raw token-endpoint input.
//!
//! Bodies are parsed into ordered `(name, value)` pairs (form or JSON), then checked once:
//! every value is valid UTF-8 without control characters, within its length limit, and no
//! parameter this server defines appears twice (RFC 6749 §3.2). Empty values count as absent
//! (RFC 6749 §3.1). Only then does anyone read a value, through [`Params::get`].

use std::collections::HashMap;

use serde::Deserialize;
use serde::de::{MapAccess, Visitor};

use crate::error::OAuthError;

/// The parameters this server reads. A repeat of any of them is rejected; unknown ones are ignored.
pub const KNOWN: &[&str] = &[
    "grant_type",
    "client_id",
    "client_secret",
    "client_assertion_type",
    "client_assertion",
    "scope",
    "username",
    "password",
    "refresh_token",
    "audience",
    "resource",
    "action",
    "token",
    "token_type_hint",
];

/// RFC 8707 §2 allows `resource` more than once: one token for several resource servers.
const REPEATABLE: &[&str] = &["resource"];

/// Parameters that must never travel in a URL (RFC 6749 §2.3.1, §3.2 and RFC 9700 §2.4).
pub const FORBIDDEN_IN_QUERY: &[&str] =
    &["client_secret", "client_assertion", "password", "refresh_token", "client_id", "username", "token"];

/// Bounds on what a request may carry. The NetPay document's 15/20/20 characters for
/// `grant_type`/`username`/`password` are expressed as `per_field` entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldLimits {
    /// Maximum characters of any parameter not named in `per_field`.
    pub default_max_chars: usize,
    /// Maximum characters per parameter name.
    pub per_field: HashMap<String, usize>,
    /// Maximum number of parameters in one request.
    pub max_params: usize,
}

impl Default for FieldLimits {
    fn default() -> Self {
        Self { default_max_chars: 2048, per_field: HashMap::new(), max_params: 64 }
    }
}

/// The longest token Portero issues, and so the longest `token` its introspection and
/// revocation endpoints accept: minting refuses a token that would be longer.
pub const MAX_TOKEN_CHARS: usize = 8 * 1024;

impl FieldLimits {
    /// Limits for introspection and revocation: any token Portero issued fits in `token`.
    pub fn token_lifecycle() -> Self {
        let mut limits = Self::default();
        limits.per_field.insert("token".to_owned(), MAX_TOKEN_CHARS);
        limits
    }

    fn max_chars(&self, name: &str) -> usize {
        self.per_field.get(name).copied().unwrap_or(self.default_max_chars)
    }
}

/// Checked, de-duplicated request parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    /// Parses an `application/x-www-form-urlencoded` body.
    pub fn from_form(body: &[u8], limits: &FieldLimits) -> Result<Self, OAuthError> {
        let mut pairs = Vec::new();
        for field in body.split(|b| *b == b'&').filter(|f| !f.is_empty()) {
            if pairs.len() >= limits.max_params {
                return Err(OAuthError::invalid_request("too many parameters"));
            }
            let (name, value) = match field.iter().position(|b| *b == b'=') {
                Some(at) => (&field[..at], &field[at + 1..]),
                None => (field, &[][..]),
            };
            pairs.push((form_decode(name)?, form_decode(value)?));
        }
        Self::checked(pairs, limits)
    }

    /// Parses an `application/json` body: one object whose known members are strings.
    pub fn from_json(body: &[u8], limits: &FieldLimits) -> Result<Self, OAuthError> {
        let members: JsonMembers =
            serde_json::from_slice(body).map_err(|_| OAuthError::invalid_request("the body is not a JSON object"))?;
        if members.0.len() > limits.max_params {
            return Err(OAuthError::invalid_request("too many parameters"));
        }
        let mut pairs = Vec::with_capacity(members.0.len());
        for (name, value) in members.0 {
            match value {
                serde_json::Value::String(text) => pairs.push((name, text)),
                serde_json::Value::Null => {}
                _ if KNOWN.contains(&name.as_str()) => {
                    return Err(OAuthError::invalid_request(format!("parameter {name} must be a string")));
                }
                _ => {}
            }
        }
        Self::checked(pairs, limits)
    }

    /// Parses a URL query string with the same rules as a form body.
    pub fn from_query(query: &str, limits: &FieldLimits) -> Result<Self, OAuthError> {
        Self::from_form(query.as_bytes(), limits)
    }

    fn checked(pairs: Vec<(String, String)>, limits: &FieldLimits) -> Result<Self, OAuthError> {
        let mut kept: Vec<(String, String)> = Vec::with_capacity(pairs.len());
        for (name, value) in pairs {
            if !KNOWN.contains(&name.as_str()) {
                continue;
            }
            if value.chars().any(char::is_control) {
                return Err(OAuthError::invalid_request(format!("parameter {name} contains control characters")));
            }
            if value.chars().count() > limits.max_chars(&name) {
                return Err(OAuthError::invalid_request(format!("parameter {name} is too long")));
            }
            if value.is_empty() {
                continue;
            }
            let repeated = kept.iter().any(|(seen, _)| *seen == name);
            if repeated && !REPEATABLE.contains(&name.as_str()) {
                return Err(OAuthError::invalid_request(format!("parameter {name} is repeated")));
            }
            kept.push((name, value));
        }
        Ok(Self { pairs: kept })
    }

    /// The value of a non-repeatable parameter, if present and non-empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// Every value of a repeatable parameter, in order.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.pairs.iter().filter(|(n, _)| n == name).map(|(_, v)| v.as_str()).collect()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Sets a parameter the body lacked (the Nequi dialect's `grant_type` from the query string).
    pub fn insert_if_absent(&mut self, name: &str, value: &str) {
        if !self.contains(name) {
            self.pairs.push((name.to_owned(), value.to_owned()));
        }
    }

    /// Removes and returns a parameter.
    pub fn take(&mut self, name: &str) -> Option<String> {
        let at = self.pairs.iter().position(|(n, _)| n == name)?;
        Some(self.pairs.remove(at).1)
    }
}

/// Percent-decodes one form component (`+` is a space) and insists on UTF-8.
pub fn form_decode(raw: &[u8]) -> Result<String, OAuthError> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = raw.get(i + 1..i + 3).ok_or_else(bad_escape)?;
                let byte = std::str::from_utf8(hex)
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(bad_escape)?;
                out.push(byte);
                i += 2;
            }
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| OAuthError::invalid_request("parameters must be UTF-8"))
}

fn bad_escape() -> OAuthError {
    OAuthError::invalid_request("malformed percent-encoding")
}

/// A JSON object read as ordered members, so repeated names are seen (a map would keep the last).
struct JsonMembers(Vec<(String, serde_json::Value)>);

impl<'de> Deserialize<'de> for JsonMembers {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MembersVisitor;
        impl<'de> Visitor<'de> for MembersVisitor {
            type Value = JsonMembers;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<JsonMembers, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry::<String, serde_json::Value>()? {
                    members.push(member);
                }
                Ok(JsonMembers(members))
            }
        }
        deserializer.deserialize_map(MembersVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(body: &str) -> Result<Params, OAuthError> {
        Params::from_form(body.as_bytes(), &FieldLimits::default())
    }

    #[test]
    fn decodes_plus_and_percent() {
        let p = form("grant_type=client_credentials&scope=a+b%20c").unwrap();
        assert_eq!(p.get("scope"), Some("a b c"));
        assert_eq!(p.get("grant_type"), Some("client_credentials"));
    }

    #[test]
    fn rejects_repeated_known_parameter() {
        let err = form("grant_type=password&grant_type=password").unwrap_err();
        assert_eq!(err.code, crate::error::ErrorCode::InvalidRequest);
        assert!(err.description.contains("repeated"));
    }

    #[test]
    fn ignores_unknown_and_allows_repeated_resource() {
        let p = form("x=1&x=2&resource=https://a&resource=https://b").unwrap();
        assert_eq!(p.all("resource"), vec!["https://a", "https://b"]);
        assert!(!p.contains("x"));
    }

    #[test]
    fn empty_values_are_absent() {
        let p = form("scope=&grant_type=password").unwrap();
        assert!(!p.contains("scope"));
    }

    #[test]
    fn rejects_invalid_utf8_nul_and_bad_escapes() {
        assert!(form("username=%FF").is_err());
        assert!(form("username=a%00b").is_err());
        assert!(form("username=%G1").is_err());
        assert!(form("username=%4").is_err());
    }

    #[test]
    fn enforces_per_field_limits() {
        let mut limits = FieldLimits::default();
        limits.per_field.insert("username".into(), 20);
        assert!(Params::from_form(b"username=aaaaaaaaaaaaaaaaaaaa", &limits).is_ok());
        assert!(Params::from_form(b"username=aaaaaaaaaaaaaaaaaaaaa", &limits).is_err());
    }

    #[test]
    fn json_rejects_duplicates_and_non_strings() {
        let limits = FieldLimits::default();
        assert!(Params::from_json(br#"{"grant_type":"a","grant_type":"b"}"#, &limits).is_err());
        assert!(Params::from_json(br#"{"grant_type":5}"#, &limits).is_err());
        assert!(Params::from_json(br#"[1]"#, &limits).is_err());
        let p = Params::from_json(br#"{"grant_type":"password","extra":{"a":[1]}}"#, &limits).unwrap();
        assert_eq!(p.get("grant_type"), Some("password"));
    }
}
