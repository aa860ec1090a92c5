//! `/healthz`: the process answers. `/readyz`: and its database does too. `/metrics`: Prometheus.

use axum::extract::State;
use axum::http::StatusCode;

use crate::state::AppState;

pub async fn healthz() -> &'static str {
    "ok"
}

pub async fn readyz(State(state): State<AppState>) -> (StatusCode, &'static str) {
    match state.ctx.store.ping().await {
        Ok(()) => (StatusCode::OK, "ready"),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "database unavailable"),
    }
}

/// Prometheus text exposition of this node's counters and histograms.
pub async fn metrics() -> impl axum::response::IntoResponse {
    let body = crate::metrics::handle().map(|h| h.render()).unwrap_or_default();
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}
