//! DPoP at the token endpoint (RFC 9449 §5, §8): a token request with a valid proof gets tokens
//! bound to the proof's key (`cnf.jkt`), and a client registered with `require_dpop` gets
//! nothing without one.
//!
//! The proof itself is checked by `portero_wire::dpop` (shared with the verifier); this module
//! adds what needs the server's state: the `jti` is remembered in the database until the proof
//! could no longer be accepted, so a replay is refused on every node, and with `dpop_nonce` on,
//! the proof must carry a nonce this server issued (`crate::dpop_nonce`).

use aws_lc_rs::constant_time;
use portero_wire::dpop::{self, Expected};

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
