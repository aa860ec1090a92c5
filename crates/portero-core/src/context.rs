//! What the endpoints run with: the server-wide policy and the parts built once at start.

use crate::client_cache::ClientCache;
use crate::dialect::ApiVersionRule;
use crate::keys::KeyRing;
use crate::secret::Verifier;
use crate::throttle::Throttle;

/// Server-wide token policy.
#[derive(Debug, Clone)]
pub struct Policy {
    /// `iss` of every token, and the default `aud` of a client without audiences.
    pub issuer: String,
    pub access_token_ttl: i64,
    /// Absolute lifetime of a refresh-token family.
    pub refresh_token_ttl: i64,
    /// Seconds after a rotation in which redeeming the parent again answers with the same child
    /// (see `crate::successor`); 0 makes every second redemption reuse. Clients may override it.
    pub refresh_retry_window: i64,
    pub api_version: Option<ApiVersionRule>,
    /// Locale of envelope messages for clients without one.
    pub default_locale: String,
    /// DPoP proofs must carry a nonce this server issued (RFC 9449 §8, `dpop_nonce`).
    pub dpop_nonce: bool,
}

/// Everything the pipeline needs, built once at start.
pub struct Context<S> {
    pub store: S,
    pub keys: KeyRing,
    pub policy: Policy,
    pub verifier: Verifier,
    pub clients: ClientCache,
    pub throttle: Throttle,
    pub pending: crate::pending::PendingRotations,
    pub successors: crate::successor::SuccessorKey,
    pub dpop_nonces: crate::dpop_nonce::Nonces,
    /// JWK Sets of clients registered with a `jwks_uri`.
    pub remote_keys: crate::remote_keys::RemoteKeys,
    pub audit: std::sync::Arc<crate::audit::AuditLog>,
}
