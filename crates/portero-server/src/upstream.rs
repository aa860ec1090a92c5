//! Lazy migration through the old provider (issue 14, `[[upstream]]`): when a token request's
//! client (or, for the password grant, its user) is unknown to Portero, the request is
//! forwarded as it came (method, body, query, `Authorization`, content type, the API-version
//! header) to the old provider's token endpoint. If that issues a token the credentials were
//! right: the client or user is stored here (the secret as argon2id, hashed off the async
//! threads), a `migrated` audit event is recorded, and the request then runs through Portero's
//! own pipeline, which answers with Portero's token in the request's dialect. If the old
//! provider refuses (or is away, or slow: 5 s), nothing is stored and the pipeline refuses the
//! unknown client or user as it always does: the same RFC error, counted by the same throttle.
//!
//! Only `scope` and `expires_in` are read from the old provider's answer; it is never stored or
//! logged. Nothing is forwarded after the cutoff, for a key or address the throttle blocks, or
//! for an assertion (`private_key_jwt`).

use std::sync::OnceLock;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::HeaderMap;
use portero_core::admin::{self, NewClient};
use portero_core::audit::AuditEvent;
use portero_core::client_auth::ClientCredentials;
use portero_core::store::TokenOwner;
use portero_core::store::prelude::*;
use portero_core::token_endpoint::TokenInput;

use crate::config::Upstream;
use crate::state::AppState;

/// How long the old provider may take to answer.
pub const TIMEOUT: Duration = Duration::from_secs(5);
/// The most of its answer that is read.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// The request as it arrived, for forwarding.
pub struct Received {
    pub query: Option<String>,
    /// `Authorization`, `Content-Type`, `Accept` and the API-version header, as sent.
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Received {
    /// The parts of a request that are forwarded; `version_header` is the configured one.
    pub fn new(parts: &axum::http::request::Parts, version_header: Option<&str>, body: Bytes) -> Self {
        let mut headers = HeaderMap::new();
        let names = [axum::http::header::AUTHORIZATION, axum::http::header::CONTENT_TYPE, axum::http::header::ACCEPT];
        for name in names {
            if let Some(value) = parts.headers.get(&name) {
                headers.insert(name, value.clone());
            }
        }
        if let Some(name) = version_header.and_then(|n| axum::http::HeaderName::from_bytes(n.as_bytes()).ok())
            && let Some(value) = parts.headers.get(&name)
        {
            headers.insert(name, value.clone());
        }
        Self { query: parts.uri.query().map(str::to_owned), headers, body }
    }
}

/// The upstream standing behind `path` now, if any.
pub fn for_path<'a>(upstreams: &'a [Upstream], path: &str, now: i64) -> Option<&'a Upstream> {
    upstreams.iter().find(|u| now < u.cutoff && u.paths.iter().any(|p| p == path))
}

/// Whether a token URL may be used: `https`, or plain `http` to a loopback address.
pub fn check_token_url(url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("upstream token_url {url:?}: {e}"))?;
    let host = parsed.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']');
    let loopback = host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(format!("upstream token_url {url:?} must be https (plain http only to a loopback address)")),
    }
}

/// The client requests to old providers go out with: a timeout and no redirects, or none at
/// all (never reqwest's default client, which has neither).
fn http() -> Option<&'static reqwest::Client> {
    static CLIENT: OnceLock<Option<reqwest::Client>> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            let built = reqwest::Client::builder().timeout(TIMEOUT).redirect(reqwest::redirect::Policy::none()).build();
            built
                .map_err(|error| tracing::error!(%error, "no HTTP client for the old provider: nothing is forwarded"))
                .ok()
        })
        .as_ref()
}

/// Who the old provider is asked about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unknown {
    /// The client (and, for the password grant, its user).
    Client,
    /// The user of a known client.
    User,
}

/// Migrates the client or user of `input` from `upstream` if Portero does not know it and the
/// old provider accepts the credentials. Never fails the request: anything that goes wrong
/// leaves the pipeline to refuse the unknown credentials as usual.
pub async fn migrate(state: &AppState, upstream: &Upstream, received: &Received, input: &TokenInput, now: i64) {
    let ctx = &state.ctx;
    let Ok(credentials) = ClientCredentials::from_request(input.authorization.as_deref(), &input.params) else {
        return;
    };
    let Some(secret) = credentials.secret.clone() else { return };
    let grant = input.params.get("grant_type").unwrap_or_default().to_owned();
    let username = input.params.get("username").map(str::to_owned);
    let password = input.params.get("password").map(str::to_owned);
    let Ok(client) = ctx.clients.get(&ctx.store, &credentials.client_id).await else { return };
    let unknown = match &client {
        None if upstream.grants.contains(&grant) => Unknown::Client,
        Some(client) if grant == "password" && client.disabled_at.is_none() => {
            let Some(username) = &username else { return };
            match ctx.store.find_users(username, &client.tenants).await {
                Ok(users) if users.is_empty() => Unknown::User,
                _ => return,
            }
        }
        _ => return,
    };
    if grant == "password" && (username.is_none() || password.is_none() || upstream.tenant.is_none()) {
        return;
    }
    // A known client's user is asked about only once the client has proven itself here: nobody
    // makes Portero send the old provider credentials in the name of a client they do not hold.
    if unknown == Unknown::User
        && portero_core::client_auth::authenticate(ctx, &credentials, input.client_cert.as_ref(), input.source, now)
            .await
            .is_err()
    {
        return;
    }
    // A blocked caller or key is not forwarded: the pipeline answers it 429.
    let key = match (unknown, &username) {
        (Unknown::User, Some(username)) => portero_core::throttle::user_key(&credentials.client_id, username),
        _ => portero_core::throttle::client_key(&credentials.client_id),
    };
    if ctx.throttle.check_address(&ctx.store, input.source, now).await.is_err()
        || ctx.throttle.check(&ctx.store, &key, now).await.is_err()
    {
        return;
    }
    let Some(answer) = forward(upstream, received).await else {
        tracing::info!(client_id = %credentials.client_id, "the old provider did not issue a token: nothing migrated");
        return;
    };
    let tenant = upstream.tenant.clone();
    let result = match unknown {
        Unknown::Client => {
            let stored = store_client(state, upstream, &answer, &credentials.client_id, secret, now).await;
            match (stored, &username, &password) {
                (Ok(()), Some(username), Some(password)) if grant == "password" => {
                    store_user(state, tenant.as_deref(), &credentials.client_id, username, password, now).await
                }
                (stored, _, _) => stored,
            }
        }
        Unknown::User => match (&username, &password) {
            (Some(username), Some(password)) => {
                store_user(state, tenant.as_deref(), &credentials.client_id, username, password, now).await
            }
            _ => Ok(()),
        },
    };
    if let Err(error) = result {
        tracing::warn!(%error, client_id = %credentials.client_id, "storing a migrated credential failed");
    }
}

