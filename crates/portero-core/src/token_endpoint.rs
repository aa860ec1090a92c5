//! The token endpoint as one pipeline (RFC 6749 §3.2, §5):
//! parse → authenticate client → proof of possession (DPoP, certificate) → grant → mint → store
//! → respond.

use serde_json::{Map, Value};

use crate::client_auth;
pub use crate::context::{Context, Policy};
use crate::dialect::Dialect;
use crate::dpop;
pub use crate::dpop::ProofInput;
use crate::error::{ErrorCode, OAuthError};
use crate::grant::{self, Authorization, GrantType, RefreshPlan};
use crate::mint::{Lifetimes, Minted, mint};
pub use crate::mtls::ClientCertificate;
use crate::params::Params;
use crate::request::TokenRequest;
use crate::store::{Client, Rotation, Store};

/// One token request as the HTTP layer read it.
#[derive(Debug)]
pub struct TokenInput {
    pub params: Params,
    /// The raw `Authorization` header, if any.
    pub authorization: Option<String>,
    pub dialect: Dialect,
    /// The value of the configured API-version header, if present.
    pub api_version: Option<String>,
    /// The caller's address, for per-address throttling.
    pub source: Option<std::net::IpAddr>,
    /// The request's DPoP proof and the path it came to (RFC 9449).
    pub dpop: ProofInput,
    /// The TLS client certificate of the connection, or the one a trusted proxy passed on
    /// (RFC 8705, RFC 9440).
    pub client_cert: Option<ClientCertificate>,
}

/// A successful token response (RFC 6749 §5.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    pub refresh_token: Option<String>,
    pub scope: Option<String>,
}

impl TokenResponse {
    pub fn to_json(&self) -> Map<String, Value> {
        let mut body = Map::new();
        body.insert("access_token".into(), self.access_token.clone().into());
        body.insert("token_type".into(), self.token_type.into());
        body.insert("expires_in".into(), self.expires_in.into());
        if let Some(refresh) = &self.refresh_token {
            body.insert("refresh_token".into(), refresh.clone().into());
        }
        if let Some(scope) = &self.scope {
            body.insert("scope".into(), scope.clone().into());
        }
        body
    }
}

/// The answer plus what rendering it needs to know.
#[derive(Debug)]
pub struct Outcome {
    pub result: Result<TokenResponse, OAuthError>,
    /// Locale for the envelope: the client's when it is known.
    pub locale: String,
    pub client_id: Option<String>,
    pub grant_type: Option<GrantType>,
    /// Whom the token was issued for, once known.
    pub subject: Option<String>,
    /// The client id the request presented, proven or not (for the audit trail only).
    pub presented_client_id: Option<String>,
    /// The `DPoP-Nonce` to send with the answer, when nonces are on (RFC 9449 §8).
    pub dpop_nonce: Option<String>,
}

impl Outcome {
    /// An answer given without running the pipeline to its end.
    pub fn failed(error: OAuthError, policy: &Policy) -> Self {
        Self {
            result: Err(error),
            locale: policy.default_locale.clone(),
            client_id: None,
            grant_type: None,
            subject: None,
            presented_client_id: None,
            dpop_nonce: None,
        }
    }
}

/// Runs the whole pipeline for one request at time `now` (unix seconds).
pub async fn issue<S: Store>(ctx: &Context<S>, input: TokenInput, now: i64) -> Outcome {
    let mut outcome = Outcome::failed(OAuthError::server_error("unreached"), &ctx.policy);
    if ctx.policy.dpop_nonce {
        outcome.dpop_nonce = Some(ctx.dpop_nonces.current(now));
    }
    outcome.result = run(ctx, input, now, &mut outcome).await;
    outcome
}

