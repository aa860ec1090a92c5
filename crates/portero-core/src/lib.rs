//! Portero's OAuth 2.0 protocol core: no HTTP, no SQL. The server feeds it [`TokenInput`]s
//! and a [`Store`]; it answers with RFC 6749 responses and errors.
//!
//! [`TokenInput`]: token_endpoint::TokenInput
//! [`Store`]: store::Store

#![warn(clippy::unwrap_used)]

pub mod admin;
mod argon2_pool;
pub mod audience;
pub mod audit;
pub mod audit_event;
pub mod bounded_map;
pub mod claims;
pub mod client_auth;
pub mod client_cache;
pub mod clock;
pub mod context;
pub mod dialect;
pub mod dpop;
pub mod dpop_nonce;
pub mod error;
pub mod grant;
pub mod import;
pub mod introspect;
pub mod keys;
pub mod legacy_hash;
pub mod metadata;
pub mod mint;
pub mod mtls;
pub mod params;
mod password_hash;
pub mod pending;
pub mod registration;
mod rehash;
pub mod remote_keys;
pub mod request;
pub mod revoke;
pub mod scope;
pub mod secret;
pub mod single_flight;
pub mod store;
pub mod successor;
pub mod throttle;
pub mod token_endpoint;

pub use error::{ErrorCode, OAuthError};
