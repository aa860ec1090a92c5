//! RFC 8414 authorization-server metadata.

use serde_json::{Value, json};

use crate::client_auth::AuthMethod;
use crate::grant::GrantType;

/// The algorithms a `private_key_jwt` assertion may be signed with (those `portero_wire::jws`
/// verifies; never `none` or HMAC).
pub const ASSERTION_SIGNING_ALGS: [&str; 4] = ["RS256", "PS256", "ES256", "EdDSA"];

/// Where the endpoints are mounted, relative to the issuer.
pub struct EndpointPaths<'a> {
    pub token: &'a str,
    pub introspection: &'a str,
    pub revocation: &'a str,
}

/// The metadata document for `issuer`, whose token endpoint lives at `token_path`.
pub fn document(issuer: &str, paths: &EndpointPaths<'_>, signing_algs: &[&str]) -> Value {
    let base = issuer.trim_end_matches('/');
    let auth_methods: Vec<&str> = AuthMethod::ALL.iter().map(|m| m.as_str()).collect();
    json!({
        "issuer": issuer,
        "token_endpoint": format!("{base}{}", paths.token),
        "introspection_endpoint": format!("{base}{}", paths.introspection),
        "revocation_endpoint": format!("{base}{}", paths.revocation),
        "introspection_endpoint_auth_methods_supported": auth_methods,
        "introspection_endpoint_auth_signing_alg_values_supported": ASSERTION_SIGNING_ALGS,
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "revocation_endpoint_auth_signing_alg_values_supported": ASSERTION_SIGNING_ALGS,
        "jwks_uri": format!("{base}/.well-known/jwks.json"),
        "grant_types_supported": GrantType::ALL.iter().map(|g| g.as_str()).collect::<Vec<_>>(),
        "token_endpoint_auth_methods_supported": auth_methods,
        "token_endpoint_auth_signing_alg_values_supported": ASSERTION_SIGNING_ALGS,
        "response_types_supported": [],
        "scopes_supported": [],
        "access_token_signing_alg_values_supported": signing_algs,
        "dpop_signing_alg_values_supported": crate::dpop::SIGNING_ALGS,
        // RFC 8705 §3.3: access tokens can be bound to the client certificate.
        "tls_client_certificate_bound_access_tokens": true,
    })
}
