//! DPoP at the resource server (RFC 9449 §7): `Authorization: DPoP <token>` with a `DPoP`
//! proof made for this request by the key the token is bound to.
//!
//! The proof is checked by `portero_wire::dpop` (the same code as the token endpoint's): its
//! `htm` and `htu` must be this request's, `ath` the token's hash, `iat` recent, and its key's
//! thumbprint the token's `cnf.jkt`. Each proof is accepted once: its `jti` is kept in a
//! bounded in-memory set until the proof has aged out of the window. Run several API replicas
//! and a proof could be replayed once on each; the window (60 s by default) bounds that.

use std::collections::HashMap;
use std::sync::Mutex;

use portero_wire::dpop::{self, Expected};

use crate::error::{Rejection, VerifyError};

/// How old a proof may be at the resource server, by default.
pub(crate) const DEFAULT_MAX_AGE: i64 = 60;
/// How far ahead of this clock a proof's `iat` may be.
pub(crate) const LEEWAY: i64 = 5;
/// How many proofs are remembered at most, by default: enough for several thousand requests a
/// second within the default window.
pub(crate) const DEFAULT_REPLAY_CAPACITY: usize = 200_000;

/// The proofs seen and when each may be forgotten, by a digest of thumbprint and `jti`.
pub(crate) struct ReplayCache {
    seen: Mutex<HashMap<[u8; 16], i64>>,
    capacity: usize,
}

impl ReplayCache {
    pub(crate) fn new(capacity: usize) -> Self {
        Self { seen: Mutex::new(HashMap::new()), capacity: capacity.max(1) }
    }

    /// `true` the first time `key` is offered before `expires_at`. When full, expired entries
    /// go first; if none has expired the proof is refused (fail closed) rather than forgotten.
    fn first_use(&self, key: &str, now: i64, expires_at: i64) -> Result<bool, VerifyError> {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, key.as_bytes());
        let mut short = [0u8; 16];
        short.copy_from_slice(&digest.as_ref()[..16]);
        let mut seen = self.seen.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if seen.get(&short).is_some_and(|until| *until > now) {
            return Ok(false);
        }
        if seen.len() >= self.capacity {
            seen.retain(|_, until| *until > now);
            if seen.len() >= self.capacity {
                return Err(VerifyError::InvalidDpopProof("too many recent proofs to check for replay".into()));
            }
        }
        seen.insert(short, expires_at);
        Ok(true)
    }
}

/// What [`check`] needs of the verifier.
pub(crate) struct Settings {
    pub(crate) max_age: i64,
    pub(crate) replay: ReplayCache,
}

/// Checks `proof` for `token` (already verified, bound to `jkt`) sent as `method` to `url`.
pub(crate) fn check(
    settings: &Settings,
    (token, jkt): (&str, &str),
    proof: &str,
    (method, url): (&str, &str),
    now: i64,
) -> Result<(), VerifyError> {
    let expected = Expected { max_age: settings.max_age, leeway: LEEWAY, ..Expected::new(method, url, now) }
        .with_access_token(token);
    let proof = dpop::verify(proof, &expected).map_err(|e| VerifyError::InvalidDpopProof(e.0))?;
    if proof.thumbprint != jkt {
        return Err(VerifyError::DpopInvalidToken(Rejection::WrongDpopKey));
    }
    let expires_at = proof.iat.max(now) + settings.max_age + LEEWAY;
    if !settings.replay.first_use(&proof.replay_key(), now, expires_at)? {
        return Err(VerifyError::InvalidDpopProof("the proof was used before (jti replayed)".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_used_once_until_it_expires_and_a_full_cache_fails_closed() {
        let cache = ReplayCache::new(2);
        assert!(cache.first_use("a", 100, 160).unwrap());
        assert!(!cache.first_use("a", 120, 180).unwrap());
        assert!(cache.first_use("b", 120, 180).unwrap());
        assert!(cache.first_use("a", 161, 220).unwrap(), "expired entries may be reused");
        assert!(matches!(cache.first_use("c", 162, 220), Err(VerifyError::InvalidDpopProof(_))), "full: refuse");
        assert!(cache.first_use("c", 181, 240).unwrap(), "b expired: room again");
    }
}
