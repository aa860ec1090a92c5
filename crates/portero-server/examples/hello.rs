//! The ceiling of HTTP on this machine, for bench/run (issue 15): the same serving stack as
//! `portero serve` (axum behind axum-server, tokio's multi-thread runtime) answering every
//! `POST /oauth2/token` with one fixed 784-byte JSON body, the size of an ES256 token response.
//! Portero's client-credentials rate is compared with this one, measured in the same run.
//!
//! `cargo run --release -p portero-server --example hello -- 127.0.0.1:8090`

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::post;

/// A token response's shape, padded to 784 bytes (checked at start).
const BODY: &str = concat!(
    r#"{"access_token":"eyJhbGciOiJFUzI1NiIsImtpZCI6ImhlbGxvIiwidHlwIjoiYXQrand0In0."#,
    r#"eyJpc3MiOiJodHRwOi8vMTI3LjAuMC4xOjgwOTAiLCJzdWIiOiJiZW5jaCIsImF1ZCI6Imh0dHA6Ly8xMjcuMC4wLjE6ODA5MCIsImNsaWVudF9pZCI6ImJlbmNoIiwic2NvcGUiOiJhcGkiLCJpYXQiOjE3NjQ3NjAwMDAsImV4cCI6MTc2NDc2MzYwMCwianRpIjoiMDE5MzAwMDAtMDAwMC03MDAwLTgwMDAtMDAwMDAwMDAwMDAwIn0."#,
    r#"MEUCIQDhello0000000000000000000000000000000000000000000AiAhello000000000000000000000000000000000000000000000"#,
    r#"","token_type":"Bearer","expires_in":3600,"scope":"api","issued_token_type":"urn:ietf:params:oauth:token-type:access_token","#,
);

fn body() -> String {
    let mut body = BODY.to_owned();
    let padding = 784 - body.len() - r#""p":""}"#.len();
    body.push_str(r#""p":""#);
    body.push_str(&"x".repeat(padding));
    body.push_str(r#""}"#);
    body
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let listen = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:8090".to_owned());
    let body: &'static str = Box::leak(body().into_boxed_str());
    assert_eq!(body.len(), 784);
    let token = move || async move {
        ([(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "no-store")], body).into_response()
    };
    let app = Router::new().route("/oauth2/token", post(token));
    let listener = std::net::TcpListener::bind(&listen)?;
    listener.set_nonblocking(true)?;
    axum_server::from_tcp(listener)?.serve(app.into_make_service()).await
}
