//! RFC 8414 authorization-server metadata.

use serde_json::{Value, json};

use crate::grant::GrantType;

/// The metadata document for `issuer`, whose token endpoint lives at `token_path`.
pub fn document(issuer: &str, token_path: &str, signing_algs: &[&str]) -> Value {
    let base = issuer.trim_end_matches('/');
    json!({
        "issuer": issuer,
        "token_endpoint": format!("{base}{token_path}"),
        "jwks_uri": format!("{base}/.well-known/jwks.json"),
        "grant_types_supported": GrantType::ALL.iter().map(|g| g.as_str()).collect::<Vec<_>>(),
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "response_types_supported": [],
        "scopes_supported": [],
        "access_token_signing_alg_values_supported": signing_algs,
    })
}
