//! Form body + optional Authorization header → typed token request: never panic, and a typed
//! request always carries a client id and the parameters its grant needs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portero_core::params::{FieldLimits, Params};
use portero_core::request::{Grant, TokenRequest};

fuzz_target!(|data: &[u8]| {
    let (header, body) = match data.iter().position(|b| *b == b'\n') {
        Some(at) => (std::str::from_utf8(&data[..at]).ok(), &data[at + 1..]),
        None => (None, data),
    };
    let Ok(params) = Params::from_form(body, &FieldLimits::default()) else { return };
    let Ok(request) = TokenRequest::parse(&params, header) else { return };
    assert!(!request.client.client_id.is_empty());
    match request.grant {
        Grant::Password { username, password } => assert!(!username.is_empty() && !password.0.is_empty()),
        Grant::RefreshToken { refresh_token } => assert!(!refresh_token.0.is_empty()),
        Grant::ClientCredentials => {}
    }
});
