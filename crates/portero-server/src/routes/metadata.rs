//! JWKS (RFC 7517) and authorization-server metadata (RFC 8414).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use portero_core::metadata::{EndpointPaths, document};

use crate::state::AppState;
use crate::{INTROSPECTION_PATH, REVOCATION_PATH};

pub async fn jwks(State(state): State<AppState>) -> Response {
    // A key rotated on another node is published here at once, not at the next maintenance tick.
    if let Err(error) = state.reload_keys().await {
        tracing::warn!(%error, "could not refresh signing keys for the JWKS; serving the loaded set");
    }
    let mut response = Json(state.ctx.keys.current().jwks()).into_response();
    // Short enough that a rotation's pre-published key reaches caches before it signs.
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    response
}

pub async fn authorization_server(State(state): State<AppState>) -> Response {
    let token_path = state.config.token_paths.first().map(|p| p.path.as_str()).unwrap_or("/oauth2/token");
    let keys = state.ctx.keys.current();
    let paths = EndpointPaths { token: token_path, introspection: INTROSPECTION_PATH, revocation: REVOCATION_PATH };
    Json(document(&state.ctx.policy.issuer, &paths, &keys.algorithms())).into_response()
}
