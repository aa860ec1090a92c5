//! DPoP at the token endpoint (RFC 9449 §5, §8): a token request with a valid proof gets tokens
//! bound to the proof's key (`cnf.jkt`), and a client registered with `require_dpop` gets
//! nothing without one.
//!
//! The proof itself is checked by `portero_wire::dpop` (shared with the verifier); this module
//! adds what needs the server's state: the `jti` is remembered in the database until the proof
//! could no longer be accepted, so a replay is refused on every node, and with `dpop_nonce` on,
//! the proof must carry a nonce this server issued (`crate::dpop_nonce`).

use aws_lc_rs::constant_time;
use portero_wire::dpop::{self, Expected, Proof};

use crate::context::Context;
use crate::error::{ErrorCode, OAuthError};
use crate::store::{Client, Store};

pub use portero_wire::Confirmation;
pub use portero_wire::dpop::SIGNING_ALGS;

/// Replay records of proofs start with ':', which no client id can (assertion records are
/// `client:jti`), so the two kinds never collide.
const REPLAY_PREFIX: &str = ":dpop:";

/// What the token endpoint read of a request for its proof.
#[derive(Debug, Clone, Default)]
pub struct ProofInput {
    /// The `DPoP` header, if the request had one.
    pub proof: Option<String>,
    /// The path the request came to; the proof's `htu` must be the issuer's URL with it.
    pub path: String,
}

/// Reads and checks the request's proof, if it has one: everything of RFC 9449 §4.3 that needs
/// no storage, and the nonce. Runs before client authentication, so a proof that would be
/// refused anyway (a missing nonce, most often) costs the client nothing: no assertion is spent.
pub fn read<S: Store>(ctx: &Context<S>, input: &ProofInput, now: i64) -> Result<Option<Proof>, OAuthError> {
    let Some(text) = input.proof.as_deref() else { return Ok(None) };
    let url = format!("{}{}", ctx.policy.issuer.trim_end_matches('/'), input.path);
    let proof = dpop::verify(text, &Expected::new("POST", &url, now)).map_err(|e| invalid_proof(e.to_string()))?;
    if ctx.policy.dpop_nonce && !proof.nonce.as_deref().is_some_and(|n| ctx.dpop_nonces.accepts(n, now)) {
        return Err(OAuthError::new(
            ErrorCode::UseDpopNonce,
            "the DPoP proof must carry the nonce of the DPoP-Nonce header",
        )
        .with_detail("missing or stale DPoP nonce"));
    }
    Ok(Some(proof))
}

/// The key the authenticated `client`'s tokens are bound to (`None`: no proof, Bearer tokens):
/// the proof is spent here (its `jti` recorded on every node) and `require_dpop` enforced.
pub async fn bind<S: Store>(
    ctx: &Context<S>,
    client: &Client,
    proof: Option<Proof>,
    now: i64,
) -> Result<Option<Confirmation>, OAuthError> {
    let Some(proof) = proof else {
        if client.require_dpop {
            return Err(invalid_proof("this client must send a DPoP proof"));
        }
        return Ok(None);
    };
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
