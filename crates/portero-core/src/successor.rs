//! Durable retry of a refresh whose answer was lost (`refresh_retry_window_seconds`).
//!
//! With a retry window, the refresh token a rotation issues is not random: it is
//! base64url(HMAC-SHA256(K, parent)), K derived from the master key every node shares. A second
//! redemption of the parent within the window can then be recognised from the stored hashes
//! alone, on any node and after a restart: the child's hash is recomputed from the parent the
//! client presents, and if that child is stored, live and unused, the client gets it again. No
//! token is stored in clear, and a child cannot be computed without both the parent and K.

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::keys::MasterKey;
use crate::store::RefreshTokenRecord;

/// What K is derived for; a new label would give every node a new K at once.
const LABEL: &str = "portero/refresh-token-rotation/v1";

/// K: the key that derives a refresh token's successor from it.
pub struct SuccessorKey(hmac::Key);

impl SuccessorKey {
    pub fn new(master: &MasterKey) -> Self {
        Self(hmac::Key::new(hmac::HMAC_SHA256, &master.derive(LABEL)))
    }

    /// The refresh token that rotating `parent` issues.
    pub fn child_of(&self, parent: &str) -> String {
        URL_SAFE_NO_PAD.encode(hmac::sign(&self.0, parent.as_bytes()))
    }
}

/// Whether `child`, the stored successor of a parent used at `parent_used_at`, may be handed out
/// again at `now` under a retry window of `window` seconds: the window has not passed since the
/// rotation, and the child was neither used nor revoked nor has it expired.
pub fn redeliverable(child: &RefreshTokenRecord, parent_used_at: i64, window: i64, now: i64) -> bool {
    window > 0
        && now - parent_used_at <= window
        && child.used_at.is_none()
        && child.revoked_at.is_none()
        && child.expires_at > now
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_are_deterministic_per_key_and_parent() {
        let master = MasterKey::generate();
        let (one, again) = (SuccessorKey::new(&master), SuccessorKey::new(&master));
        assert_eq!(one.child_of("parent"), again.child_of("parent"));
        assert_ne!(one.child_of("parent"), one.child_of("other parent"));
        let other = SuccessorKey::new(&MasterKey::generate());
        assert_ne!(one.child_of("parent"), other.child_of("parent"));
        assert_eq!(one.child_of("parent").len(), 43, "32 bytes, base64url without padding");
    }
}
