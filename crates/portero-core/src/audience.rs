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

/// The audiences of the token. Nothing asked: all the client's audiences, or `default` when it
/// has none. Something asked: each value must be one of the client's audiences.
pub fn resolve(
    audience: Option<&str>,
    resources: &[&str],
    allowed: &[String],
    default: &str,
) -> Result<Vec<String>, OAuthError> {
    if let Some(bad) = resources.iter().find(|r| !is_absolute_uri(r)) {
        return Err(invalid_target("resource must be an absolute URI without a fragment")
            .with_detail(format!("resource {bad:?}")));
    }
    let mut requested: Vec<String> = Vec::new();
    for value in audience.into_iter().chain(resources.iter().copied()) {
        if !requested.iter().any(|r| r == value) {
            requested.push(value.to_owned());
        }
    }
    if requested.is_empty() {
        return Ok(if allowed.is_empty() { vec![default.to_owned()] } else { allowed.to_vec() });
    }
    if let Some(bad) = requested.iter().find(|r| !allowed.contains(r)) {
        return Err(invalid_target("the requested audience is not allowed for this client")
            .with_detail(format!("audience {bad:?} not allowed")));
    }
    Ok(requested)
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
    fn resource_must_be_absolute() {
        let allowed = vec!["https://b".to_string()];
        assert!(resolve(None, &["/relative"], &allowed, "iss").is_err());
        assert!(resolve(None, &["https://b#frag"], &allowed, "iss").is_err());
        assert_eq!(resolve(None, &["https://b"], &allowed, "iss").unwrap(), vec!["https://b"]);
    }
}
