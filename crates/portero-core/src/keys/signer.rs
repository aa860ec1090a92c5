//! Compact JWS signing with aws-lc, the private key parsed once when loaded (parsing an RSA key
//! costs more than a signature; see STACK.md's benchmark).

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RSA_PKCS1_SHA256, RsaKeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::{Alg, KeyError};
use crate::secret::sha256_b64;

/// A parsed private key able to sign JWS for its algorithm.
pub enum Signer {
    Rs256(RsaKeyPair),
    Es256(EcdsaKeyPair),
    EdDsa(Ed25519KeyPair),
}

impl Signer {
    /// Generates a fresh key; returns its PKCS#8 DER (to seal and store).
    pub fn generate_pkcs8(alg: Alg) -> Result<Vec<u8>, KeyError> {
        let rng = SystemRandom::new();
        let der = match alg {
            Alg::Rs256 => {
                let pair = RsaKeyPair::generate(KeySize::Rsa2048).map_err(|_| KeyError::Generate)?;
                pair.as_der().map_err(|_| KeyError::Generate)?.as_ref().to_vec()
            }
            Alg::Es256 => EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                .map_err(|_| KeyError::Generate)?
                .as_ref()
                .to_vec(),
            Alg::EdDsa => Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| KeyError::Generate)?.as_ref().to_vec(),
        };
        Ok(der)
    }

    pub fn from_pkcs8(alg: Alg, der: &[u8]) -> Result<Self, KeyError> {
        Ok(match alg {
            Alg::Rs256 => Self::Rs256(RsaKeyPair::from_pkcs8(der).map_err(|_| KeyError::Parse)?),
            Alg::Es256 => Self::Es256(
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der).map_err(|_| KeyError::Parse)?,
            ),
            Alg::EdDsa => Self::EdDsa(Ed25519KeyPair::from_pkcs8(der).map_err(|_| KeyError::Parse)?),
        })
    }

    /// The signature over `message`, raw (JWS form: R‖S for ECDSA, not DER).
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        match self {
            Self::Rs256(pair) => {
                let mut signature = vec![0u8; pair.public_modulus_len()];
                pair.sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), message, &mut signature)
                    .map_err(|_| KeyError::Sign)?;
                Ok(signature)
            }
            Self::Es256(pair) => {
                Ok(pair.sign(&SystemRandom::new(), message).map_err(|_| KeyError::Sign)?.as_ref().to_vec())
            }
            Self::EdDsa(pair) => Ok(pair.sign(message).as_ref().to_vec()),
        }
    }

    /// The public key's members in RFC 7638 canonical order (also the thumbprint input).
    fn public_members(&self) -> Value {
        let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
        match self {
            Self::Rs256(pair) => {
                let public = pair.public_key();
                json!({
                    "e": b64(public.exponent().big_endian_without_leading_zero()),
                    "kty": "RSA",
                    "n": b64(public.modulus().big_endian_without_leading_zero()),
                })
            }
            Self::Es256(pair) => {
                // Uncompressed SEC1 point: 0x04 ‖ x ‖ y.
                let point = pair.public_key().as_ref();
                json!({ "crv": "P-256", "kty": "EC", "x": b64(&point[1..33]), "y": b64(&point[33..65]) })
            }
            Self::EdDsa(pair) => {
                json!({ "crv": "Ed25519", "kty": "OKP", "x": b64(pair.public_key().as_ref()) })
            }
        }
    }

    /// RFC 7638 JWK thumbprint: SHA-256 of the required members, sorted, no whitespace.
    pub fn thumbprint(&self) -> String {
        // serde_json's Map is a BTreeMap here, so keys serialise sorted, as RFC 7638 requires.
        sha256_b64(self.public_members().to_string().as_bytes())
    }

    /// The public JWK (RFC 7517) published in the JWKS.
    pub fn public_jwk(&self, kid: &str, alg: Alg) -> Value {
        let mut jwk = self.public_members();
        if let Value::Object(members) = &mut jwk {
            members.insert("kid".into(), kid.into());
            members.insert("alg".into(), alg.as_str().into());
            members.insert("use".into(), "sig".into());
        }
        jwk
    }
}
