//! Portero's HTTP server: the token endpoint on every configured path, JWKS, RFC 8414
//! metadata and health checks, as an axum `Router` tests can drive without a socket.

#![warn(clippy::unwrap_used)]

/// The admin operations, as `portero_core::admin` defines them for the CLI and this API alike.
pub use portero_core::admin;
pub mod config;
pub mod extract;
pub mod metrics;
pub mod remote_keys;
pub mod respond;
pub mod routes;
pub mod state;
pub mod tls;
pub mod upstream;
pub mod waiting;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, header};
use axum::routing::{delete, get, post, put};
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::timeout::RequestBodyDeadlineLayer;
use tower_http::trace::TraceLayer;

pub use config::{ServerConfig, TokenPath, Upstream};
pub use state::{AppState, StartError, resolve_master_key};

pub const INTROSPECTION_PATH: &str = "/oauth2/introspect";
pub const REVOCATION_PATH: &str = "/oauth2/revoke";

/// The whole HTTP surface.
pub fn app(state: AppState) -> Router {
    let mut router = Router::new()
        .route("/.well-known/jwks.json", get(routes::metadata::jwks))
        .route("/.well-known/oauth-authorization-server", get(routes::metadata::authorization_server))
        .route(INTROSPECTION_PATH, post(routes::lifecycle::introspect))
        .route(REVOCATION_PATH, post(routes::lifecycle::revoke))
        .merge(admin_routes(&state))
        .route("/healthz", get(routes::health::healthz))
        .route("/readyz", get(routes::health::readyz));
    if state.config.metrics_on_main {
        router = router.route("/metrics", get(metrics));
    }
    for token_path in &state.config.token_paths {
        let limits = token_path.limits.clone();
        router = router.route(
            &token_path.path,
            post(move |state, request| routes::token::token(state, limits.clone(), request))
                .fallback(routes::token::post_only),
        );
    }
    router
        .layer(RequestBodyDeadlineLayer::new(state.config.read_timeout))
        .layer(CatchPanicLayer::custom(answer_panic))
        .layer(TraceLayer::new_for_http().make_span_with(request_span::<Body>))
        .layer(SetSensitiveRequestHeadersLayer::new([header::AUTHORIZATION]))
        .with_state(state)
}

/// The admin API, each route behind the guard that checks the token before anything reads the
/// body, throttles wrong tokens and audits the call.
fn admin_routes(state: &AppState) -> Router<AppState> {
    use routes::admin;
    Router::new()
        .route("/admin/tenants", get(admin::list_tenants).post(admin::create_tenant))
        .route("/admin/tenants/{id}", delete(admin::delete_tenant))
        .route("/admin/clients", get(admin::list_clients).post(admin::create_client))
        .route("/admin/clients/{id}", get(admin::show_client).patch(admin::update_client).delete(admin::delete_client))
        .route("/admin/clients/{id}/secret", post(admin::rotate_client_secret))
        .route("/admin/clients/{id}/disable", post(admin::disable_client))
        .route("/admin/clients/{id}/enable", post(admin::enable_client))
        .route("/admin/users", get(admin::list_users).post(admin::create_user))
        .route("/admin/users/{id}", delete(admin::delete_user))
        .route("/admin/users/{id}/password", put(admin::set_password))
        .route("/admin/users/{id}/disable", post(admin::disable_user))
        .route("/admin/users/{id}/enable", post(admin::enable_user))
        .route("/admin/revocations", post(admin::revoke_tokens))
        .route("/admin/keys", get(admin::list_keys).post(admin::rotate_key))
        .route("/admin/keys/{kid}", delete(admin::revoke_key))
        .route("/admin/openapi.json", get(admin::openapi))
        .route("/admin/import", post(routes::import::import))
        .route("/admin/import/status", get(routes::import::import_status))
        // Every admin answer is JSON: an unknown path or method too (after the guard).
        .route("/admin/{*rest}", axum::routing::any(admin::no_such_route))
        .method_not_allowed_fallback(admin::method_not_allowed)
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), admin::guard))
}

/// `/metrics` alone, for a listener of its own (`--metrics-listen`).
pub fn metrics_app(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .layer(TraceLayer::new_for_http().make_span_with(request_span::<Body>))
        .layer(SetSensitiveRequestHeadersLayer::new([header::AUTHORIZATION]))
        .with_state(state)
}

/// Prometheus metrics, behind `metrics_token` when one is set.
async fn metrics(
    axum::extract::State(state): axum::extract::State<AppState>,
    headers: axum::http::HeaderMap,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    if let Some(token) = &state.config.metrics_token
        && !extract::bearer_is(&headers, &state::digest(token))
    {
        let challenge = [(header::WWW_AUTHENTICATE, "Bearer realm=\"portero-metrics\"")];
        return (axum::http::StatusCode::UNAUTHORIZED, challenge, "a valid metrics token is required\n")
            .into_response();
    }
    routes::health::metrics(axum::extract::State(state)).await.into_response()
}

