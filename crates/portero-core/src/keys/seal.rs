//! Private keys at rest: AES-256-GCM under the master key, with the `kid` as associated data so
//! a sealed key cannot be moved onto another key's row.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

use super::KeyError;
use crate::secret::fill_random;

/// The 32-byte key that seals signing keys. Its `Debug` never shows the bytes.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey([redacted])")
    }
}

impl MasterKey {
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        fill_random(&mut bytes);
        Self(bytes)
    }

    /// Reads 32 bytes written as base64 (standard or URL-safe) or 64 hex digits.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let text = text.trim();
        let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            (0..32)
                .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16))
                .collect::<Result<Vec<u8>, _>>()
                .map_err(|_| KeyError::MasterKey)?
        } else {
            STANDARD
                .decode(text)
                .or_else(|_| URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')))
                .map_err(|_| KeyError::MasterKey)?
        };
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| KeyError::MasterKey)?;
        Ok(Self(bytes))
    }

    /// A 32-byte key for one purpose, derived from this one (HMAC-SHA256 over `label`), so that
    /// the master key itself only ever seals.
    pub fn derive(&self, label: &str) -> [u8; 32] {
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &self.0);
        let mut out = [0u8; 32];
        out.copy_from_slice(aws_lc_rs::hmac::sign(&key, label.as_bytes()).as_ref());
        out
    }

    /// The form written to a key file.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    fn aead(&self) -> LessSafeKey {
        let unbound = UnboundKey::new(&AES_256_GCM, &self.0).expect("a 32-byte AES-256 key is valid"); // ok: fixed length
        LessSafeKey::new(unbound)
    }

    /// Encrypts `plaintext`, binding it to `kid`. Output: base64url(nonce ‖ ciphertext ‖ tag).
    pub fn seal(&self, kid: &str, plaintext: &[u8]) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        fill_random(&mut nonce);
        let mut buffer = plaintext.to_vec();
        self.aead()
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(kid.as_bytes()), &mut buffer)
            .expect("AES-GCM sealing of a small buffer cannot fail"); // ok: only fails past 64 GiB
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buffer);
        URL_SAFE_NO_PAD.encode(out)
    }

    /// Decrypts what [`seal`](Self::seal) produced for the same `kid`.
    pub fn open(&self, kid: &str, sealed: &str) -> Result<Vec<u8>, KeyError> {
        let bytes = URL_SAFE_NO_PAD.decode(sealed).map_err(|_| KeyError::Unseal)?;
        if bytes.len() < NONCE_LEN {
            return Err(KeyError::Unseal);
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| KeyError::Unseal)?;
        let mut buffer = ciphertext.to_vec();
        let plain =
            self.aead().open_in_place(nonce, Aad::from(kid.as_bytes()), &mut buffer).map_err(|_| KeyError::Unseal)?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_binding() {
        let key = MasterKey::generate();
        let sealed = key.seal("kid-1", b"private");
        assert_eq!(key.open("kid-1", &sealed).unwrap(), b"private");
        assert!(key.open("kid-2", &sealed).is_err());
        assert!(MasterKey::generate().open("kid-1", &sealed).is_err());
    }

    #[test]
    fn parses_base64_and_hex() {
        let key = MasterKey::generate();
        let again = MasterKey::parse(&key.to_base64()).unwrap();
        assert_eq!(again.0, key.0);
        assert!(MasterKey::parse(&"ab".repeat(32)).is_ok());
        assert!(MasterKey::parse("short").is_err());
    }
}