/// What is read of the old provider's answer.
struct Answer {
    scope: Option<String>,
    expires_in: Option<i64>,
}

/// Sends the request on; `Some` only when the old provider issued a token.
async fn forward(upstream: &Upstream, received: &Received) -> Option<Answer> {
    let mut url = upstream.token_url.clone();
    if let Some(query) = &received.query {
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str(query);
    }
    let mut request = http()?.post(url).body(received.body.clone());
    for (name, value) in &received.headers {
        request = request.header(name, value);
    }
    let mut response = match request.send().await {
        Ok(response) => response,
        Err(error) => {
            tracing::warn!(error = %error.without_url(), "the old provider could not be reached");
            return None;
        }
    };
    if !response.status().is_success() {
        return None;
    }
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return None;
        }
        body.extend_from_slice(&chunk);
    }
    let value: serde_json::Value = serde_json::from_slice(&body).ok()?;
    let issued = value.get("access_token").and_then(|t| t.as_str()).is_some_and(|t| !t.is_empty())
        && value.get("success").and_then(|s| s.as_bool()) != Some(false);
    issued.then(|| Answer {
        scope: value.get("scope").and_then(|s| s.as_str()).map(str::to_owned),
        expires_in: value.get("expires_in").and_then(|e| e.as_i64()),
    })
}

/// Hashes a secret with argon2id on the argon2 workers.
async fn hash(secret: String) -> Result<String, String> {
    Ok(portero_core::secret::hash_password_async(&secret).await)
}

async fn store_client(
    state: &AppState,
    upstream: &Upstream,
    answer: &Answer,
    id: &str,
    secret: String,
    now: i64,
) -> Result<(), String> {
    let ctx = &state.ctx;
    // The old provider's scopes and lifetime, within what the operator allows.
    let scopes = match &answer.scope {
        Some(granted) => {
            let kept: Vec<&str> =
                granted.split(' ').filter(|s| upstream.scopes.iter().any(|allowed| allowed == s)).collect();
            if kept.is_empty() { upstream.scopes.join(" ") } else { kept.join(" ") }
        }
        None => upstream.scopes.join(" "),
    };
    let token_ttl = match (answer.expires_in.filter(|e| *e > 0), upstream.token_ttl) {
        (Some(answered), Some(most)) => Some(answered.min(most)),
        (answered, most) => most.or(answered.map(|a| a.min(30 * 86_400))),
    };
    let new = NewClient {
        id: id.to_owned(),
        grants: upstream.grants.clone(),
        scopes,
        audiences: upstream.audiences.clone(),
        tenants: upstream.tenant.iter().cloned().collect(),
        token_ttl,
        ..NewClient::default()
    };
    let client =
        admin::create_client_with_hash(&ctx.store, new, hash(secret).await?, now).await.map_err(|e| e.to_string())?;
    ctx.store.record_upstream(TokenOwner::Client(&client.id), now).await.map_err(|e| e.to_string())?;
    ctx.clients.invalidate(&client.id);
    audit(state, "client", &client.id, None, now);
    Ok(())
}

async fn store_user(
    state: &AppState,
    tenant: Option<&str>,
    client_id: &str,
    username: &str,
    password: &str,
    now: i64,
) -> Result<(), String> {
    let ctx = &state.ctx;
    let tenant = tenant.ok_or("the upstream names no tenant for users")?;
    if admin::find_user(&ctx.store, tenant, username).await.is_ok() {
        return Ok(()); // Portero has this user already: its own password decides.
    }
    let hashed = hash(password.to_owned()).await?;
    let user =
        admin::create_user_with_hash(&ctx.store, tenant, username, hashed, now).await.map_err(|e| e.to_string())?;
    ctx.store.record_upstream(TokenOwner::User(&user.id), now).await.map_err(|e| e.to_string())?;
    audit(state, "user", client_id, Some(&user.id), now);
    Ok(())
}

/// The `migrated` audit event (and log line) of a stored client or user.
fn audit(state: &AppState, what: &str, client_id: &str, user_id: Option<&str>, now: i64) {
    let mut event = AuditEvent::new(now, "migrated", what);
    event.client_id = Some(client_id.to_owned());
    event.subject = user_id.map(str::to_owned);
    event.detail = Some(format!("{what} migrated from the old provider at its first successful login"));
    state.ctx.audit.record(event);
    tracing::info!(what, client_id, "migrated from the old provider");
}
