//! A token client: gets access tokens in any of the four dialects Portero serves, caches them,
//! renews them before they expire (from the `expires_in` it was given, never a fixed lifetime),
//! uses a refresh token when it has one, and keeps one request in flight however many tasks wait.
//!
//! ```no_run
//! # async fn demo() -> Result<(), portero_client::ClientError> {
//! use portero_client::{ClientConfig, Dialect, TokenClient};
//! let client = TokenClient::new(ClientConfig::client_credentials(
//!     "http://127.0.0.1:8080/idp/oauth2/token", "zertiban", "secret", Dialect::Basic,
//! ));
//! let token = client.access_token().await?; // cached until shortly before it expires
//! # Ok(()) }
//! ```

#![warn(clippy::unwrap_used)]

mod cache;
mod dialect;
mod error;

pub use cache::TokenClient;
pub use dialect::{ClientConfig, Dialect, Grant, PAYME_API_VERSION, TokenAnswer};
pub use error::ClientError;
