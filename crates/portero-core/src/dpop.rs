//! DPoP at the token endpoint (RFC 9449 §5, §8): a token request with a valid proof gets tokens
//! bound to the proof's key (`cnf.jkt`), and a client registered with `require_dpop` gets
//! nothing without one.
//!
//! The proof itself is checked by `portero_wire::dpop` (shared with the verifier); this module
//! adds what needs the server's state: the `jti` is remembered in the database until the proof
//! could no longer be accepted, so a replay is refused on every node, and with `dpop_nonce` on,
//! the proof must carry a nonce this server issued. Nonces are stateless: an HMAC of the current
//! five-minute window under a key derived from the master key every node shares, so any node
//! accepts any node's nonce, for one to two windows.

use aws_lc_rs::{constant_time, hmac};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use portero_wire::dpop::{self, Expected};

use crate::context::Context;
use crate::error::{ErrorCode, OAuthError};
use crate::keys::MasterKey;
use crate::store::{Client, Store};

pub use portero_wire::Confirmation;
pub use portero_wire::dpop::SIGNING_ALGS;

/// How long one nonce window lasts: a nonce is accepted in its window and the next.
const NONCE_WINDOW: i64 = 300;
/// What the nonce key is derived for.
const NONCE_LABEL: &str = "portero/dpop-nonce/v1";
/// Replay records of proofs start with ':', which no client id can (assertion records are
/// `client:jti`), so the two kinds never collide.
const REPLAY_PREFIX: &str = ":dpop:";

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

/// What the token endpoint read of a request for its proof.
#[derive(Debug, Clone, Default)]
pub struct ProofInput {
    /// The `DPoP` header, if the request had one.
    pub proof: Option<String>,
    /// The path the request came to; the proof's `htu` must be the issuer's URL with it.
    pub path: String,
}

/// The key the tokens of this request are bound to (`None`: no proof, Bearer tokens), after
/// every check of RFC 9449 §4.3 and the client's `require_dpop`.
pub async fn check<S: Store>(
    ctx: &Context<S>,
    client: &Client,
    input: &ProofInput,
    now: i64,
) -> Result<Option<Confirmation>, OAuthError> {
    let Some(text) = input.proof.as_deref() else {
        if client.require_dpop {
            return Err(invalid_proof("this client must send a DPoP proof"));
        }
        return Ok(None);
    };
    let url = format!("{}{}", ctx.policy.issuer.trim_end_matches('/'), input.path);
    let proof = dpop::verify(text, &Expected::new("POST", &url, now)).map_err(|e| invalid_proof(e.to_string()))?;
    if ctx.policy.dpop_nonce && !proof.nonce.as_deref().is_some_and(|n| ctx.dpop_nonces.accepts(n, now)) {
        return Err(OAuthError::new(
            ErrorCode::UseDpopNonce,
            "the DPoP proof must carry the nonce of the DPoP-Nonce header",
        )
        .with_detail("missing or stale DPoP nonce"));
    }
    // Kept until no clock within the window would accept the proof again.
    let expires_at = proof.iat.max(now) + dpop::DEFAULT_MAX_AGE + dpop::DEFAULT_LEEWAY;
    if !ctx.store.remember_jti(&format!("{REPLAY_PREFIX}{}", proof.replay_key()), expires_at).await? {
        return Err(invalid_proof("the DPoP proof was used before (jti replayed)"));
    }
    Ok(Some(Confirmation::dpop(proof.thumbprint)))
}

/// The one answer to every bad proof; the reason goes to the log only.
fn invalid_proof(reason: impl Into<String>) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidDpopProof, "the DPoP proof is missing or invalid").with_detail(reason.into())
}

/// Whether a refresh token bound to `bound` (a key thumbprint, or `None`) may be redeemed by a
/// request whose proof showed `presented` (RFC 9449 §5.0: the same key, always).
pub fn refresh_allowed(bound: Option<&str>, presented: Option<&Confirmation>) -> bool {
    match bound {
        None => true,
        Some(jkt) => presented
            .and_then(|c| c.jkt.as_deref())
            .is_some_and(|p| constant_time::verify_slices_are_equal(p.as_bytes(), jkt.as_bytes()).is_ok()),
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

    #[test]
    fn a_bound_refresh_token_needs_a_proof_from_its_key() {
        let key = Confirmation::dpop("thumb");
        assert!(refresh_allowed(None, None));
        assert!(refresh_allowed(None, Some(&key)));
        assert!(refresh_allowed(Some("thumb"), Some(&key)));
        assert!(!refresh_allowed(Some("thumb"), None));
        assert!(!refresh_allowed(Some("thumb"), Some(&Confirmation::dpop("other"))));
        assert!(!refresh_allowed(Some("thumb"), Some(&Confirmation::certificate("thumb"))));
    }
}
