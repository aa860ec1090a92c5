#![doc = include_str!("../README.md")]
#![warn(missing_docs)]
#![warn(clippy::unwrap_used)]

mod cache;
mod dialect;
mod error;
mod signing;

pub use cache::TokenClient;
pub use dialect::{ClientConfig, Dialect, Grant, PAYME_API_VERSION, TokenAnswer};
pub use error::ClientError;
pub use portero_wire::{AnyErrorCode, ErrorCode, TokenResponse};
pub use signing::SigningKey;
