//! Portero's HTTP server: the token endpoint on every configured path, JWKS, RFC 8414
//! metadata and health checks, as an axum `Router` tests can drive without a socket.

#![warn(clippy::unwrap_used)]

pub mod config;
pub mod extract;
pub mod respond;
pub mod routes;
pub mod state;

use std::future::Future;
use std::time::Duration;

use axum::Router;
use axum::http::header;
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::trace::TraceLayer;

pub use config::{ServerConfig, TokenPath};
pub use state::{AppState, StartError, resolve_master_key};

/// The whole HTTP surface.
pub fn app(state: AppState) -> Router {
    let mut router = Router::new()
        .route("/.well-known/jwks.json", get(routes::metadata::jwks))
        .route(
            "/.well-known/oauth-authorization-server",
            get(routes::metadata::authorization_server),
        )
        .route("/healthz", get(routes::health::healthz))
        .route("/readyz", get(routes::health::readyz));
    for token_path in &state.config.token_paths {
        let limits = token_path.limits.clone();
        router = router.route(
            &token_path.path,
            post(move |state, request| routes::token::token(state, limits.clone(), request)),
        );
    }
    router
        .layer(CatchPanicLayer::new())
        .layer(TraceLayer::new_for_http())
        .layer(SetSensitiveRequestHeadersLayer::new([
            header::AUTHORIZATION,
        ]))
        .with_state(state)
}

/// Serves `app(state)` on `listener` until `shutdown` resolves, then drains in-flight requests.
/// Keys are re-read every `key_reload` so a rotation made by the CLI or another node shows up.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    key_reload: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let reloader = state.clone();
    let reload_task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(key_reload);
        tick.tick().await;
        loop {
            tick.tick().await;
            if let Err(error) = reloader.reload_keys().await {
                tracing::warn!(%error, "could not reload signing keys; keeping the current ones");
            }
        }
    });
    let served = axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown)
        .await;
    reload_task.abort();
    served
}
