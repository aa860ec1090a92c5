//! JWKS (RFC 7517) and authorization-server metadata (RFC 8414).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::state::AppState;

pub async fn jwks(State(state): State<AppState>) -> Response {
    let mut response = Json(state.ctx.keys.current().jwks()).into_response();
    // Short enough that a rotation's pre-published key reaches caches before it signs.
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}

pub async fn authorization_server(State(state): State<AppState>) -> Response {
    let token_path = state
        .config
        .token_paths
        .first()
        .map(|p| p.path.as_str())
        .unwrap_or("/oauth2/token");
    let keys = state.ctx.keys.current();
    Json(portero_core::metadata::document(
        &state.ctx.policy.issuer,
        token_path,
        &keys.algorithms(),
    ))
    .into_response()
}
