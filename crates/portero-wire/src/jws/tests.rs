//! Tokens signed here with aws-lc for each algorithm, checked by the shared verification.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RSA_PKCS1_SHA256, RSA_PSS_SHA256,
    RsaKeyPair,
};
use serde_json::{Value, json};

use super::*;

enum TestKey {
    /// An RSA key pair and the algorithm it signs with (RS256 or PS256).
    Rsa(RsaKeyPair, Algorithm),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

impl TestKey {
    fn generate(alg: Algorithm) -> Self {
        let rng = SystemRandom::new();
        match alg {
            Algorithm::Rs256 | Algorithm::Ps256 => Self::Rsa(RsaKeyPair::generate(KeySize::Rsa2048).unwrap(), alg),
            Algorithm::Es256 => {
                let der = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
                Self::Ec(EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der.as_ref()).unwrap())
            }
            Algorithm::EdDsa => {
                let der = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
                Self::Ed(Ed25519KeyPair::from_pkcs8(der.as_ref()).unwrap())
            }
        }
    }

    fn alg(&self) -> Algorithm {
        match self {
            Self::Rsa(_, alg) => *alg,
            Self::Ec(_) => Algorithm::Es256,
            Self::Ed(_) => Algorithm::EdDsa,
        }
    }

    fn jwk(&self, kid: &str) -> Value {
        let mut jwk = match self {
            Self::Rsa(pair, _) => {
                let public = pair.public_key();
                json!({ "kty": "RSA", "n": b64(public.modulus().big_endian_without_leading_zero()),
                        "e": b64(public.exponent().big_endian_without_leading_zero()) })
            }
            Self::Ec(pair) => {
                let point = pair.public_key().as_ref();
                json!({ "kty": "EC", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..65]) })
            }
            Self::Ed(pair) => json!({ "kty": "OKP", "crv": "Ed25519", "x": b64(pair.public_key().as_ref()) }),
        };
        jwk["kid"] = kid.into();
        jwk["alg"] = self.alg().as_str().into();
        jwk["use"] = "sig".into();
        jwk
    }

    fn sign(&self, message: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match self {
            Self::Rsa(pair, alg) => {
                let mut signature = vec![0; pair.public_modulus_len()];
                let padding: &dyn aws_lc_rs::signature::RsaEncoding =
                    if *alg == Algorithm::Ps256 { &RSA_PSS_SHA256 } else { &RSA_PKCS1_SHA256 };
                pair.sign(padding, &rng, message, &mut signature).unwrap();
                signature
            }
            Self::Ec(pair) => pair.sign(&rng, message).unwrap().as_ref().to_vec(),
            Self::Ed(pair) => pair.sign(message).as_ref().to_vec(),
        }
    }

    /// A compact JWS with `header` over `payload`.
    fn token(&self, header: &Value, payload: &Value) -> String {
        let signed = format!("{}.{}", b64(header.to_string().as_bytes()), b64(payload.to_string().as_bytes()));
        let signature = b64(&self.sign(signed.as_bytes()));
        format!("{signed}.{signature}")
    }

    fn header(&self) -> Value {
        json!({ "alg": self.alg().as_str(), "kid": "k1", "typ": "at+jwt" })
    }
}

const ALGS: [Algorithm; 4] = [Algorithm::Rs256, Algorithm::Ps256, Algorithm::Es256, Algorithm::EdDsa];

fn keys(key: &TestKey) -> Jwks {
    Jwks::from_json(&json!({ "keys": [key.jwk("k1")] })).unwrap()
}

#[test]
fn a_good_token_verifies_for_each_algorithm() {
    for alg in ALGS {
        let key = TestKey::generate(alg);
        let jwks = keys(&key);
        let token = key.token(&key.header(), &json!({ "sub": "merchant-42" }));
        let jws = CompactJws::parse(&token).unwrap();
        assert_eq!(jws.header().alg, alg);
        assert_eq!(jws.header().kid.as_deref(), Some("k1"));
        assert_eq!(jws.header().typ.as_deref(), Some("at+jwt"));
        let public = jwks.get("k1").unwrap();
        assert_eq!(public.algorithm(), alg);
        let claims: Value = jws.verify_json(public).unwrap();
        assert_eq!(claims["sub"], "merchant-42", "{alg}");
    }
}

