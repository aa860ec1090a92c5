//! Verifications per second on one core: `portero-verify` against the raw aws-lc signature
//! check it rests on, for the same RS256 / ES256 / EdDSA tokens.
//!
//! `cargo bench -p portero-verify` (criterion prints time per verification; 1/time = rate).

use criterion::{Criterion, criterion_group, criterion_main};
use portero_core::keys::{Alg, KeySet, MasterKey, SigningKey};
use portero_verify::{Jwks, Verifier};
use serde_json::json;

fn setup(alg: Alg) -> (KeySet, String, Jwks) {
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
    let jwks = Jwks::from_json(&keys.jwks()).unwrap();
    (keys, token, jwks)
}

/// The public key and signature of one token, ready for a bare aws-lc verification.
struct RawCheck {
    algorithm: &'static dyn aws_lc_rs::signature::VerificationAlgorithm,
    public_key: Vec<u8>,
    signature: Vec<u8>,
}

impl RawCheck {
    fn new(keys: &KeySet, token: &str) -> Self {
        use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, ED25519, RSA_PKCS1_2048_8192_SHA256};
        use base64::Engine;
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s).unwrap();
        let jwk = &keys.jwks()["keys"][0];
        let (algorithm, public_key): (&'static dyn aws_lc_rs::signature::VerificationAlgorithm, Vec<u8>) =
            match jwk["kty"].as_str().unwrap() {
                "RSA" => (
                    &RSA_PKCS1_2048_8192_SHA256,
                    rsa_public_key_der(&b64(jwk["n"].as_str().unwrap()), &b64(jwk["e"].as_str().unwrap())),
                ),
                "EC" => {
                    let mut point = vec![4u8];
                    point.extend(b64(jwk["x"].as_str().unwrap()));
                    point.extend(b64(jwk["y"].as_str().unwrap()));
                    (&ECDSA_P256_SHA256_FIXED, point)
                }
                _ => (&ED25519, b64(jwk["x"].as_str().unwrap())),
            };
        let signature = b64(token.rsplit_once('.').unwrap().1);
        Self { algorithm, public_key, signature }
    }

    fn verify(&self, token: &str) {
        let signed = token.rsplit_once('.').unwrap().0;
        aws_lc_rs::signature::UnparsedPublicKey::new(self.algorithm, &self.public_key)
            .verify(signed.as_bytes(), &self.signature)
            .unwrap();
    }
}

/// DER of PKCS#1 `RSAPublicKey { n, e }` (what aws-lc takes for RSA public keys).
fn rsa_public_key_der(n: &[u8], e: &[u8]) -> Vec<u8> {
    fn integer(bytes: &[u8]) -> Vec<u8> {
        let mut value = bytes.to_vec();
        if value[0] & 0x80 != 0 {
            value.insert(0, 0);
        }
        let mut out = vec![0x02];
        out.extend(length(value.len()));
        out.extend(value);
        out
    }
    fn length(len: usize) -> Vec<u8> {
        match len {
            0..=127 => vec![len as u8],
            128..=255 => vec![0x81, len as u8],
            _ => vec![0x82, (len >> 8) as u8, len as u8],
        }
    }
    let body = [integer(n), integer(e)].concat();
    let mut out = vec![0x30];
    out.extend(length(body.len()));
    out.extend(body);
    out
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    for (alg, name) in [(Alg::Rs256, "RS256"), (Alg::Es256, "ES256"), (Alg::EdDsa, "EdDSA")] {
        let (keys, token, jwks) = setup(alg);
        let verifier = Verifier::builder("https://auth.example", "https://api.example").keys(jwks).build().unwrap();
        assert!(runtime.block_on(verifier.verify(&token)).is_ok());
        c.bench_function(&format!("portero-verify {name}"), |b| {
            b.iter(|| runtime.block_on(verifier.verify(std::hint::black_box(&token))).unwrap())
        });
        // The ceiling: the signature check alone (what `openssl speed` measures), with aws-lc
        // and the public key taken from the JWKS; no JSON, no claim checks.
        let raw = RawCheck::new(&keys, &token);
        c.bench_function(&format!("raw signature check {name}"), |b| {
            b.iter(|| raw.verify(std::hint::black_box(&token)))
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
