//! Runs the example payments API.
//!
//! `PORTERO_URL` (default `http://127.0.0.1:8080`) is the token service whose JWKS is trusted
//! and whose URL is the expected issuer; `PAYMENTS_AUDIENCE` (default `PORTERO_URL`) is this
//! API's audience; `PAYMENTS_LISTEN` (default `127.0.0.1:8081`).

use std::sync::Arc;

use portero_verify::Verifier;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_writer(std::io::stderr).init();
    let portero = std::env::var("PORTERO_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".into());
    let audience = std::env::var("PAYMENTS_AUDIENCE").unwrap_or_else(|_| portero.clone());
    let listen = std::env::var("PAYMENTS_LISTEN").unwrap_or_else(|_| "127.0.0.1:8081".into());
    let verifier =
        Verifier::builder(portero.clone(), audience).jwks_url(format!("{portero}/.well-known/jwks.json")).build()?;
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    tracing::info!(%listen, issuer = %portero, "payments API listening");
    axum::serve(listener, payments_api::app(Arc::new(verifier))).await?;
    Ok(())
}
