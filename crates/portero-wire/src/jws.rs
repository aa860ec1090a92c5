//! Compact JWS verification (RFC 7515 §7.1), written once for Portero's server and verifier.
//!
//! Only asymmetric algorithms are accepted (RS256, PS256, ES256, EdDSA over Ed25519), and a
//! token must name an algorithm of the key that checks it: `none`, HMAC and every other `alg`
//! are refused before any key is looked at, so a public key can never be used as an HMAC
//! secret. An RSA key verifies RS256 and PS256 unless its JWK pins one with `alg`. A header with `crit` (RFC 7515 §4.1.11) is refused: no extension is
//! understood. Keys come from JWKs (RFC 7517); symmetric (`oct`) keys are never accepted.
//!
//! ```
//! use portero_wire::jws::{CompactJws, JwsError, Jwks};
//!
//! let jwks = Jwks::from_json(&serde_json::json!({ "keys": [] }))?;
//! assert!(jwks.is_empty());
//! // `{"alg":"none"}` is refused whatever the key.
//! let err = CompactJws::parse("eyJhbGciOiJub25lIn0.e30.").unwrap_err();
//! assert!(matches!(err, JwsError::UnsupportedAlgorithm(alg) if alg == "none"));
//! # Ok::<(), portero_wire::jws::KeyError>(())
//! ```

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ED25519, ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256, RSA_PSS_2048_8192_SHA256,
    VerificationAlgorithm,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::Value;

/// A JWS algorithm this crate verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256, 2048 to 8192-bit keys.
    Rs256,
    /// RSASSA-PSS with SHA-256 and MGF1 with SHA-256, 2048 to 8192-bit keys.
    Ps256,
    /// ECDSA over P-256 with SHA-256 (signature as R‖S).
    Es256,
    /// EdDSA over Ed25519.
    EdDsa,
}

impl Algorithm {
    /// The `alg` value (RFC 7518 §3.1, RFC 8037 §3.1).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rs256 => "RS256",
            Self::Ps256 => "PS256",
            Self::Es256 => "ES256",
            Self::EdDsa => "EdDSA",
        }
    }

    /// The algorithm named `alg` exactly; `none`, HMAC and all others give `None`.
    pub fn parse(alg: &str) -> Option<Self> {
        [Self::Rs256, Self::Ps256, Self::Es256, Self::EdDsa].into_iter().find(|a| a.as_str() == alg)
    }

    fn verification(self) -> &'static dyn VerificationAlgorithm {
        match self {
            Self::Rs256 => &RSA_PKCS1_2048_8192_SHA256,
            Self::Ps256 => &RSA_PSS_2048_8192_SHA256,
            Self::Es256 => &ECDSA_P256_SHA256_FIXED,
            Self::EdDsa => &ED25519,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwsError {
    /// Not three base64url parts, or a header that is not a JSON object with a string `alg`.
    #[error("not a compact JWS: {0}")]
    Malformed(&'static str),
    /// `none`, an HMAC algorithm, or any `alg` this crate does not verify.
    #[error("unsupported algorithm {0:?}")]
    UnsupportedAlgorithm(String),
    /// The header has a `crit` member (whatever its value).
    #[error("critical header extensions are not supported")]
    CriticalHeader,
    /// The header names another algorithm than the key's own.
    #[error("algorithm does not match the key")]
    AlgorithmMismatch,
    /// The signature is not valid for the signing input under the key.
    #[error("bad signature")]
    BadSignature,
    /// The signature is good but the payload is not base64url (or, for
    /// [`CompactJws::verify_json`], not the expected JSON).
    #[error("malformed payload")]
    Payload,
}

/// Why a JWK could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Not a JWK set: no `keys` array.
    #[error("not a JWK set")]
    NotASet,
    /// A key of a type or algorithm this crate does not verify with (including every `oct` key).
    #[error("unsupported key")]
    Unsupported,
    /// A member is missing or not base64url, or the key material is invalid.
    #[error("invalid key")]
    Invalid,
}

/// A public key, parsed once for each algorithm it verifies (one, or RS256 and PS256 for an
/// RSA key whose JWK does not pin its `alg`).
#[derive(Clone)]
pub struct PublicKey {
    alg: Algorithm,
    key: Arc<ParsedPublicKey>,
    /// The PSS form of an RSA key that verifies both RSA algorithms.
    pss: Option<Arc<ParsedPublicKey>>,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey").field("alg", &self.alg).finish_non_exhaustive()
    }
}

impl PublicKey {
    fn parse(alg: Algorithm, bytes: &[u8]) -> Result<Self, KeyError> {
        let key = ParsedPublicKey::new(alg.verification(), bytes).map_err(|_| KeyError::Invalid)?;
        Ok(Self { alg, key: Arc::new(key), pss: None })
    }

