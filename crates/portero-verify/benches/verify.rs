//! Verifications per second on one core: `portero-verify` against the raw aws-lc signature
//! check it rests on, for the same RS256 / ES256 / EdDSA tokens.
//!
//! `cargo bench -p portero-verify` (criterion prints time per verification; 1/time = rate).

use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::jwk::JwkSet;
use portero_core::keys::{Alg, KeySet, MasterKey, SigningKey};
use portero_verify::{JwksCache, Verifier};
use serde_json::json;

fn setup(alg: Alg) -> (KeySet, String, JwkSet) {
    let master = MasterKey::generate();
    let keys = KeySet::load(&[SigningKey::generate(alg, &master, 0, 0).unwrap()], &master).unwrap();
    let claims = json!({
        "iss": "https://auth.example", "sub": "merchant-42", "aud": "https://api.example",
        "exp": 4_000_000_000i64, "iat": 1_700_000_000i64, "jti": "5a3c7e1e-4c8e-4f6e-9a57-0d1e2f3a4b5c",
        "client_id": "merchant-42", "scope": "post:charges delete:charges create:token",
        "tenants": ["0f8fad5b-d9cb-469f-a165-70867728950e"], "token_use": "access", "version": 2,
        "auth_time": 1_700_000_000i64,
    });
    let token = keys.active(1).unwrap().sign_jwt(&claims).unwrap();
    let jwks: JwkSet = serde_json::from_value(keys.jwks()).unwrap();
    (keys, token, jwks)
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    for (alg, name) in [(Alg::Rs256, "RS256"), (Alg::Es256, "ES256"), (Alg::EdDsa, "EdDSA")] {
        let (keys, token, jwks) = setup(alg);
        let verifier = Verifier::from_cache(JwksCache::from_set(&jwks), "https://auth.example", "https://api.example");
        assert!(runtime.block_on(verifier.verify(&token)).is_ok());
        c.bench_function(&format!("portero-verify {name}"), |b| {
            b.iter(|| runtime.block_on(verifier.verify(std::hint::black_box(&token))).unwrap())
        });
        // The floor: the signature check alone (what `openssl speed` measures), via aws-lc.
        c.bench_function(&format!("raw signature check {name}"), |b| {
            b.iter(|| keys.verify(std::hint::black_box(&token)).unwrap())
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