/// Serves `metrics_app(state)` over plain HTTP on `listener`, with the main listener's limits on
/// request heads, until the task is dropped.
pub async fn serve_metrics(listener: TcpListener, state: AppState) -> std::io::Result<()> {
    let read_timeout = state.config.read_timeout;
    let mut server = axum_server::from_tcp(listener.into_std()?)?.first_request_timeout(read_timeout);
    server
        .http_builder()
        .http1()
        .header_read_timeout(read_timeout)
        .max_buf_size(MAX_HEAD_BYTES)
        .max_headers(MAX_HEADERS);
    server.serve(metrics_app(state).into_make_service()).await
}

/// The span every request's log lines carry: method, path and the names of the query
/// parameters, never the query string itself. Clients do send credentials there (they are
/// refused, but the span is made before that), so a value must not reach a log at any level.
fn request_span<B>(request: &Request<B>) -> tracing::Span {
    let span = tracing::debug_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        query = tracing::field::Empty,
        version = ?request.version(),
    );
    if let Some(query) = request.uri().query() {
        span.record("query", tracing::field::display(QueryNames(query)));
    }
    span
}

/// Displays the parameter names of a query string (`client_secret,password`). A name that is
/// not a short plain word is shown as `?`: it may be a value sent without a name.
struct QueryNames<'a>(&'a str);

impl std::fmt::Display for QueryNames<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const MOST: usize = 12;
        let plain = |name: &str| {
            !name.is_empty()
                && name.len() <= 32
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        };
        let pairs: Vec<&str> = self.0.split('&').filter(|pair| !pair.is_empty()).collect();
        for (i, pair) in pairs.iter().take(MOST).enumerate() {
            let name = match pair.split_once('=') {
                Some((name, _)) if plain(name) => name,
                _ => "?",
            };
            write!(f, "{}{name}", if i == 0 { "" } else { "," })?;
        }
        if pairs.len() > MOST {
            write!(f, ",+{}", pairs.len() - MOST)?;
        }
        Ok(())
    }
}

/// A handler that panicked: 500 `server_error`. The panic's message is not logged: it may quote
/// the request (the process's panic hook logs where it happened).
fn answer_panic(_payload: Box<dyn std::any::Any + Send + 'static>) -> axum::response::Response {
    tracing::error!("a request handler panicked; answered 500");
    let error = portero_core::OAuthError::server_error("handler panicked");
    respond::error(&error, &portero_core::dialect::Dialect::Standard, "en", None)
}

pub use tls::TlsConfig;

/// Largest request head (request line and headers) a connection may send: larger gets 431.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Most header fields in one request.
const MAX_HEADERS: usize = 64;

/// How long a draining node waits for in-flight requests before it closes what is left.
const DRAIN_LIMIT: Duration = Duration::from_secs(30);

/// Serves `app(state)` on `listener` (over TLS when `tls` is given) until `shutdown` resolves,
/// then stops accepting and drains in-flight requests.
///
/// Every connection must deliver its request headers within `config.read_timeout` (a slowloris
/// client is cut off), and the body within the same time once the headers are in.
///
/// Every `maintenance` interval the node re-reads the signing keys (a rotation made by the CLI
/// or another node shows up without a restart), retires keys no live token can carry, and
/// purges expired revocations and refresh tokens.
pub async fn run(
    listener: TcpListener,
    tls: Option<TlsConfig>,
    state: AppState,
    maintenance: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let maintenance_task = tokio::spawn(maintain_forever(state.clone(), maintenance));
    let read_timeout = state.config.read_timeout;
    let handle = axum_server::Handle::new();
    let drain = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        drain.graceful_shutdown(Some(DRAIN_LIMIT));
    });
    let audit = state.ctx.audit.clone();
    let make_service = app(state).into_make_service_with_connect_info::<SocketAddr>();
    let mut server = axum_server::from_tcp(listener.into_std()?)?.handle(handle).first_request_timeout(read_timeout);
    let http = server.http_builder();
    http.http1().header_read_timeout(read_timeout).max_buf_size(MAX_HEAD_BYTES).max_headers(MAX_HEADERS);
    http.http2().max_header_list_size(MAX_HEAD_BYTES as u32);
    let served = match tls {
        Some(tls) => {
            let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(tls).handshake_timeout(read_timeout);
            server.acceptor(acceptor).serve(make_service).await
        }
        None => server.serve(make_service).await,
    };
    maintenance_task.abort();
    audit.flush_and_stop().await;
    served
}

async fn maintain_forever(state: AppState, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tick.tick().await;
        if let Err(error) = state.maintain(routes::token::unix_now()).await {
            tracing::warn!(%error, "maintenance failed; will retry");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::QueryNames;

    #[test]
    fn query_names_show_plain_names_only() {
        let names = |query: &str| QueryNames(query).to_string();
        assert_eq!(names("client_secret=s3cret&password=pw&grant_type=x"), "client_secret,password,grant_type");
        assert_eq!(names("s3cret-value&a%20b=1&=v&&ok="), "?,?,?,ok");
        assert_eq!(names(&"a=1&".repeat(14)), "a,a,a,a,a,a,a,a,a,a,a,a,+2");
    }
}