    /// An RSA key for `alg` (RS256 or PS256), or for both when `alg` is `None`.
    fn rsa_for(n: &[u8], e: &[u8], alg: Option<Algorithm>) -> Result<Self, KeyError> {
        let der = rsa_public_key_der(n, e);
        match alg {
            Some(alg @ (Algorithm::Rs256 | Algorithm::Ps256)) => Self::parse(alg, &der),
            Some(_) => Err(KeyError::Unsupported),
            None => {
                let mut key = Self::parse(Algorithm::Rs256, &der)?;
                let pss = ParsedPublicKey::new(&RSA_PSS_2048_8192_SHA256, &der).map_err(|_| KeyError::Invalid)?;
                key.pss = Some(Arc::new(pss));
                Ok(key)
            }
        }
    }

    /// An RS256 key from its modulus and public exponent (big-endian bytes).
    pub fn rsa(n: &[u8], e: &[u8]) -> Result<Self, KeyError> {
        Self::parse(Algorithm::Rs256, &rsa_public_key_der(n, e))
    }

    /// An ES256 key from its P-256 point coordinates (32 bytes each).
    pub fn p256(x: &[u8], y: &[u8]) -> Result<Self, KeyError> {
        let point = [&[0x04][..], x, y].concat();
        Self::parse(Algorithm::Es256, &point)
    }

    /// An EdDSA key from its 32-byte Ed25519 public key.
    pub fn ed25519(x: &[u8]) -> Result<Self, KeyError> {
        Self::parse(Algorithm::EdDsa, x)
    }

    /// A key from its JWK (RFC 7517): `RSA`, `EC` on `P-256`, or `OKP` on `Ed25519`. An `alg`
    /// member, when present, must be an algorithm of that key type (and an RSA key then verifies
    /// only it; without `alg`, RS256 and PS256); a `use` member, when present, must be `sig`.
    pub fn from_jwk(jwk: &Value) -> Result<Self, KeyError> {
        let member = |name: &str| jwk.get(name).and_then(Value::as_str);
        let bytes = |name: &str| -> Result<Vec<u8>, KeyError> {
            let text = member(name).ok_or(KeyError::Invalid)?;
            URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')).map_err(|_| KeyError::Invalid)
        };
        if member("use").is_some_and(|u| u != "sig") {
            return Err(KeyError::Unsupported);
        }
        let pinned = match jwk.get("alg") {
            None => None,
            Some(alg) => Some(alg.as_str().and_then(Algorithm::parse).ok_or(KeyError::Unsupported)?),
        };
        let key = match (member("kty"), member("crv")) {
            (Some("RSA"), _) => Self::rsa_for(&bytes("n")?, &bytes("e")?, pinned)?,
            (Some("EC"), Some("P-256")) => Self::p256(&bytes("x")?, &bytes("y")?)?,
            (Some("OKP"), Some("Ed25519")) => Self::ed25519(&bytes("x")?)?,
            _ => return Err(KeyError::Unsupported),
        };
        match pinned {
            Some(alg) if !key.accepts(alg) => Err(KeyError::Unsupported),
            _ => Ok(key),
        }
    }

    /// The algorithm this key verifies (for an RSA key that verifies both, RS256).
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// Whether this key verifies signatures made with `alg`.
    pub fn accepts(&self, alg: Algorithm) -> bool {
        alg == self.alg || (alg == Algorithm::Ps256 && self.pss.is_some())
    }

    /// Whether `signature` is this key's over `message` under [`PublicKey::algorithm`].
    pub fn verify_signature(&self, message: &[u8], signature: &[u8]) -> bool {
        self.key.verify_sig(message, signature).is_ok()
    }

    /// Whether `signature` is this key's over `message` under `alg` (false for an algorithm
    /// the key does not verify).
    fn verify_signature_as(&self, alg: Algorithm, message: &[u8], signature: &[u8]) -> bool {
        let key = if alg == self.alg { Some(&self.key) } else { self.pss.as_ref().filter(|_| self.accepts(alg)) };
        key.is_some_and(|key| key.verify_sig(message, signature).is_ok())
    }
}

/// The usable signature keys of a JWK set (RFC 7517 §5), by `kid`.
#[derive(Debug, Clone, Default)]
pub struct Jwks {
    keys: HashMap<String, PublicKey>,
}

impl Jwks {
    /// Parses `{"keys": [...]}`. Keys without a `kid`, and keys [`PublicKey::from_jwk`] refuses,
    /// are left out (a set may carry keys for other uses); a document without a `keys` array is
    /// an error.
    pub fn from_json(set: &Value) -> Result<Self, KeyError> {
        let list = set.get("keys").and_then(Value::as_array).ok_or(KeyError::NotASet)?;
        let keys = list
            .iter()
            .filter_map(|jwk| {
                let kid = jwk.get("kid")?.as_str()?.to_owned();
                Some((kid, PublicKey::from_jwk(jwk).ok()?))
            })
            .collect();
        Ok(Self { keys })
    }

    /// Adds (or replaces) a key.
    pub fn insert(&mut self, kid: impl Into<String>, key: PublicKey) {
        self.keys.insert(kid.into(), key);
    }

