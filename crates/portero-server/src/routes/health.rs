//! `/healthz`: the process answers. `/readyz`: and its database does too. `/metrics`: Prometheus.

use axum::extract::State;
use axum::http::StatusCode;

use crate::state::AppState;

pub async fn healthz() -> &'static str {
    "ok"
}

/// A database slower than this to answer `SELECT 1` is not ready.
const READY_WITHIN: std::time::Duration = std::time::Duration::from_secs(2);

pub async fn readyz(State(state): State<AppState>) -> (StatusCode, &'static str) {
    match tokio::time::timeout(READY_WITHIN, state.ctx.store.ping()).await {
        Ok(Ok(())) => (StatusCode::OK, "ready"),
        _ => (StatusCode::SERVICE_UNAVAILABLE, "database unavailable"),
    }
}

/// Prometheus text exposition of this node's counters and histograms.
pub async fn metrics(State(state): State<AppState>) -> impl axum::response::IntoResponse {
    metrics::gauge!("portero_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    metrics::gauge!("portero_audit_events_dropped").set(state.ctx.audit.dropped() as f64);
    metrics::gauge!("portero_audit_backlog").set(state.ctx.audit.backlog() as f64);
    let body = crate::metrics::handle().map(|h| h.render()).unwrap_or_default();
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}
