//! Integration tests: a real `portero` server on loopback over a real SQLite file, driven by
//! independent clients (reqwest, curl, Python requests, the `oauth2` crate) and checked with an
//! independent JWT implementation (jsonwebtoken) against the served JWKS.
//!
//! One test binary for the whole crate (linking is the slow part of a test build).

mod admin_api;
mod audit;
mod auth_methods;
mod burst;
mod dpop;
mod errors;
mod harness;
mod hostile;
mod import;
mod interop;
mod legacy;
mod lifecycle;
mod long_tokens;
mod openapi;
mod operator;
mod private_key_jwt;
mod refresh;
mod seeds;
mod throttle;
mod timing;
mod upstream;
