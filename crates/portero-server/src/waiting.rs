//! What `serve` answers while it waits for its database at start: `/healthz` is up, `/readyz`
//! and every other path are `503 temporarily_unavailable` with `Retry-After: 1`, so a load
//! balancer keeps the node out and a client retries.

use std::future::Future;
use std::time::Duration;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::TlsConfig;

/// The router of a node whose database is not reachable yet.
pub fn waiting_app() -> Router {
    Router::new()
        .route("/healthz", get(crate::routes::health::healthz))
        .route("/readyz", get(|| async { (StatusCode::SERVICE_UNAVAILABLE, "database unavailable") }))
        .fallback(unavailable)
}

async fn unavailable() -> impl IntoResponse {
    let body = serde_json::json!({
        "error": "temporarily_unavailable",
        "error_description": "the database is not reachable yet",
    });
    let headers = [(header::RETRY_AFTER, "1"), (header::CACHE_CONTROL, "no-store")];
    (StatusCode::SERVICE_UNAVAILABLE, headers, axum::Json(body))
}

/// Serves `waiting_app` on `listener` (HTTPS with `tls`) until `stop` completes, then lets
/// requests in flight finish (at most 1 s more).
pub async fn serve_waiting(
    listener: std::net::TcpListener,
    tls: Option<TlsConfig>,
    stop: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let handle = axum_server::Handle::new();
    let drain = handle.clone();
    tokio::spawn(async move {
        stop.await;
        drain.graceful_shutdown(Some(Duration::from_secs(1)));
    });
    let server = axum_server::from_tcp(listener)?.handle(handle);
    let service = waiting_app().into_make_service();
    match tls {
        Some(tls) => server.acceptor(axum_server::tls_rustls::RustlsAcceptor::new(tls)).serve(service).await,
        None => server.serve(service).await,
    }
}
