//! The resource-server side of Portero: verify access tokens and enforce scopes and tenants.
//!
//! ```no_run
//! use std::sync::Arc;
//! use axum::{Router, routing::post};
//! use portero_verify::{BearerLayer, Claims, Tenant, Verifier, VerifyError};
//!
//! async fn create_charge(claims: Claims, Tenant(tenant): Tenant) -> Result<String, VerifyError> {
//!     claims.require_scopes(&["post:charges"])?;
//!     Ok(format!("charge for {tenant}"))
//! }
//!
//! let verifier = Arc::new(Verifier::with_jwks(
//!     "http://127.0.0.1:8080/.well-known/jwks.json",
//!     "http://127.0.0.1:8080",
//!     "https://api.example",
//! ));
//! let app: Router = Router::new().route("/v1/charges", post(create_charge)).layer(BearerLayer::new(verifier));
//! ```

#![warn(clippy::unwrap_used)]

mod claims;
mod error;
pub mod jwks;
mod layer;
mod verifier;

pub use claims::Claims;
pub use error::VerifyError;
pub use jwks::JwksCache;
pub use layer::{BearerLayer, BearerService, TENANT_HEADER, Tenant, authenticate, bearer_token};
pub use verifier::Verifier;
