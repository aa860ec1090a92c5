//! The wire types Portero's token server, its resource-server verifier (`portero-verify`) and
//! its token client (`portero-client`) share, defined once:
//!
//! - [`AccessTokenClaims`]: the RFC 9068 access token Portero issues;
//! - [`ErrorCode`]: the OAuth error codes of RFC 6749, 6750, 7009 and 8707, and
//!   [`AnyErrorCode`] for what a peer may send;
//! - [`TokenResponse`]: the RFC 6749 §5.1 success answer;
//! - [`GrantType`]: the grants Portero serves;
//! - [`jws`]: one compact-JWS verification (RS256, PS256, ES256, EdDSA; never `none`, HMAC or
//!   `crit`);
//! - [`dpop`]: DPoP proofs (RFC 9449), checked alike by the token endpoint and the verifier.
//!
//! This crate depends on no other Portero crate and exposes no cryptography library's types.
//!
//! ```
//! use portero_wire::{AccessTokenClaims, Audience, ErrorCode, GrantType};
//!
//! let claims: AccessTokenClaims = serde_json::from_str(
//!     r#"{"iss":"https://auth.example","sub":"merchant-42","aud":["https://api.example"],
//!         "exp":1700000300,"iat":1700000000,"scope":"post:charges"}"#,
//! )?;
//! assert!(claims.has_audience("https://api.example"));
//! assert!(claims.has_scope("post:charges"));
//! assert_eq!(ErrorCode::parse("invalid_grant"), Some(ErrorCode::InvalidGrant));
//! assert_eq!(GrantType::parse("client_credentials"), Some(GrantType::ClientCredentials));
//! # let _ = Audience::One(String::new());
//! # Ok::<(), serde_json::Error>(())
//! ```

#![warn(missing_docs)]
#![warn(clippy::unwrap_used)]

mod claims;
pub mod dpop;
mod error;
mod grant;
pub mod jws;
mod token;

pub use claims::{AccessTokenClaims, Audience, Confirmation, TOKEN_VERSION};
pub use error::{AnyErrorCode, ErrorCode, UnknownErrorCode};
pub use grant::GrantType;
pub use token::TokenResponse;
