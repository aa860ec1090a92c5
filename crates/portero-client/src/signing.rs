//! The client's own keys: client assertions (`private_key_jwt`, RFC 7523 §2.2) and DPoP proofs
//! (RFC 9449 §4) signed with a private key read from PEM or a JWK.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::signature::{
    self, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RSA_PKCS1_SHA256, RSA_PSS_SHA256,
    RsaKeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Map, Value, json};

use crate::error::ClientError;

/// How long a client assertion is good for: one request.
const ASSERTION_LIFETIME: u64 = 60;

enum Pair {
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
    Rsa { pair: RsaKeyPair, pss: bool },
}

/// A private signing key: P-256 (ES256), Ed25519 (EdDSA) or RSA (RS256, or PS256 when the
/// key's JWK says so or [`SigningKey::with_pss`] asks). `Debug` never shows the key.
pub struct SigningKey {
    pair: Pair,
    kid: Option<String>,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey").field("alg", &self.alg()).field("kid", &self.kid).finish_non_exhaustive()
    }
}

fn bad_key(why: &str) -> ClientError {
    ClientError::InvalidKey(why.to_owned())
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

impl SigningKey {
    /// Reads a private key from PEM (`PRIVATE KEY` PKCS#8, `EC PRIVATE KEY`, `RSA PRIVATE KEY`)
    /// or from a private JWK (EC P-256, OKP Ed25519, RSA); a JWK's `kid` and `alg` are kept.
    pub fn from_text(text: &str) -> Result<Self, ClientError> {
        let text = text.trim();
        if text.starts_with('{') {
            let jwk: Value = serde_json::from_str(text).map_err(|_| bad_key("not a JSON JWK"))?;
            return Self::from_jwk(&jwk);
        }
        let (label, der) = pem(text)?;
        let pair = match label.as_str() {
            "PRIVATE KEY" => pkcs8(&der)?,
            "EC PRIVATE KEY" => Pair::Ec(
                EcdsaKeyPair::from_private_key_der(&ECDSA_P256_SHA256_FIXED_SIGNING, &der)
                    .map_err(|_| bad_key("not a P-256 key"))?,
            ),
            "RSA PRIVATE KEY" => {
                Pair::Rsa { pair: RsaKeyPair::from_der(&der).map_err(|_| bad_key("not an RSA key"))?, pss: false }
            }
            _ => return Err(bad_key("the PEM holds no private key")),
        };
        Ok(Self { pair, kid: None })
    }

    /// Reads a private JWK.
    pub fn from_jwk(jwk: &Value) -> Result<Self, ClientError> {
        let member = |name: &str| -> Result<Vec<u8>, ClientError> {
            let text = jwk.get(name).and_then(Value::as_str).ok_or_else(|| bad_key("a JWK member is missing"))?;
            URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')).map_err(|_| bad_key("a JWK member is not base64url"))
        };
        let text = |name: &str| jwk.get(name).and_then(Value::as_str);
        let pair = match (text("kty"), text("crv")) {
            (Some("EC"), Some("P-256")) => {
                let point = [&[4u8][..], &member("x")?, &member("y")?].concat();
                let pair = EcdsaKeyPair::from_private_key_and_public_key(
                    &ECDSA_P256_SHA256_FIXED_SIGNING,
                    &member("d")?,
                    &point,
                )
                .map_err(|_| bad_key("an invalid P-256 key"))?;
                Pair::Ec(pair)
            }
            (Some("OKP"), Some("Ed25519")) => Pair::Ed(
                Ed25519KeyPair::from_seed_and_public_key(&member("d")?, &member("x")?)
                    .map_err(|_| bad_key("an invalid Ed25519 key"))?,
            ),
            (Some("RSA"), _) => {
                let names = ["n", "e", "d", "p", "q", "dp", "dq", "qi"];
                let parts = names.iter().map(|n| member(n)).collect::<Result<Vec<_>, _>>()?;
                let pair = RsaKeyPair::from_der(&pkcs1_der(&parts)).map_err(|_| bad_key("an invalid RSA key"))?;
                Pair::Rsa { pair, pss: text("alg") == Some("PS256") }
            }
            _ => return Err(bad_key("a JWK of an unsupported type (P-256, Ed25519 and RSA are)")),
        };
        Ok(Self { pair, kid: text("kid").map(str::to_owned) })
    }

    /// Names the key in assertions' `kid` header.
    #[must_use]
    pub fn with_kid(mut self, kid: impl Into<String>) -> Self {
        self.kid = Some(kid.into());
        self
    }

    /// Signs with PS256 instead of RS256 (an RSA key only).
    #[must_use]
    pub fn with_pss(mut self) -> Self {
        if let Pair::Rsa { pss, .. } = &mut self.pair {
            *pss = true;
        }
        self
    }

    /// The JWS `alg` this key signs with.
    pub fn alg(&self) -> &'static str {
        match &self.pair {
            Pair::Ec(_) => "ES256",
            Pair::Ed(_) => "EdDSA",
            Pair::Rsa { pss: true, .. } => "PS256",
            Pair::Rsa { pss: false, .. } => "RS256",
        }
    }

    /// The `kid`, if one was given.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The public JWK (no private member), as a DPoP proof's header carries it and as the
    /// client's registered JWK Set lists it.
    pub fn public_jwk(&self) -> Value {
        let mut jwk = match &self.pair {
            Pair::Ec(pair) => {
                let point = pair.public_key().as_ref();
                json!({ "kty": "EC", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..65]) })
            }
            Pair::Ed(pair) => json!({ "kty": "OKP", "crv": "Ed25519", "x": b64(pair.public_key().as_ref()) }),
            Pair::Rsa { pair, .. } => {
                let public = pair.public_key();
                json!({ "kty": "RSA", "n": b64(public.modulus().big_endian_without_leading_zero()),
                        "e": b64(public.exponent().big_endian_without_leading_zero()) })
            }
        };
        if let Some(kid) = &self.kid {
            jwk["kid"] = kid.clone().into();
        }
        jwk
    }

    /// A compact JWS of `claims` under `header` (to which `alg` is added).
    pub fn sign_jwt(&self, mut header: Map<String, Value>, claims: &Value) -> Result<String, ClientError> {
        header.insert("alg".into(), self.alg().into());
        let input =
            format!("{}.{}", b64(Value::Object(header).to_string().as_bytes()), b64(claims.to_string().as_bytes()));
        let rng = SystemRandom::new();
        let signature = match &self.pair {
            Pair::Ec(pair) => {
                pair.sign(&rng, input.as_bytes()).map_err(|_| bad_key("signing failed"))?.as_ref().to_vec()
            }
            Pair::Ed(pair) => pair.sign(input.as_bytes()).as_ref().to_vec(),
            Pair::Rsa { pair, pss } => {
                let padding: &dyn signature::RsaEncoding = if *pss { &RSA_PSS_SHA256 } else { &RSA_PKCS1_SHA256 };
                let mut out = vec![0; pair.public_modulus_len()];
                pair.sign(padding, &rng, input.as_bytes(), &mut out).map_err(|_| bad_key("signing failed"))?;
                out
            }
        };
        Ok(format!("{input}.{}", b64(&signature)))
    }

    /// A `private_key_jwt` client assertion (RFC 7523 §3) of `client_id` for `audience` (the
    /// token endpoint's URL), good for one minute, with a fresh `jti`.
    pub fn client_assertion(&self, client_id: &str, audience: &str) -> Result<String, ClientError> {
        let now = unix_now();
        let claims = json!({ "iss": client_id, "sub": client_id, "aud": audience, "jti": random_id(),
                             "iat": now, "exp": now + ASSERTION_LIFETIME });
        let mut header = Map::new();
        header.insert("typ".into(), "JWT".into());
        if let Some(kid) = &self.kid {
            header.insert("kid".into(), kid.clone().into());
        }
        self.sign_jwt(header, &claims)
    }

    /// A DPoP proof (RFC 9449 §4.2) for a `method` request to `url` (query and fragment left
    /// out), with `ath` for `access_token` when the request carries one, and the server's
    /// `nonce` when it gave one.
    pub fn dpop_proof(
        &self,
        method: &str,
        url: &str,
        access_token: Option<&str>,
        nonce: Option<&str>,
    ) -> Result<String, ClientError> {
        let htu = url.split(['?', '#']).next().unwrap_or(url);
        let mut claims = json!({ "jti": random_id(), "htm": method, "htu": htu, "iat": unix_now() });
        if let Some(token) = access_token {
            claims["ath"] = portero_wire::dpop::access_token_hash(token).into();
        }
        if let Some(nonce) = nonce {
            claims["nonce"] = nonce.into();
        }
        let mut header = Map::new();
        header.insert("typ".into(), portero_wire::dpop::PROOF_TYPE.into());
        let mut jwk = self.public_jwk();
        if let Some(object) = jwk.as_object_mut() {
            object.remove("kid");
        }
        header.insert("jwk".into(), jwk);
        self.sign_jwt(header, &claims)
    }
}

