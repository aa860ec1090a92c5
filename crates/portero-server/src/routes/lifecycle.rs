//! RFC 7662 introspection and RFC 7009 revocation.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::Request;
use axum::response::{IntoResponse, Response};
use portero_core::audit::AuditEvent;
use portero_core::dialect::Dialect;
use portero_core::error::OAuthError;
use portero_core::token_endpoint::TokenInput;

use crate::extract::{Rejected, token_input};
use crate::respond;
use crate::routes::token::unix_now;
use crate::state::AppState;

async fn read(state: &AppState, request: Request<Body>) -> Result<TokenInput, Response> {
    let limits = portero_core::params::FieldLimits::token_lifecycle();
    // Whatever the configured body limit, room for the longest token Portero issues.
    let max_body = state.config.max_body_bytes.max(2 * portero_core::params::MAX_TOKEN_CHARS);
    token_input(request, &limits, max_body, None, &state.config).await.map_err(
        |Rejected { error, status_override, .. }| {
            respond::error(&error, &Dialect::Standard, &state.ctx.policy.default_locale, status_override)
        },
    )
}

async fn within_deadline<T>(
    state: &AppState,
    work: impl Future<Output = Result<T, OAuthError>>,
) -> Result<T, OAuthError> {
    tokio::time::timeout(state.config.request_timeout, work)
        .await
        .unwrap_or_else(|_| Err(OAuthError::temporarily_unavailable("request deadline passed")))
}

fn refused(state: &AppState, endpoint: &str, input: &TokenInput, error: &OAuthError) -> Response {
    tracing::info!(error = %error, "request refused");
    let mut event = AuditEvent::new(unix_now(), &format!("{endpoint}_refused"), error.code.as_str());
    event.source = input.source.map(|ip| ip.to_string());
    event.detail = error.detail.clone();
    state.ctx.audit.record(event);
    respond::error(error, &Dialect::Standard, &state.ctx.policy.default_locale, None)
}

pub async fn introspect(State(state): State<AppState>, request: Request<Body>) -> Response {
    let input = match read(&state, request).await {
        Ok(input) => input,
        Err(response) => return response,
    };
    match within_deadline(&state, portero_core::introspect::introspect(&state.ctx, &input, unix_now())).await {
        Ok(body) => respond::no_store(Json(body).into_response()),
        Err(error) => refused(&state, "introspection", &input, &error),
    }
}

pub async fn revoke(State(state): State<AppState>, request: Request<Body>) -> Response {
    let input = match read(&state, request).await {
        Ok(input) => input,
        Err(response) => return response,
    };
    match within_deadline(&state, portero_core::revoke::revoke(&state.ctx, &input, unix_now())).await {
        Ok(()) => respond::no_store(().into_response()),
        Err(error) => refused(&state, "revocation", &input, &error),
    }
}
