//! Scopes (RFC 6749 §3.3): parsing, the per-client allow-list, and the leniency some
//! integrations need (Zertiban's clients may still send `scope=openid profile api`).

use crate::error::OAuthError;

/// The scope that asks for a refresh token under the `offline_access` policy (the Pay-me document).
pub const OFFLINE_ACCESS: &str = "offline_access";

/// `scope-token = 1*NQCHAR`, NQCHAR = %x21 / %x23-5B / %x5D-7E.
fn is_scope_token(token: &str) -> bool {
    !token.is_empty() && token.bytes().all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}

/// Splits a `scope` value into distinct tokens, in order.
pub fn parse(value: &str) -> Result<Vec<String>, OAuthError> {
    let mut scopes: Vec<String> = Vec::new();
    for token in value.split(' ').filter(|t| !t.is_empty()) {
        if !is_scope_token(token) {
            return Err(OAuthError::invalid_scope("scope contains characters RFC 6749 §3.3 does not allow"));
        }
        if !scopes.iter().any(|s| s == token) {
            scopes.push(token.to_owned());
        }
    }
    Ok(scopes)
}

/// The scopes to grant: what was asked for, if the client may have all of it; without a
/// request, every scope the client may have except `offline_access` (RFC 6749 §3.3 default).
pub fn resolve(requested: Option<&str>, allowed: &[String], ignore_unknown: bool) -> Result<Vec<String>, OAuthError> {
    let requested = match requested {
        Some(value) => parse(value)?,
        None => Vec::new(),
    };
    let mut granted = Vec::with_capacity(requested.len());
    for scope in requested {
        if allowed.contains(&scope) {
            granted.push(scope);
        } else if !ignore_unknown {
            return Err(OAuthError::invalid_scope("the requested scope is not allowed for this client")
                .with_detail(format!("scope {scope:?} not allowed")));
        }
    }
    if granted.is_empty() {
        granted = allowed.iter().filter(|s| *s != OFFLINE_ACCESS).cloned().collect();
    }
    Ok(granted)
}

/// For a refresh: the requested scopes must be a subset of the original grant (RFC 6749 §6).
pub fn narrow(requested: Option<&str>, original: &[String]) -> Result<Vec<String>, OAuthError> {
    let Some(value) = requested else {
        return Ok(original.to_vec());
    };
    let requested = parse(value)?;
    if let Some(extra) = requested.iter().find(|s| !original.contains(s)) {
        return Err(OAuthError::invalid_scope("the requested scope exceeds the original grant")
            .with_detail(format!("scope {extra:?} not in the original grant")));
    }
    Ok(requested)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed() -> Vec<String> {
        ["create:token", "post:charges", "offline_access"].iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn grants_requested_subset() {
        let got = resolve(Some("post:charges offline_access"), &allowed(), false).unwrap();
        assert_eq!(got, vec!["post:charges", "offline_access"]);
    }

    #[test]
    fn default_excludes_offline_access() {
        assert_eq!(resolve(None, &allowed(), false).unwrap(), vec!["create:token", "post:charges"]);
    }

    #[test]
    fn unknown_scope_rejected_or_ignored() {
        assert!(resolve(Some("openid profile api"), &allowed(), false).is_err());
        assert_eq!(resolve(Some("openid post:charges"), &allowed(), true).unwrap(), vec!["post:charges"]);
        assert_eq!(resolve(Some("openid profile api"), &[], true).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn rejects_bad_characters() {
        assert!(parse("a\"b").is_err());
        assert!(parse("a\\b").is_err());
        assert_eq!(parse("a  b a").unwrap(), vec!["a", "b"]);
    }

    #[test]
    fn narrowing_only_shrinks() {
        let original = vec!["a".to_string(), "b".to_string()];
        assert_eq!(narrow(Some("a"), &original).unwrap(), vec!["a"]);
        assert!(narrow(Some("c"), &original).is_err());
        assert_eq!(narrow(None, &original).unwrap(), original);
    }
}
