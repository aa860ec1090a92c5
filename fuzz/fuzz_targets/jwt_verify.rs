//! Untrusted JWTs against the resource-server verifier and the server's own verification:
//! never panic, and never accept a token not signed by the key.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use portero_core::keys::{Alg, KeySet, MasterKey, SigningKey};
use portero_verify::{Jwks, Verifier};

struct Fixture {
    keys: KeySet,
    verifier: Verifier,
    runtime: tokio::runtime::Runtime,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let master = MasterKey::generate();
        let keys = KeySet::load(&[SigningKey::generate(Alg::Es256, &master, 0, 0).unwrap()], &master).unwrap();
        let jwks = Jwks::from_json(&keys.jwks()).unwrap();
        let verifier = Verifier::builder("https://auth", "https://api").keys(jwks).build().unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        Fixture { keys, verifier, runtime }
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else { return };
    let f = fixture();
    // Random bytes cannot carry a valid P-256 signature by this key.
    assert!(f.keys.verify(token).is_none());
    assert!(f.runtime.block_on(f.verifier.verify(token)).is_err());
});