#[test]
fn none_and_hmac_and_unknown_algorithms_are_refused_before_any_key() {
    let payload = b64(br#"{"sub":"x"}"#);
    for alg in ["none", "HS256", "HS512", "RS512", "rs256", "ES256K"] {
        let header = b64(json!({ "alg": alg, "kid": "k1", "typ": "at+jwt" }).to_string().as_bytes());
        for signature in ["", "c2ln"] {
            let token = format!("{header}.{payload}.{signature}");
            assert_eq!(CompactJws::parse(&token).unwrap_err(), JwsError::UnsupportedAlgorithm(alg.into()), "{alg}");
        }
    }
}

#[test]
fn an_hs256_token_made_with_the_public_key_as_secret_is_refused() {
    use aws_lc_rs::hmac;
    let key = TestKey::generate(Algorithm::Rs256);
    let secret = serde_json::to_vec(&key.jwk("k1")).unwrap();
    let header = b64(br#"{"alg":"HS256","kid":"k1","typ":"at+jwt"}"#);
    let signed = format!("{header}.{}", b64(br#"{"sub":"x"}"#));
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &secret), signed.as_bytes());
    let token = format!("{signed}.{}", b64(tag.as_ref()));
    assert!(matches!(CompactJws::parse(&token), Err(JwsError::UnsupportedAlgorithm(_))));
}

#[test]
fn a_crit_header_is_refused_even_with_a_good_signature() {
    for alg in ALGS {
        let key = TestKey::generate(alg);
        for crit in [json!(["exp"]), json!([]), Value::Null] {
            let mut header = key.header();
            header["crit"] = crit.clone();
            let token = key.token(&header, &json!({ "sub": "x" }));
            assert_eq!(CompactJws::parse(&token).unwrap_err(), JwsError::CriticalHeader, "{alg} {crit}");
        }
    }
}

#[test]
fn a_wrong_key_or_another_algorithms_key_is_refused() {
    for alg in ALGS {
        let key = TestKey::generate(alg);
        let token = key.token(&key.header(), &json!({ "sub": "x" }));
        let jws = CompactJws::parse(&token).unwrap();
        let other = TestKey::generate(alg);
        assert_eq!(jws.verify(keys(&other).get("k1").unwrap()).unwrap_err(), JwsError::BadSignature, "{alg}");
        for different in ALGS.into_iter().filter(|a| *a != alg) {
            let foreign = TestKey::generate(different);
            let err = jws.verify(keys(&foreign).get("k1").unwrap()).unwrap_err();
            assert_eq!(err, JwsError::AlgorithmMismatch, "{alg} token, {different} key");
        }
    }
}

#[test]
fn a_tampered_payload_header_or_signature_is_refused() {
    for alg in ALGS {
        let key = TestKey::generate(alg);
        let jwks = keys(&key);
        let public = jwks.get("k1").unwrap();
        let token = key.token(&key.header(), &json!({ "sub": "x", "scope": "read" }));
        let (header, rest) = token.split_once('.').unwrap();
        let (_, signature) = rest.split_once('.').unwrap();
        let forged_payload = b64(br#"{"sub":"x","scope":"admin"}"#);
        let tampered = format!("{header}.{forged_payload}.{signature}");
        assert_eq!(CompactJws::parse(&tampered).unwrap().verify(public).unwrap_err(), JwsError::BadSignature);
        let other_header = b64(json!({ "alg": alg.as_str(), "kid": "k2" }).to_string().as_bytes());
        let swapped = format!("{other_header}.{rest}");
        assert_eq!(CompactJws::parse(&swapped).unwrap().verify(public).unwrap_err(), JwsError::BadSignature);
        let mut extended = token.clone();
        extended.push('A');
        assert!(CompactJws::parse(&extended).unwrap().verify(public).is_err());
        assert!(matches!(CompactJws::parse(&format!("{token}.x")), Err(JwsError::Malformed(_))));
        assert!(matches!(CompactJws::parse(header), Err(JwsError::Malformed(_))));
    }
}

#[test]
fn jwks_keep_only_usable_signature_keys() {
    let rsa = TestKey::generate(Algorithm::Rs256);
    let ec = TestKey::generate(Algorithm::Es256);
    let mut enc = ec.jwk("enc");
    enc["use"] = "enc".into();
    let mut lying = rsa.jwk("lying");
    lying["alg"] = "ES256".into();
    let mut no_alg = ec.jwk("no-alg");
    no_alg.as_object_mut().unwrap().remove("alg");
    let set = json!({ "keys": [
        rsa.jwk("rsa"), enc, lying, no_alg,
        { "kty": "oct", "kid": "hmac", "k": "c2VjcmV0" },
        { "kty": "EC", "crv": "P-384", "kid": "p384", "x": "AA", "y": "AA" },
        { "kty": "RSA", "n": "AQAB", "e": "AQAB" },
    ]});
    let jwks = Jwks::from_json(&set).unwrap();
    let mut kids: Vec<_> = jwks.kids().collect();
    kids.sort_unstable();
    assert_eq!(kids, ["no-alg", "rsa"]);
    assert_eq!(jwks.get("no-alg").unwrap().algorithm(), Algorithm::Es256);
    assert_eq!(Jwks::from_json(&json!({ "nokeys": [] })).unwrap_err(), KeyError::NotASet);
    assert_eq!(PublicKey::from_jwk(&json!({ "kty": "oct", "k": "AA" })).unwrap_err(), KeyError::Unsupported);
}

#[test]
fn an_rsa_key_without_alg_verifies_rs256_and_ps256_and_a_pinned_one_only_its_own() {
    for alg in [Algorithm::Rs256, Algorithm::Ps256] {
        let key = TestKey::generate(alg);
        let token = key.token(&key.header(), &json!({ "sub": "s" }));
        let jws = CompactJws::parse(&token).unwrap();
        let mut unpinned = key.jwk("k1");
        unpinned.as_object_mut().unwrap().remove("alg");
        let public = PublicKey::from_jwk(&unpinned).unwrap();
        assert!(public.accepts(Algorithm::Rs256) && public.accepts(Algorithm::Ps256));
        assert!(!public.accepts(Algorithm::Es256));
        assert!(jws.verify(&public).is_ok(), "{alg} under an unpinned RSA key");
        let other = if alg == Algorithm::Rs256 { "PS256" } else { "RS256" };
        let mut pinned_other = key.jwk("k1");
        pinned_other["alg"] = other.into();
        let pinned = PublicKey::from_jwk(&pinned_other).unwrap();
        assert_eq!(jws.verify(&pinned).unwrap_err(), JwsError::AlgorithmMismatch, "{alg} under a key pinned {other}");
    }
    // A signature made with one RSA padding does not pass as the other.
    let key = TestKey::generate(Algorithm::Rs256);
    let forged = key.token(&json!({ "alg": "PS256", "kid": "k1" }), &json!({ "sub": "s" }));
    let mut unpinned = key.jwk("k1");
    unpinned.as_object_mut().unwrap().remove("alg");
    let public = PublicKey::from_jwk(&unpinned).unwrap();
    assert_eq!(CompactJws::parse(&forged).unwrap().verify(&public).unwrap_err(), JwsError::BadSignature);
}
