//! Proofs signed here with aws-lc, checked step by step.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use serde_json::{Value, json};

use super::*;

const URL: &str = "https://auth.example/oauth2/token";
const NOW: i64 = 1_700_000_000;

struct Signer {
    pair: EcdsaKeyPair,
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

impl Signer {
    fn new() -> Self {
        let rng = SystemRandom::new();
        let der = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        Self { pair: EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der.as_ref()).unwrap() }
    }

    fn jwk(&self) -> Value {
        let point = self.pair.public_key().as_ref();
        json!({ "kty": "EC", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..65]) })
    }

    fn sign(&self, header: &Value, claims: &Value) -> String {
        let input = format!("{}.{}", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()));
        let signature = self.pair.sign(&SystemRandom::new(), input.as_bytes()).unwrap();
        format!("{input}.{}", b64(signature.as_ref()))
    }

    fn header(&self) -> Value {
        json!({ "typ": "dpop+jwt", "alg": "ES256", "jwk": self.jwk() })
    }

    fn proof(&self, claims: &Value) -> String {
        self.sign(&self.header(), claims)
    }
}

fn claims() -> Value {
    json!({ "jti": "j-1", "htm": "POST", "htu": URL, "iat": NOW })
}

fn with(name: &str, value: Value) -> Value {
    let mut c = claims();
    c[name] = value;
    c
}

fn reason(proof: &str, expected: &Expected<'_>) -> String {
    verify(proof, expected).unwrap_err().0
}

#[test]
fn a_good_proof_gives_its_key_thumbprint_and_jti() {
    let signer = Signer::new();
    let proof = verify(&signer.proof(&claims()), &Expected::new("POST", URL, NOW)).unwrap();
    assert_eq!(proof.thumbprint, thumbprint(&signer.jwk()).unwrap());
    assert_eq!((proof.jti.as_str(), proof.iat, proof.nonce.as_deref()), ("j-1", NOW, None));
    assert_eq!(proof.replay_key(), format!("{}:j-1", proof.thumbprint));
}

#[test]
fn the_header_must_be_a_dpop_header_with_a_public_key() {
    let signer = Signer::new();
    let expected = Expected::new("POST", URL, NOW);
    let mut header = signer.header();
    header["typ"] = "JWT".into();
    assert!(reason(&signer.sign(&header, &claims()), &expected).contains("typ"));
    let mut header = signer.header();
    header.as_object_mut().unwrap().remove("jwk");
    assert!(reason(&signer.sign(&header, &claims()), &expected).contains("no jwk"));
    let mut header = signer.header();
    header["jwk"]["d"] = "c2VjcmV0".into();
    assert!(reason(&signer.sign(&header, &claims()), &expected).contains("private key"));
    let mut header = signer.header();
    header["alg"] = "HS256".into();
    assert!(reason(&signer.sign(&header, &claims()), &expected).contains("unsupported algorithm"));
    // Another key in the header than the one that signed.
    let mut header = signer.header();
    header["jwk"] = Signer::new().jwk();
    assert!(reason(&signer.sign(&header, &claims()), &expected).contains("bad signature"));
}

#[test]
fn method_and_url_must_be_the_requests() {
    let signer = Signer::new();
    let expected = Expected::new("POST", URL, NOW);
    assert!(reason(&signer.proof(&with("htm", "GET".into())), &expected).contains("htm"));
    assert!(reason(&signer.proof(&with("htu", "https://auth.example/other".into())), &expected).contains("htu"));
    assert!(reason(&signer.proof(&with("htu", "https://evil.example/oauth2/token".into())), &expected).contains("htu"));
    for same in ["HTTPS://Auth.Example:443/oauth2/token", "https://auth.example/oauth2/token?x=1#f"] {
        assert!(verify(&signer.proof(&with("htu", same.into())), &expected).is_ok(), "{same}");
    }
    assert!(same_target("http://localhost:80", "http://localhost/"));
    assert!(!same_target("http://a.example/p", "https://a.example/p"));
    assert!(!same_target("https://user@a.example/p", "https://a.example/p"));
}

#[test]
fn iat_jti_and_nonce_are_checked() {
    let signer = Signer::new();
    let expected = Expected::new("POST", URL, NOW);
    assert!(reason(&signer.proof(&with("iat", (NOW + DEFAULT_LEEWAY + 1).into())), &expected).contains("future"));
    assert!(reason(&signer.proof(&with("iat", (NOW - DEFAULT_MAX_AGE - 1).into())), &expected).contains("old"));
    assert!(reason(&signer.proof(&with("iat", Value::Null)), &expected).contains("iat"));
    assert!(reason(&signer.proof(&with("jti", "".into())), &expected).contains("jti"));
    assert!(reason(&signer.proof(&with("jti", "j".repeat(MAX_JTI_CHARS + 1).into())), &expected).contains("jti"));
    assert!(reason(&signer.proof(&with("nonce", 7.into())), &expected).contains("nonce"));
    let proof = verify(&signer.proof(&with("nonce", "n-1".into())), &expected).unwrap();
    assert_eq!(proof.nonce.as_deref(), Some("n-1"));
    assert!(reason(&"a".repeat(MAX_PROOF_BYTES + 1), &expected).contains("longer"));
}

#[test]
fn with_an_access_token_ath_must_be_its_hash() {
    let signer = Signer::new();
    let expected = Expected::new("GET", "https://api.example/charges", NOW).with_access_token("the-token");
    let mut c = json!({ "jti": "j", "htm": "GET", "htu": "https://api.example/charges", "iat": NOW });
    assert!(reason(&signer.proof(&c), &expected).contains("ath"));
    c["ath"] = access_token_hash("another-token").into();
    assert!(reason(&signer.proof(&c), &expected).contains("ath"));
    c["ath"] = access_token_hash("the-token").into();
    assert!(verify(&signer.proof(&c), &expected).is_ok());
}

#[test]
fn thumbprints_follow_rfc_7638() {
    // RFC 7638 §3.1's example key and its thumbprint.
    let jwk = json!({
        "kty": "RSA",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29"
    });
    assert_eq!(thumbprint(&jwk).unwrap(), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
    assert!(thumbprint(&json!({ "kty": "oct", "k": "c2VjcmV0" })).is_err());
}
