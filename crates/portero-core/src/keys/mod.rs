//! Signing keys: the set every node publishes, which one signs now, and how they are made.
//!
//! A key is published in the JWKS from the moment it is stored, but signs only from its
//! `activate_at`; so a rotation can publish a key before any token carries its `kid`.

mod seal;
mod signer;

use std::sync::{Arc, RwLock};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde_json::{Value, json};

use portero_wire::jws::{CompactJws, PublicKey};
pub use seal::MasterKey;
pub use signer::Signer;

use crate::store::StoredKey;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the master key must be 32 bytes, as base64 or 64 hex digits")]
    MasterKey,
    #[error("a signing key could not be decrypted: wrong master key, or the row was altered")]
    Unseal,
    #[error("a signing key could not be parsed")]
    Parse,
    #[error("a signing key could not be generated")]
    Generate,
    #[error("signing failed")]
    Sign,
    #[error("unknown signing algorithm {0:?} (expected RS256, ES256 or EdDSA)")]
    UnknownAlg(String),
    #[error("no signing key is active")]
    NoActiveKey,
}

/// The JWS algorithms Portero signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    Rs256,
    Es256,
    EdDsa,
}

impl Alg {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rs256 => "RS256",
            Self::Es256 => "ES256",
            Self::EdDsa => "EdDSA",
        }
    }

    pub fn parse(text: &str) -> Result<Self, KeyError> {
        match text.to_ascii_uppercase().as_str() {
            "RS256" => Ok(Self::Rs256),
            "ES256" => Ok(Self::Es256),
            "EDDSA" | "ED25519" => Ok(Self::EdDsa),
            _ => Err(KeyError::UnknownAlg(text.to_owned())),
        }
    }
}

/// A loaded key: parsed once, with its published JWK and precomputed JWS header.
pub struct SigningKey {
    pub kid: String,
    pub alg: Alg,
    pub activate_at: i64,
    pub created_at: i64,
    signer: Signer,
    /// The public half, for the shared JWS verification.
    public: PublicKey,
    jwk: Value,
    encoded_header: String,
}

impl SigningKey {
    /// Generates a key and its stored (sealed) form.
    pub fn generate(alg: Alg, master: &MasterKey, now: i64, activate_at: i64) -> Result<StoredKey, KeyError> {
        let der = Signer::generate_pkcs8(alg)?;
        let kid = Signer::from_pkcs8(alg, &der)?.thumbprint();
        Ok(StoredKey {
            sealed_private_key: master.seal(&kid, &der),
            kid,
            alg: alg.as_str().to_owned(),
            created_at: now,
            activate_at,
            retired_at: None,
        })
    }

    /// Unseals and parses a stored key.
    pub fn load(stored: &StoredKey, master: &MasterKey) -> Result<Self, KeyError> {
        let alg = Alg::parse(&stored.alg)?;
        let der = master.open(&stored.kid, &stored.sealed_private_key)?;
        let signer = Signer::from_pkcs8(alg, &der)?;
        let header = json!({ "alg": alg.as_str(), "kid": stored.kid, "typ": "at+jwt" });
        let jwk = signer.public_jwk(&stored.kid, alg);
        Ok(Self {
            kid: stored.kid.clone(),
            alg,
            activate_at: stored.activate_at,
            created_at: stored.created_at,
            public: PublicKey::from_jwk(&jwk).map_err(|_| KeyError::Parse)?,
            jwk,
            encoded_header: URL_SAFE_NO_PAD.encode(header.to_string()),
            signer,
        })
    }

    /// A compact JWS (RFC 7515 §7.1) over the JSON of `claims`.
    pub fn sign_jwt(&self, claims: &impl Serialize) -> Result<String, KeyError> {
        let payload = serde_json::to_vec(claims).map_err(|_| KeyError::Sign)?;
        let mut token = String::with_capacity(self.encoded_header.len() + payload.len() * 4 / 3 + 400);
        token.push_str(&self.encoded_header);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(payload, &mut token);
        let signature = self.signer.sign(token.as_bytes())?;
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, &mut token);
        Ok(token)
    }
}

/// When a key added now should start signing: after `delay`, and strictly after every existing
/// key's activation, so the newest rotation always wins even within one second.
pub fn next_activation(existing: &[StoredKey], now: i64, delay: i64) -> i64 {
    let latest = existing.iter().filter(|k| k.retired_at.is_none()).map(|k| k.activate_at).max();
    match latest {
        Some(latest) => (now + delay).max(latest + 1),
        None => now + delay,
    }
}