async fn run<S: Store>(
    ctx: &Context<S>,
    input: TokenInput,
    now: i64,
    outcome: &mut Outcome,
) -> Result<TokenResponse, OAuthError> {
    if let (Dialect::Envelope { .. }, Some(rule)) = (&input.dialect, &ctx.policy.api_version) {
        rule.check(input.api_version.as_deref())?;
    }
    let mut request = TokenRequest::parse(&input.params, input.authorization.as_deref())?;
    outcome.grant_type = Some(request.grant.grant_type());
    outcome.presented_client_id = Some(request.client.client_id.clone());
    let proof = dpop::read(ctx, &input.dpop, now)?;
    let certificate = input.client_cert.as_ref();
    let client = client_auth::authenticate(ctx, &request.client, certificate, input.source, now).await?;
    outcome.client_id = Some(client.id.clone());
    if let Some(locale) = &client.locale {
        outcome.locale = locale.clone();
    }
    let proof = dpop::bind(ctx, &client, proof, now).await?;
    request.confirmation = crate::mtls::confirm(&client, certificate, proof)?;
    let authz = grant::handle(ctx, &client, request, input.source, now).await?;
    let lifetimes =
        Lifetimes { access_token: ctx.policy.access_token_ttl, refresh_token: ctx.policy.refresh_token_ttl };
    let minted = mint(&ctx.keys.current(), &ctx.policy.issuer, &client, &authz, &lifetimes, now)?;
    store(ctx, &client, &authz, &minted, input.source, now).await?;
    tracing::info!(client_id = %client.id, grant = authz.grant_type.as_str(), sub = %authz.subject, "token issued");
    outcome.subject = Some(authz.subject.clone());
    Ok(TokenResponse {
        access_token: minted.access_token,
        // RFC 9449 §5: a DPoP-bound access token is of type DPoP.
        token_type: if authz.cnf.as_ref().is_some_and(|c| c.jkt.is_some()) { "DPoP" } else { "Bearer" },
        expires_in: minted.expires_in,
        refresh_token: minted.refresh_token,
        scope: (!authz.scopes.is_empty()).then(|| authz.scopes.join(" ")),
    })
}

/// Whether the parent `old_hash` lost to a rotation that stored the same child `ours` (derived
/// from the same parent) and that child may be handed out again under the retry window.
async fn concurrent_retry<S: Store>(
    ctx: &Context<S>,
    client: &Client,
    old_hash: &str,
    ours: &crate::store::RefreshTokenRecord,
    now: i64,
) -> Result<bool, OAuthError> {
    let window = client.refresh_retry_window.unwrap_or(ctx.policy.refresh_retry_window);
    let (Some(parent), Some(child)) =
        (ctx.store.find_refresh_token(old_hash).await?, ctx.store.find_refresh_token(&ours.hash).await?)
    else {
        return Ok(false);
    };
    let used_at = parent.used_at.unwrap_or(now);
    Ok(child.family_id == ours.family_id && crate::successor::redeliverable(&child, used_at, window, now))
}

/// Persists the refresh token: a new family, or an atomic rotation that only one caller wins.
async fn store<S: Store>(
    ctx: &Context<S>,
    client: &Client,
    authz: &Authorization,
    minted: &Minted,
    source: Option<std::net::IpAddr>,
    now: i64,
) -> Result<(), OAuthError> {
    let Some(record) = &minted.refresh_record else {
        return Ok(());
    };
    match &authz.refresh {
        RefreshPlan::None | RefreshPlan::Redeliver { .. } => Ok(()),
        RefreshPlan::NewFamily => Ok(ctx.store.insert_refresh_token(record).await?),
        RefreshPlan::Rotate { old_hash, family_id, successor, .. } => {
            // Noted until answered: if the outcome is lost, the client's retry can still redeem.
            let in_flight = ctx.pending.begin(old_hash, &record.hash);
            let rotation = ctx.store.rotate_refresh_token(old_hash, record).await?;
            in_flight.settle();
            match rotation {
                Rotation::Rotated => Ok(()),
                // A concurrent redemption of the same parent won with the same derived child:
                // within the retry window, this caller is answered with that child too.
                Rotation::AlreadyUsed
                    if successor.is_some() && concurrent_retry(ctx, client, old_hash, record, now).await? =>
                {
                    Ok(())
                }
                Rotation::AlreadyUsed => {
                    // Lost a race with another redemption of the same token: treat as reuse.
                    let revoked = ctx.store.revoke_refresh_family(family_id, now).await?;
                    tracing::warn!(client_id = %client.id, family = %family_id, revoked, "concurrent refresh token reuse: family revoked");
                    crate::audit::family_revoked(
                        &ctx.audit,
                        &client.id,
                        &authz.subject,
                        family_id,
                        revoked,
                        source,
                        now,
                    )
                    .await;
                    Err(OAuthError::new(ErrorCode::InvalidGrant, "the refresh token is invalid, expired or revoked")
                        .with_detail("refresh token already used"))
                }
            }
        }
    }
}
