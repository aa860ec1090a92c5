//! `POST` on every token path: extract → core pipeline → render.

use std::net::IpAddr;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::Request;
use axum::response::Response;

use portero_core::OAuthError;
use portero_core::audit::{AuditEvent, AuditPermit};
use portero_core::error::ErrorCode;
use portero_core::params::FieldLimits;
use portero_core::token_endpoint::{Outcome, issue};

use crate::extract::{Rejected, is_server_side, token_input};
use crate::respond;
use crate::state::AppState;

pub use portero_core::clock::unix_now;

pub async fn token(State(state): State<AppState>, limits: FieldLimits, request: Request<Body>) -> Response {
    let policy = &state.ctx.policy;
    let version_header = policy.api_version.as_ref().map(|rule| rule.header.as_str());
    // Behind an old provider (lazy migration), the request is kept as it came, for forwarding.
    let upstream = crate::upstream::for_path(&state.config.upstreams, request.uri().path(), unix_now());
    let (request, received) = match upstream {
        None => (request, None),
        Some(_) => {
            let (parts, body) = request.into_parts();
            let bytes = match axum::body::to_bytes(body, state.config.max_body_bytes).await {
                Ok(bytes) => bytes,
                Err(_) => {
                    let error = OAuthError::invalid_request("the request body is too large or could not be read");
                    return respond::error(
                        &error,
                        &portero_core::dialect::Dialect::Standard,
                        &policy.default_locale,
                        Some(413),
                    );
                }
            };
            let received = crate::upstream::Received::new(&parts, version_header, bytes.clone());
            (Request::from_parts(parts, Body::from(bytes)), Some(received))
        }
    };
    let input = match token_input(request, &limits, state.config.max_body_bytes, version_header, &state.config).await {
        Ok(input) => input,
        Err(Rejected { error, dialect, status_override }) => {
            tracing::info!(error = %error, "token request rejected");
            return respond::error(&error, &dialect, &policy.default_locale, status_override);
        }
    };
    let dialect = input.dialect.clone();
    let source = input.source;
    let now = unix_now();
    let started = std::time::Instant::now();
    // The audit slot comes first: a token is issued only with room for its record (the writer
    // pushes back when the database falls behind), never minted and then left unaudited.
    let work = async {
        if let (Some(upstream), Some(received)) = (upstream, &received) {
            crate::upstream::migrate(&state, upstream, received, &input, now).await;
        }
        match state.ctx.audit.reserve(AUDIT_ROOM_WITHIN).await {
            Some(permit) => (Some(permit), issue(&state.ctx, input, now).await),
            None => {
                let error = OAuthError::temporarily_unavailable("no room in the audit trail: the writer is behind");
                (None, Outcome::failed(error, policy))
            }
        }
    };
    let (permit, outcome) = match tokio::time::timeout(state.config.request_timeout, work).await {
        Ok(done) => done,
        Err(_) => (None, Outcome::failed(OAuthError::temporarily_unavailable("request deadline passed"), policy)),
    };
    let grant = outcome.grant_type.map_or("-", |g| g.as_str());
    let result = match &outcome.result {
        Ok(_) => "issued",
        Err(error) => error.code.as_str(),
    };
    // `client_id` is set only once the client has authenticated: a caller cannot invent labels.
    crate::metrics::token_request(grant, outcome.client_id.as_deref(), result, started.elapsed());
    audit(&state, permit, &outcome, (grant, result), source, now);
    let response = match &outcome.result {
        Ok(response) => respond::token(response, &dialect, &outcome.locale),
        Err(error) => {
            let client_id = outcome.client_id.as_deref().unwrap_or("-");
            let grant = outcome.grant_type.map(|g| g.as_str()).unwrap_or("-");
            if is_server_side(error.code) {
                tracing::error!(error = %error, client_id, grant, "token request failed");
            } else {
                tracing::info!(error = %error, client_id, grant, "token request refused");
            }
            respond::error(error, &dialect, &outcome.locale, None)
        }
    };
    with_dpop_nonce(response, outcome.dpop_nonce.as_deref())
}

/// RFC 9449 §8: with nonces on, every answer of the token endpoint hands out the current one.
fn with_dpop_nonce(mut response: Response, nonce: Option<&str>) -> Response {
    use axum::http::HeaderValue;
    if let Some(value) = nonce.and_then(|n| HeaderValue::from_str(n).ok()) {
        response.headers_mut().insert("dpop-nonce", value);
    }
    response
}

/// How long a token request waits for room in the audit trail before it is answered 503.
const AUDIT_ROOM_WITHIN: Duration = Duration::from_secs(2);

/// One audit event per token request that reached the pipeline: an issued token's in the slot
/// `permit` reserved for it, a refusal added to its count.
/// `labels` are the grant and result already worked out for the metrics; `now` is the request's time.
fn audit(
    state: &AppState,
    permit: Option<AuditPermit>,
    outcome: &Outcome,
    labels: (&'static str, &'static str),
    source: Option<IpAddr>,
    now: i64,
) {
    let (grant, result) = labels;
    let kind = match &outcome.result {
        Ok(_) => "token_issued",
        Err(error) if error.code == ErrorCode::SlowDown => "throttled",
        Err(_) => "token_refused",
    };
    let mut event = AuditEvent::new(now, kind, result);
    event.client_id = outcome.client_id.clone();
    if event.client_id.is_none() && outcome.presented_client_id.is_some() {
        // Who the caller claimed to be: `portero audit --client X` then shows the attack on X.
        event.client_id = outcome.presented_client_id.clone();
        event.authenticated = false;
    }
    event.subject = outcome.subject.clone();
    event.grant_type = (grant != "-").then(|| grant.to_owned());
    event.source = source.map(|ip| ip.to_string());
    if let Err(error) = &outcome.result {
        event.detail = error.detail.clone();
    }
    match permit {
        Some(permit) if event.is_kept() => permit.record(event),
        _ => state.ctx.audit.record(event),
    }
}

/// RFC 6749 §3.2: the token endpoint takes POST only; anything else is told so in the endpoint's
/// own error format.
pub async fn post_only() -> Response {
    use axum::http::{HeaderValue, StatusCode, header};
    let error = portero_core::OAuthError::invalid_request("the token endpoint accepts POST only");
    let mut response = respond::error(&error, &portero_core::dialect::Dialect::Standard, "en", Some(405));
    *response.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("POST"));
    response
}