/// The keys one node knows: all are published; the newest active one signs.
#[derive(Default)]
pub struct KeySet {
    keys: Vec<SigningKey>,
}

impl KeySet {
    /// Loads the unretired keys of `stored`, oldest first.
    pub fn load(stored: &[StoredKey], master: &MasterKey) -> Result<Self, KeyError> {
        let mut keys = stored
            .iter()
            .filter(|k| k.retired_at.is_none())
            .map(|k| SigningKey::load(k, master))
            .collect::<Result<Vec<_>, _>>()?;
        keys.sort_by_key(|k| (k.activate_at, k.created_at));
        Ok(Self { keys })
    }

    /// The key that signs at `now`: the latest activated.
    pub fn active(&self, now: i64) -> Result<&SigningKey, KeyError> {
        self.keys.iter().rev().find(|k| k.activate_at <= now).ok_or(KeyError::NoActiveKey)
    }

    /// The JWKS document (RFC 7517 §5).
    pub fn jwks(&self) -> Value {
        json!({ "keys": self.keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>() })
    }

    /// Verifies one of our own compact JWS access tokens and returns its claims. The header must
    /// name a published key and that key's algorithm (no `none`, no algorithm confusion).
    pub fn verify(&self, token: &str) -> Option<Value> {
        if token.len() > 16 * 1024 {
            return None;
        }
        // Refuses `crit` (RFC 7515 §4.1.11: we sign with no extensions), `none` and HMAC.
        let jws = CompactJws::parse(token).ok()?;
        let header = jws.header();
        let key = self.keys.iter().find(|k| Some(k.kid.as_str()) == header.kid.as_deref())?;
        if header.typ.as_deref() != Some("at+jwt") {
            return None;
        }
        // The header must name the key's own algorithm (no algorithm confusion).
        jws.verify_json(&key.public).ok()
    }

    /// The keys that may be retired at `now`: superseded by a key that has been signing for
    /// longer than `max_token_ttl`, so no unexpired token carries their kid.
    pub fn retirable(&self, now: i64, max_token_ttl: i64) -> Vec<String> {
        let mut retirable = Vec::new();
        for (i, key) in self.keys.iter().enumerate() {
            let superseded_at = self.keys[i + 1..].iter().map(|k| k.activate_at).filter(|at| *at <= now).min();
            if superseded_at.is_some_and(|at| at + max_token_ttl < now) {
                retirable.push(key.kid.clone());
            }
        }
        retirable
    }

    /// `kid`s of the loaded keys, to tell whether the stored set changed.
    pub fn kids(&self) -> Vec<&str> {
        self.keys.iter().map(|k| k.kid.as_str()).collect()
    }

    /// The algorithms of the published keys (for RFC 8414 metadata).
    pub fn algorithms(&self) -> Vec<&'static str> {
        let mut algs: Vec<_> = self.keys.iter().map(|k| k.alg.as_str()).collect();
        algs.sort_unstable();
        algs.dedup();
        algs
    }
}

/// The current key set, swapped whole when keys change, read without blocking signers for long.
#[derive(Clone, Default)]
pub struct KeyRing(Arc<RwLock<Arc<KeySet>>>);

impl KeyRing {
    pub fn new(set: KeySet) -> Self {
        Self(Arc::new(RwLock::new(Arc::new(set))))
    }