    /// The key with `kid`.
    pub fn get(&self, kid: &str) -> Option<&PublicKey> {
        self.keys.get(kid)
    }

    /// How many usable keys there are.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key ids.
    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }
}

/// The protected header of a compact JWS, as far as this crate reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Header {
    /// The algorithm (`alg`), already one this crate verifies.
    pub alg: Algorithm,
    /// The key id (`kid`).
    pub kid: Option<String>,
    /// The media type (`typ`), e.g. `at+jwt` for an access token (RFC 9068 §2.1).
    pub typ: Option<String>,
    /// A public key carried in the header (`jwk`), as DPoP proofs do (RFC 9449 §4.2).
    pub jwk: Option<Value>,
}

#[derive(Deserialize)]
struct RawHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    jwk: Option<Value>,
    #[serde(default)]
    crit: Present,
}

/// Whether a header member is there, whatever its value (even `null` or `[]`).
#[derive(Default)]
struct Present(bool);

impl<'de> Deserialize<'de> for Present {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(deserializer).map(|_| Self(true))
    }
}

/// A compact JWS whose header has been read and checked, ready to verify with a key.
#[derive(Debug, Clone)]
pub struct CompactJws<'a> {
    header: Header,
    signing_input: &'a str,
    payload: &'a str,
    signature: &'a str,
}

impl<'a> CompactJws<'a> {
    /// Splits `token` into its three parts and reads the header: refuses `crit`, and every
    /// `alg` but RS256, PS256, ES256 and EdDSA.
    pub fn parse(token: &'a str) -> Result<Self, JwsError> {
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwsError::Malformed("not three parts"));
        };
        let signing_input = &token[..header.len() + 1 + payload.len()];
        let bytes = URL_SAFE_NO_PAD.decode(header).map_err(|_| JwsError::Malformed("malformed header"))?;
        let raw: RawHeader = serde_json::from_slice(&bytes).map_err(|_| JwsError::Malformed("malformed header"))?;
        if raw.crit.0 {
            return Err(JwsError::CriticalHeader);
        }
        let alg = Algorithm::parse(&raw.alg).ok_or(JwsError::UnsupportedAlgorithm(raw.alg))?;
        Ok(Self { header: Header { alg, kid: raw.kid, typ: raw.typ, jwk: raw.jwk }, signing_input, payload, signature })
    }

    /// The checked header: pick the key by its `kid`.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Checks the signature with `key`, one of whose algorithms the header must name; returns
    /// the decoded payload.
    pub fn verify(&self, key: &PublicKey) -> Result<Vec<u8>, JwsError> {
        if !key.accepts(self.header.alg) {
            return Err(JwsError::AlgorithmMismatch);
        }
        let signature =
            URL_SAFE_NO_PAD.decode(self.signature).map_err(|_| JwsError::Malformed("malformed signature"))?;
        if !key.verify_signature_as(self.header.alg, self.signing_input.as_bytes(), &signature) {
            return Err(JwsError::BadSignature);
        }
        URL_SAFE_NO_PAD.decode(self.payload).map_err(|_| JwsError::Payload)
    }

    /// [`CompactJws::verify`], then reads the payload as JSON.
    pub fn verify_json<T: serde::de::DeserializeOwned>(&self, key: &PublicKey) -> Result<T, JwsError> {
        serde_json::from_slice(&self.verify(key)?).map_err(|_| JwsError::Payload)
    }
}

/// DER of PKCS#1 `RSAPublicKey ::= SEQUENCE { n INTEGER, e INTEGER }`.
fn rsa_public_key_der(n: &[u8], e: &[u8]) -> Vec<u8> {
    der_sequence_of_integers(&[n, e])
}

/// DER of `SEQUENCE { INTEGER, ... }` from unsigned big-endian integers (leading zeros dropped,
/// a zero byte added where the top bit is set), lengths up to 64 KiB: the shape of PKCS#1's RSA
/// public and private keys.
pub fn der_sequence_of_integers(integers: &[&[u8]]) -> Vec<u8> {
    fn length(len: usize) -> Vec<u8> {
        match len {
            0..=0x7f => vec![len as u8],
            0x80..=0xff => vec![0x81, len as u8],
            _ => vec![0x82, (len >> 8) as u8, len as u8],
        }
    }
    fn integer(bytes: &[u8]) -> Vec<u8> {
        let trimmed: Vec<u8> = bytes.iter().copied().skip_while(|b| *b == 0).collect();
        let mut value = if trimmed.is_empty() { vec![0] } else { trimmed };
        if value[0] & 0x80 != 0 {
            value.insert(0, 0);
        }
        [vec![0x02], length(value.len()), value].concat()
    }
    let body: Vec<u8> = integers.iter().flat_map(|i| integer(i)).collect();
    [vec![0x30], length(body.len()), body].concat()
}

#[cfg(test)]
mod tests;
