//! DPoP nonces (RFC 9449 §8), stateless: an HMAC of the current five-minute window under a key
//! derived from the master key every node shares, so any node accepts any node's nonce, for one
//! to two windows, and nothing is stored.

use aws_lc_rs::{constant_time, hmac};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::keys::MasterKey;

/// How long one nonce window lasts: a nonce is accepted in its window and the next.
const NONCE_WINDOW: i64 = 300;
/// What the nonce key is derived for.
const NONCE_LABEL: &str = "portero/dpop-nonce/v1";

/// The key of this server's DPoP nonces.
pub struct Nonces(hmac::Key);

impl Nonces {
    pub fn new(master: &MasterKey) -> Self {
        Self(hmac::Key::new(hmac::HMAC_SHA256, &master.derive(NONCE_LABEL)))
    }

    /// The nonce to hand out at `now` (the `DPoP-Nonce` header).
    pub fn current(&self, now: i64) -> String {
        self.for_window(now.div_euclid(NONCE_WINDOW))
    }

    /// Whether `nonce` is this window's or the last one's, compared in constant time.
    pub fn accepts(&self, nonce: &str, now: i64) -> bool {
        let window = now.div_euclid(NONCE_WINDOW);
        [window, window - 1]
            .iter()
            .any(|w| constant_time::verify_slices_are_equal(nonce.as_bytes(), self.for_window(*w).as_bytes()).is_ok())
    }

    fn for_window(&self, window: i64) -> String {
        let tag = hmac::sign(&self.0, &window.to_be_bytes());
        URL_SAFE_NO_PAD.encode(&tag.as_ref()[..18])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_last_one_to_two_windows_and_belong_to_their_key() {
        let master = MasterKey::generate();
        let nonces = Nonces::new(&master);
        let now = 1_700_000_100;
        let nonce = nonces.current(now);
        assert!(nonces.accepts(&nonce, now));
        assert!(nonces.accepts(&nonce, now + NONCE_WINDOW));
        assert!(!nonces.accepts(&nonce, now + 2 * NONCE_WINDOW));
        assert!(!nonces.accepts(&nonce, now - NONCE_WINDOW));
        assert!(Nonces::new(&master).accepts(&nonce, now), "every node with the master key accepts it");
        assert!(!Nonces::new(&MasterKey::generate()).accepts(&nonce, now));
        assert!(!nonces.accepts("", now));
    }
}