    pub fn current(&self) -> Arc<KeySet> {
        match self.0.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn replace(&self, set: KeySet) {
        match self.0.write() {
            Ok(mut guard) => *guard = Arc::new(set),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(set),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::jwk::JwkSet;
    use jsonwebtoken::{DecodingKey, Validation, decode, decode_header};

    fn verify_with_jsonwebtoken(alg: Alg) {
        let master = MasterKey::generate();
        let stored = SigningKey::generate(alg, &master, 0, 0).unwrap();
        let set = KeySet::load(&[stored], &master).unwrap();
        let claims = json!({ "sub": "c", "aud": "a", "iss": "i", "exp": 4_000_000_000u64 });
        let token = set.active(1).unwrap().sign_jwt(&claims).unwrap();

        let jwks: JwkSet = serde_json::from_value(set.jwks()).unwrap();
        let header = decode_header(&token).unwrap();
        assert_eq!(header.typ.as_deref(), Some("at+jwt"));
        let jwk = jwks.find(header.kid.as_deref().unwrap()).unwrap();
        let mut validation = Validation::new(header.alg);
        validation.set_audience(&["a"]);
        validation.set_issuer(&["i"]);
        let decoded = decode::<Value>(&token, &DecodingKey::from_jwk(jwk).unwrap(), &validation).unwrap();
        assert_eq!(decoded.claims["sub"], "c");
    }

    #[test]
    fn rs256_verifies_independently() {
        verify_with_jsonwebtoken(Alg::Rs256);
    }

    #[test]
    fn es256_verifies_independently() {
        verify_with_jsonwebtoken(Alg::Es256);
    }

    #[test]
    fn eddsa_verifies_independently() {
        verify_with_jsonwebtoken(Alg::EdDsa);
    }

    #[test]
    fn verifies_own_tokens_and_rejects_tampering() {
        let master = MasterKey::generate();
        let stored = SigningKey::generate(Alg::Es256, &master, 0, 0).unwrap();
        let set = KeySet::load(&[stored], &master).unwrap();
        let token = set.active(1).unwrap().sign_jwt(&json!({ "sub": "x" })).unwrap();
        assert_eq!(set.verify(&token).unwrap()["sub"], "x");
        let mut tampered = token.clone();
        tampered.push('A');
        assert!(set.verify(&tampered).is_none());
        let (head, rest) = token.split_once('.').unwrap();
        let none_header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"at+jwt"}"#);
        assert!(set.verify(&format!("{none_header}.{rest}")).is_none());
        assert!(set.verify(head).is_none());
        let other = KeySet::load(&[SigningKey::generate(Alg::Es256, &master, 0, 0).unwrap()], &master).unwrap();
        assert!(other.verify(&token).is_none());
    }

    #[test]
    fn a_crit_header_is_refused_even_when_the_signature_is_good() {
        let master = MasterKey::generate();
        let stored = SigningKey::generate(Alg::Es256, &master, 0, 0).unwrap();
        let key = SigningKey::load(&stored, &master).unwrap();
        let set = KeySet::load(&[stored], &master).unwrap();
        let payload = URL_SAFE_NO_PAD.encode(r#"{"sub":"x"}"#);
        let token = |extra: &str| {
            let header = format!(r#"{{"alg":"ES256","kid":"{}","typ":"at+jwt"{extra}}}"#, key.kid);
            let signed = format!("{}.{payload}", URL_SAFE_NO_PAD.encode(header));
            let signature = URL_SAFE_NO_PAD.encode(key.signer.sign(signed.as_bytes()).unwrap());
            format!("{signed}.{signature}")
        };
        assert_eq!(set.verify(&token("")).unwrap()["sub"], "x", "the same token without crit verifies");
        for crit in [r#"["exp"]"#, "[]", "null"] {
            assert!(set.verify(&token(&format!(r#","crit":{crit}"#))).is_none(), "crit {crit}");
        }
    }

    #[test]
    fn superseded_keys_retire_after_the_longest_token_lifetime() {
        let master = MasterKey::generate();
        let old = SigningKey::generate(Alg::EdDsa, &master, 0, 0).unwrap();
        let new = SigningKey::generate(Alg::EdDsa, &master, 100, 200).unwrap();
        let set = KeySet::load(&[old.clone(), new], &master).unwrap();
        assert!(set.retirable(150, 60).is_empty(), "the new key is not signing yet");
        assert!(set.retirable(250, 60).is_empty(), "tokens of the old key may still be valid");
        assert_eq!(set.retirable(261, 60), vec![old.kid]);
    }

    #[test]
    fn rotation_activates_after_existing_keys() {
        let master = MasterKey::generate();
        let old = SigningKey::generate(Alg::EdDsa, &master, 100, 100).unwrap();
        assert_eq!(next_activation(std::slice::from_ref(&old), 100, 0), 101);
        assert_eq!(next_activation(&[old], 100, 360), 460);
        assert_eq!(next_activation(&[], 100, 0), 100);
    }

    #[test]
    fn newest_activated_key_signs() {
        let master = MasterKey::generate();
        let old = SigningKey::generate(Alg::Es256, &master, 0, 0).unwrap();
        let next = SigningKey::generate(Alg::Es256, &master, 10, 100).unwrap();
        let set = KeySet::load(&[old.clone(), next.clone()], &master).unwrap();
        assert_eq!(set.active(50).unwrap().kid, old.kid);
        assert_eq!(set.active(100).unwrap().kid, next.kid);
        assert_eq!(set.jwks()["keys"].as_array().unwrap().len(), 2);
    }
}
