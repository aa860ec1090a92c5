#![doc = include_str!("../README.md")]
#![warn(missing_docs)]
#![warn(clippy::unwrap_used)]

mod bearer;
mod claims;
mod dpop;
mod error;
#[cfg(feature = "reqwest")]
mod jwks;
#[cfg(feature = "axum")]
mod layer;
mod mtls;
mod verifier;

pub use bearer::{
    Presented, TENANT_HEADER, Tenant, authenticate, authenticate_request, authenticate_request_with_certificate,
    bearer_token, presented_token,
};
pub use claims::Claims;
pub use error::{BuildError, Rejection, VerifyError};
#[cfg(feature = "axum")]
pub use layer::{BearerLayer, BearerService};
pub use mtls::{PeerCertificate, check_certificate_binding};
pub use portero_wire::jws::{Jwks, JwsError, KeyError};
pub use portero_wire::{AccessTokenClaims, Audience};
pub use verifier::{Verifier, VerifierBuilder};

/// The wire types shared with the token service (claims, error codes, JWS verification).
pub use portero_wire as wire;