fn pkcs8(der: &[u8]) -> Result<Pair, ClientError> {
    if let Ok(pair) = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der) {
        return Ok(Pair::Ec(pair));
    }
    if let Ok(pair) = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der) {
        return Ok(Pair::Ed(pair));
    }
    match RsaKeyPair::from_pkcs8(der) {
        Ok(pair) => Ok(Pair::Rsa { pair, pss: false }),
        Err(_) => Err(bad_key("a PKCS#8 key that is not P-256, Ed25519 or RSA")),
    }
}

/// The label and bytes of the first PEM block.
fn pem(text: &str) -> Result<(String, Vec<u8>), ClientError> {
    let mut lines = text.lines().map(str::trim);
    let label = lines
        .find_map(|l| l.strip_prefix("-----BEGIN ").and_then(|l| l.strip_suffix("-----")))
        .ok_or_else(|| bad_key("neither PEM nor a JWK"))?
        .to_owned();
    let end = format!("-----END {label}-----");
    let body: String = lines.take_while(|l| *l != end).collect();
    let der = STANDARD.decode(body).map_err(|_| bad_key("the PEM body is not base64"))?;
    Ok((label, der))
}

/// DER of PKCS#1 `RSAPrivateKey` (version 0) from the JWK's integers, in order n, e, d, p, q,
/// dp, dq, qi.
fn pkcs1_der(parts: &[Vec<u8>]) -> Vec<u8> {
    let integers: Vec<&[u8]> = std::iter::once(&[0u8][..]).chain(parts.iter().map(Vec::as_slice)).collect();
    portero_wire::jws::der_sequence_of_integers(&integers)
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// 128 random bits, base64url: a `jti`.
fn random_id() -> String {
    let mut bytes = [0u8; 16];
    // The system RNG does not fail on the platforms this builds for; a zero id would only be
    // refused as a replay, never accepted twice.
    let _ = SystemRandom::new().fill(&mut bytes);
    b64(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use portero_wire::dpop::{Expected, verify};
    use portero_wire::jws::{CompactJws, PublicKey};

    fn keys() -> Vec<SigningKey> {
        let rng = SystemRandom::new();
        let ec = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let ed = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let pem =
            |der: &[u8]| format!("-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n", STANDARD.encode(der));
        vec![
            SigningKey::from_text(&pem(ec.as_ref())).unwrap().with_kid("ec"),
            SigningKey::from_text(&pem(ed.as_ref())).unwrap(),
        ]
    }

    #[test]
    fn assertions_verify_under_the_public_jwk() {
        for key in keys() {
            let assertion = key.client_assertion("svc", "https://auth.example/oauth2/token").unwrap();
            let jws = CompactJws::parse(&assertion).unwrap();
            assert_eq!(jws.header().kid.as_deref(), key.kid());
            let claims: Value = jws.verify_json(&PublicKey::from_jwk(&key.public_jwk()).unwrap()).unwrap();
            assert_eq!((claims["iss"].as_str(), claims["sub"].as_str()), (Some("svc"), Some("svc")));
            assert_eq!(claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(), ASSERTION_LIFETIME);
        }
    }

    #[test]
    fn proofs_pass_the_shared_check() {
        for key in keys() {
            let url = "https://api.example/v1/charges";
            let proof = key.dpop_proof("POST", &format!("{url}?x=1"), Some("tok"), Some("n-1")).unwrap();
            let expected = Expected::new("POST", url, unix_now() as i64).with_access_token("tok");
            let checked = verify(&proof, &expected).unwrap();
            assert_eq!(checked.nonce.as_deref(), Some("n-1"));
            assert_eq!(checked.thumbprint, portero_wire::dpop::thumbprint(&key.public_jwk()).unwrap());
        }
    }

    #[test]
    fn bad_keys_are_refused_without_showing_them() {
        for text in [
            "",
            "hello",
            "{}",
            r#"{"kty":"oct","k":"c2VjcmV0"}"#,
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----",
        ] {
            assert!(matches!(SigningKey::from_text(text), Err(ClientError::InvalidKey(_))), "{text}");
        }
        let key = keys().remove(0);
        assert!(!format!("{key:?}").contains("d\""));
    }
}
