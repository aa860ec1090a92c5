//! The token's `aud`: Auth0's `audience` parameter or RFC 8707's `resource`, chosen from the
//! client's allowed set.

use crate::error::{ErrorCode, OAuthError};

fn invalid_target(description: &'static str) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidTarget, description)
}

/// RFC 8707 §2: a resource is an absolute URI without a fragment.
fn is_absolute_uri(value: &str) -> bool {
    let Some((scheme, rest)) = value.split_once(':') else {
        return false;
    };
    let scheme_ok = scheme.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    scheme_ok && !rest.is_empty() && !value.contains('#')
}

/// `audience` and every `resource`, each once, in order; every resource an absolute URI.
fn requested<'a>(audience: Option<&'a str>, resources: &[&'a str]) -> Result<Vec<&'a str>, OAuthError> {
    if let Some(bad) = resources.iter().find(|r| !is_absolute_uri(r)) {
        return Err(invalid_target("resource must be an absolute URI without a fragment")
            .with_detail(format!("resource {bad:?}")));
    }
    let mut requested: Vec<&str> = Vec::new();
    for value in audience.into_iter().chain(resources.iter().copied()) {
        if !requested.contains(&value) {
            requested.push(value);
        }
    }
    Ok(requested)
}

/// The audiences of the token. Nothing asked: all the client's audiences, or `default` when it
/// has none. Something asked: each value must be one of the client's audiences.
pub fn resolve(
    audience: Option<&str>,
    resources: &[&str],
    allowed: &[String],
    default: &str,
) -> Result<Vec<String>, OAuthError> {
    let requested = requested(audience, resources)?;
    if requested.is_empty() {
        return Ok(if allowed.is_empty() { vec![default.to_owned()] } else { allowed.to_vec() });
    }
    if let Some(bad) = requested.iter().find(|r| !allowed.iter().any(|a| a == *r)) {
        return Err(invalid_target("the requested audience is not allowed for this client")
            .with_detail(format!("audience {bad:?} not allowed")));
    }
    Ok(requested.into_iter().map(str::to_owned).collect())
}

/// For a refresh (RFC 8707 §2.2): the requested audiences must be part of the original grant;
/// nothing asked keeps all of it.
pub fn narrow(audience: Option<&str>, resources: &[&str], original: &[String]) -> Result<Vec<String>, OAuthError> {
    let requested = requested(audience, resources)?;
    if requested.is_empty() {
        return Ok(original.to_vec());
    }
    if let Some(bad) = requested.iter().find(|r| !original.iter().any(|a| a == *r)) {
        return Err(invalid_target("the requested audience exceeds the original grant")
            .with_detail(format!("audience {bad:?} not in the original grant")));
    }
    Ok(requested.into_iter().map(str::to_owned).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_from_allowed_set() {
        let allowed = vec!["https://api.dev.alignet.io".to_string(), "https://b".to_string()];
        assert_eq!(resolve(Some("https://b"), &[], &allowed, "iss").unwrap(), vec!["https://b"]);
        assert_eq!(resolve(None, &[], &allowed, "iss").unwrap(), allowed);
        assert_eq!(resolve(None, &[], &[], "iss").unwrap(), vec!["iss"]);
        let err = resolve(Some("https://c"), &[], &allowed, "iss").unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidTarget);
    }

    #[test]
    fn narrowing_stays_within_the_grant() {
        let original = vec!["https://a".to_string(), "https://b".to_string()];
        assert_eq!(narrow(None, &["https://a"], &original).unwrap(), vec!["https://a"]);
        assert_eq!(narrow(None, &[], &original).unwrap(), original);
        let outside = narrow(None, &["https://evil.example"], &original).unwrap_err();
        assert_eq!(outside.code, ErrorCode::InvalidTarget);
        assert_eq!(narrow(Some("https://b"), &["https://a"], &original).unwrap(), vec!["https://b", "https://a"]);
        assert!(narrow(None, &["relative"], &original).is_err());
    }

    #[test]
    fn resource_must_be_absolute() {
        let allowed = vec!["https://b".to_string()];
        assert!(resolve(None, &["/relative"], &allowed, "iss").is_err());
        assert!(resolve(None, &["https://b#frag"], &allowed, "iss").is_err());
        assert_eq!(resolve(None, &["https://b"], &allowed, "iss").unwrap(), vec!["https://b"]);
    }
}
