//! The admin HTTP API: the CLI's operations for onboarding systems. Off unless an admin token
//! is configured; every call needs `Authorization: Bearer <admin token>`.
//!
//! `guard` runs before any handler: it checks the token before the body is read (an
//! unauthenticated caller cannot make the server read or buffer a body), counts wrong tokens
//! against the caller's address in the shared failure throttle (429 + `Retry-After` once
//! blocked), and writes one `admin_action` audit event per call, refused or not.

use std::net::IpAddr;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use portero_core::OAuthError;
use portero_core::audit::AuditEvent;
use portero_core::error::ErrorCode;
use portero_core::store::prelude::*;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::admin::{self, AdminError, NewClient};
use crate::routes::token::unix_now;
use crate::state::AppState;

/// Largest admin request body (a client with many audiences and tenants is a few KiB).
const MAX_ADMIN_BODY: usize = 64 * 1024;

pub(super) fn problem(status: StatusCode, error: &str, description: impl Into<String>) -> Response {
    let mut response =
        (status, Json(json!({ "error": error, "error_description": description.into() }))).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"portero-admin\""));
    }
    response
}

/// The HTTP face of an admin operation's failure.
pub(super) fn failed(error: impl Into<AdminError>) -> Response {
    let error = error.into();
    match error {
        AdminError::Invalid(message) => problem(StatusCode::BAD_REQUEST, "invalid_request", message),
        AdminError::Conflict(_) => problem(StatusCode::CONFLICT, "conflict", error.to_string()),
        AdminError::NotFound(message) => problem(StatusCode::NOT_FOUND, "not_found", message),
        AdminError::InUse(message) => problem(StatusCode::CONFLICT, "conflict", message),
        AdminError::Store(error) => {
            tracing::error!(%error, "admin request failed");
            problem(StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable", "storage error")
        }
        AdminError::Key(error) => problem(StatusCode::BAD_REQUEST, "invalid_request", error.to_string()),
    }
}

/// Why an admin request was refused before reaching the admin service.
pub(super) enum Refused {
    Disabled,
    Unauthorized,
    Throttled(OAuthError),
    Unavailable,
    TooLarge,
    BadBody,
    BadJson(String),
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        match self {
            Self::Disabled => problem(StatusCode::NOT_FOUND, "not_found", "the admin API is disabled"),
            Self::Unauthorized => problem(StatusCode::UNAUTHORIZED, "invalid_token", "a valid admin token is required"),
            Self::Throttled(error) => {
                let mut response = problem(StatusCode::TOO_MANY_REQUESTS, "slow_down", error.description);
                let seconds = error.retry_after.unwrap_or(1);
                response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
                response
            }
            Self::Unavailable => {
                let mut response = problem(StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable", "storage error");
                response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(1));
                response
            }
            Self::TooLarge => {
                problem(StatusCode::PAYLOAD_TOO_LARGE, "invalid_request", "the request body is too large")
            }
            Self::BadBody => problem(StatusCode::BAD_REQUEST, "invalid_request", "the request body could not be read"),
            Self::BadJson(why) => {
                problem(StatusCode::BAD_REQUEST, "invalid_request", format!("invalid JSON body: {why}"))
            }
        }
    }
}

/// What an admin call acted on, set by the handler for the audit event (never a secret).
#[derive(Clone)]
struct Target(String);

pub(super) fn with_target(mut response: Response, target: impl Into<String>) -> Response {
    response.extensions_mut().insert(Target(target.into()));
    response
}

/// The name of the operation a method and route ask for, for the audit trail.
fn action(method: &Method, route: &str) -> &'static str {
    match (method.as_str(), route) {
        ("GET", "/admin/tenants") => "list_tenants",
        ("POST", "/admin/tenants") => "create_tenant",
        ("GET", "/admin/clients") => "list_clients",
        ("POST", "/admin/clients") => "create_client",
        ("POST", "/admin/clients/{id}/secret") => "rotate_client_secret",
        ("POST", "/admin/users") => "create_user",
        ("GET", "/admin/keys") => "list_keys",
        ("POST", "/admin/keys") => "rotate_key",
        ("DELETE", "/admin/tenants/{id}") => "delete_tenant",
        ("GET", "/admin/clients/{id}") => "show_client",
        ("PATCH", "/admin/clients/{id}") => "update_client",
        ("DELETE", "/admin/clients/{id}") => "delete_client",
        ("POST", "/admin/clients/{id}/disable") => "disable_client",
        ("POST", "/admin/clients/{id}/enable") => "enable_client",
        ("GET", "/admin/users") => "list_users",
        ("PUT", "/admin/users/{id}/password") => "set_password",
        ("POST", "/admin/users/{id}/disable") => "disable_user",
        ("POST", "/admin/users/{id}/enable") => "enable_user",
        ("DELETE", "/admin/users/{id}") => "delete_user",
        ("POST", "/admin/revocations") => "revoke_tokens",
        ("DELETE", "/admin/keys/{kid}") => "revoke_key",
        ("GET", "/admin/openapi.json") => "openapi",
        ("POST", "/admin/import") => "import",
        ("GET", "/admin/import/status") => "import_status",
        _ => "other",
    }
}

/// Runs before every admin handler (as a route layer, so before its extractors read the body).
pub async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(expected) = state.admin_token_digest else {
        return Refused::Disabled.into_response();
    };
    let (parts, body) = request.into_parts();
    let route = parts.extensions.get::<axum::extract::MatchedPath>().map_or("", |p| p.as_str());
    let action = action(&parts.method, route);
    let source = crate::extract::caller_address(&parts, state.config.client_address_header.as_deref());
    let now = unix_now();
    let throttle = &state.ctx.throttle;
    // The address slot is taken before the token is compared, so a burst of guesses cannot all be checked.
    let response = match throttle.reserve_address(&state.ctx.store, source, now).await {
        Err(error) if error.code == ErrorCode::SlowDown => Refused::Throttled(error).into_response(),
        Err(error) => {
            tracing::error!(%error, "admin request: the throttle could not be read");
            Refused::Unavailable.into_response()
        }
        Ok(slots) if !crate::extract::bearer_is(&parts.headers, &expected) => {
            throttle.failed(slots);
            Refused::Unauthorized.into_response()
        }
        Ok(slots) => {
            throttle.release(&state.ctx.store, slots).await;
            next.run(Request::from_parts(parts, body)).await
        }
    };
    // Built before the wait: a response is not `Sync`, so no reference to it may cross an await.
    let event = audit_event(action, &response, source, now);
    state.ctx.audit.keep(event).await;
    response
}

/// One `admin_action` event: outcome `ok` or the HTTP status, detail the action and its target.
fn audit_event(action: &str, response: &Response, source: Option<IpAddr>, now: i64) -> AuditEvent {
    let status = response.status();
    let outcome = if status.is_success() { "ok".to_owned() } else { status.as_u16().to_string() };
    let detail = match response.extensions().get::<Target>() {
        Some(Target(target)) => format!("{action} {target}"),
        None => action.to_owned(),
    };
    let source = source.map(|ip| ip.to_string());
    tracing::info!(action = %detail, %outcome, source = source.as_deref().unwrap_or("-"), "admin action");
    let mut event = AuditEvent::new(now, "admin_action", outcome);
    event.source = source;
    event.detail = Some(detail);
    event
}

/// The body, once the caller is known to be the operator, bounded by `MAX_ADMIN_BODY`.
async fn read_body(body: Body) -> Result<Bytes, Refused> {
    read_body_within(body, MAX_ADMIN_BODY).await
}

pub(super) async fn read_body_within(body: Body, limit: usize) -> Result<Bytes, Refused> {
    axum::body::to_bytes(body, limit).await.map_err(|error| {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&error);
        while let Some(current) = cause {
            if current.is::<http_body_util::LengthLimitError>() {
                return Refused::TooLarge;
            }
            cause = current.source();
        }
        Refused::BadBody
    })
}

fn body<T: DeserializeOwned>(bytes: &Bytes) -> Result<T, Refused> {
    serde_json::from_slice(bytes).map_err(|e| Refused::BadJson(e.to_string()))
}

macro_rules! guard {
    ($expr:expr) => {
        match $expr {
            Ok(value) => value,
            Err(refused) => return refused.into_response(),
        }
    };
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTenant {
    name: String,
    id: Option<String>,
}

pub async fn create_tenant(State(state): State<AppState>, request: Body) -> Response {
    let bytes = guard!(read_body(request).await);
    let new: NewTenant = guard!(body(&bytes));
    let response = match admin::create_tenant(&state.ctx.store, &new.name, new.id.as_deref(), unix_now()).await {
        Ok(t) => {
            return with_target(
                (StatusCode::CREATED, Json(json!({ "id": t.id, "name": t.name }))).into_response(),
                format!("tenant {} ({})", t.name, t.id),
            );
        }
        Err(error) => failed(error),
    };
    with_target(response, format!("tenant {}", new.name))
}

pub async fn list_tenants(State(state): State<AppState>) -> Response {
    match state.ctx.store.list_tenants().await {
        Ok(tenants) => {
            Json(tenants.iter().map(|t| json!({ "id": t.id, "name": t.name })).collect::<Vec<_>>()).into_response()
        }
        Err(error) => failed(error),
    }
}

pub async fn create_client(State(state): State<AppState>, request: Body) -> Response {
    let bytes = guard!(read_body(request).await);
    let new: NewClient = guard!(body(&bytes));
    let target = format!("client {}", new.id);
    let response = match admin::create_client(&state.ctx.store, new, unix_now()).await {
        Ok((client, secret)) => {
            let mut answer = json!({ "client_id": client.id });
            if let Some(secret) = secret {
                answer["client_secret"] = secret.into();
            }
            crate::respond::no_store((StatusCode::CREATED, Json(answer)).into_response())
        }
        Err(error) => failed(error),
    };
    with_target(response, target)
}

/// Most clients in one page of `GET /admin/clients?limit=`.
const MAX_CLIENT_PAGE: u32 = 1_000;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ClientPage {
    after: Option<String>,
    limit: Option<u32>,
}

/// Every client, or with `limit` (at most 1,000) one page in id order after `after`; a full page
/// carries a `Link: <...>; rel="next"` to the next one (RFC 8288).
pub async fn list_clients(
    State(state): State<AppState>,
    query: Result<axum::extract::Query<ClientPage>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let page = match query {
        Ok(axum::extract::Query(page)) => page,
        Err(_) => return problem(StatusCode::BAD_REQUEST, "invalid_request", CLIENT_PAGE_USAGE),
    };
    let Some(limit) = page.limit else {
        if page.after.is_some() {
            return problem(StatusCode::BAD_REQUEST, "invalid_request", CLIENT_PAGE_USAGE);
        }
        return match state.ctx.store.list_clients().await {
            Ok(clients) => Json(clients.iter().map(admin::client_view).collect::<Vec<_>>()).into_response(),
            Err(error) => failed(error),
        };
    };
    if !(1..=MAX_CLIENT_PAGE).contains(&limit) {
        return problem(StatusCode::BAD_REQUEST, "invalid_request", CLIENT_PAGE_USAGE);
    }
    let after = page.after.unwrap_or_default();
    let clients = match state.ctx.store.clients_after(&after, limit).await {
        Ok(clients) => clients,
        Err(error) => return failed(error),
    };
    let next = clients.last().filter(|_| clients.len() == limit as usize).map(|last| {
        let after: String = url_encoded(&last.id);
        format!("</admin/clients?after={after}&limit={limit}>; rel=\"next\"")
    });
    let mut response = Json(clients.iter().map(admin::client_view).collect::<Vec<_>>()).into_response();
    if let Some(next) = next.and_then(|next| HeaderValue::from_str(&next).ok()) {
        response.headers_mut().insert(header::LINK, next);
    }
    response
}

const CLIENT_PAGE_USAGE: &str = "list every client, or a page: /admin/clients?limit=1..1000[&after=CLIENT_ID]";

/// `text` percent-encoded for a query value (unreserved characters kept, RFC 3986 §2.3).
fn url_encoded(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SecretRotation {
    overlap: Option<String>,
}

pub async fn rotate_client_secret(State(state): State<AppState>, Path(id): Path<String>, request: Body) -> Response {
    let target = format!("client {id}");
    let bytes = match read_body(request).await {
        Ok(bytes) => bytes,
        Err(refused) => return with_target(refused.into_response(), target),
    };
    let rotation: SecretRotation = if bytes.is_empty() {
        SecretRotation::default()
    } else {
        match body(&bytes) {
            Ok(rotation) => rotation,
            Err(refused) => return with_target(refused.into_response(), target),
        }
    };
    let overlap = match admin::parse_duration(rotation.overlap.as_deref().unwrap_or(admin::DEFAULT_SECRET_OVERLAP)) {
        Ok(seconds) => seconds,
        Err(error) => return with_target(failed(error), target),
    };
    let rotated = admin::rotate_client_secret(&state.ctx.store, &id, overlap, unix_now()).await;
    state.ctx.clients.invalidate(&id);
    let response = match rotated {
        Ok(secret) => crate::respond::no_store(
            Json(json!({ "client_id": id, "client_secret": secret, "previous_secret_valid_for": overlap }))
                .into_response(),
        ),
        Err(error) => failed(error),
    };
    with_target(response, target)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    tenant: String,
    username: String,
    password: String,
}

pub async fn create_user(State(state): State<AppState>, request: Body) -> Response {
    let bytes = guard!(read_body(request).await);
    let new: NewUser = guard!(body(&bytes));
    let target = format!("user {} in tenant {}", new.username, new.tenant);
    let response = match admin::create_user(&state.ctx.store, &new.tenant, &new.username, &new.password, unix_now())
        .await
    {
        Ok(user) => (StatusCode::CREATED, Json(json!({ "id": user.id, "tenant_id": user.tenant_id }))).into_response(),
        Err(error) => failed(error),
    };
    with_target(response, target)
}

pub async fn list_keys(State(state): State<AppState>) -> Response {
    match state.ctx.store.list_keys().await {
        Ok(keys) => Json(
            keys.iter()
                .map(|k| {
                    json!({ "kid": k.kid, "alg": k.alg, "created_at": k.created_at,
                            "activate_at": k.activate_at, "retired_at": k.retired_at })
                })
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(error) => failed(error),
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct KeyRotation {
    alg: Option<String>,
    publish_delay: Option<i64>,
}

pub async fn rotate_key(State(state): State<AppState>, request: Body) -> Response {
    let bytes = guard!(read_body(request).await);
    let rotation: KeyRotation = if bytes.is_empty() { KeyRotation::default() } else { guard!(body(&bytes)) };
    let alg = rotation.alg.as_deref().unwrap_or(admin::DEFAULT_KEY_ALG);
    let delay = rotation.publish_delay.unwrap_or(admin::DEFAULT_PUBLISH_DELAY_SECONDS);
    match admin::rotate_key(&state.ctx.store, &state.master_key, alg, delay, unix_now()).await {
        Ok(key) => {
            let _ = state.reload_keys().await;
            let target = format!("key {} ({})", key.kid, key.alg);
            let response =
                (StatusCode::CREATED, Json(json!({ "kid": key.kid, "alg": key.alg, "activate_at": key.activate_at })))
                    .into_response();
            with_target(response, target)
        }
        Err(error) => with_target(failed(error), format!("key ({alg})")),
    }
}

/// A change was made here: this node drops what it cached of it at once (the admin operation
/// told the other nodes).
async fn changed(state: &AppState, change: portero_core::store::Change) {
    state.apply_change(&change).await;
}

pub async fn show_client(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let response = match admin::show_client(&state.ctx.store, &id).await {
        Ok(client) => Json(admin::client_view(&client)).into_response(),
        Err(error) => failed(error),
    };
    with_target(response, format!("client {id}"))
}

pub async fn update_client(State(state): State<AppState>, Path(id): Path<String>, request: Body) -> Response {
    let target = format!("client {id}");
    let bytes = match read_body(request).await {
        Ok(bytes) => bytes,
        Err(refused) => return with_target(refused.into_response(), target),
    };
    let changes: admin::ClientChanges = match body(&bytes) {
        Ok(changes) => changes,
        Err(refused) => return with_target(refused.into_response(), target),
    };
    let response = match admin::update_client(&state.ctx.store, &id, changes).await {
        Ok(client) => {
            changed(&state, portero_core::store::Change::Client(id.clone())).await;
            Json(admin::client_view(&client)).into_response()
        }
        Err(error) => failed(error),
    };
    with_target(response, target)
}

async fn client_enabled(state: AppState, id: String, enabled: bool) -> Response {
    let response = match admin::set_client_enabled(&state.ctx.store, &id, enabled, unix_now()).await {
        Ok(client) => {
            changed(&state, portero_core::store::Change::Client(id.clone())).await;
            Json(admin::client_view(&client)).into_response()
        }
        Err(error) => failed(error),
    };
    with_target(response, format!("client {id}"))
}

pub async fn disable_client(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    client_enabled(state, id, false).await
}

pub async fn enable_client(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    client_enabled(state, id, true).await
}

pub async fn delete_client(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let response = match admin::delete_client(&state.ctx.store, &id, unix_now()).await {
        Ok(()) => {
            changed(&state, portero_core::store::Change::Client(id.clone())).await;
            StatusCode::NO_CONTENT.into_response()
        }
        Err(error) => failed(error),
    };
    with_target(response, format!("client {id}"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserQuery {
    tenant: String,
}

pub async fn list_users(
    State(state): State<AppState>,
    query: Result<axum::extract::Query<UserQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(axum::extract::Query(query)) = query else {
        return problem(StatusCode::BAD_REQUEST, "invalid_request", "give the tenant: /admin/users?tenant=NAME_OR_ID");
    };
    let response = match admin::list_users(&state.ctx.store, &query.tenant).await {
        Ok(users) => Json(users.iter().map(admin::user_view).collect::<Vec<_>>()).into_response(),
        Err(error) => failed(error),
    };
    with_target(response, format!("tenant {}", query.tenant))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewPassword {
    password: String,
}

pub async fn set_password(State(state): State<AppState>, Path(id): Path<String>, request: Body) -> Response {
    let target = format!("user {id}");
    let bytes = match read_body(request).await {
        Ok(bytes) => bytes,
        Err(refused) => return with_target(refused.into_response(), target),
    };
    let new: NewPassword = match body(&bytes) {
        Ok(new) => new,
        Err(refused) => return with_target(refused.into_response(), target),
    };
    let response = match admin::set_password(&state.ctx.store, &id, &new.password, unix_now()).await {
        Ok(user) => Json(admin::user_view(&user)).into_response(),
        Err(error) => failed(error),
    };
    with_target(response, target)
}

async fn user_enabled(state: AppState, id: String, enabled: bool) -> Response {
    let response = match admin::set_user_enabled(&state.ctx.store, &id, enabled, unix_now()).await {
        Ok(user) => Json(admin::user_view(&user)).into_response(),
        Err(error) => failed(error),
    };
    with_target(response, format!("user {id}"))
}

pub async fn disable_user(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    user_enabled(state, id, false).await
}

pub async fn enable_user(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    user_enabled(state, id, true).await
}

pub async fn delete_user(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let response = match admin::delete_user(&state.ctx.store, &id, unix_now()).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(error) => failed(error),
    };
    with_target(response, format!("user {id}"))
}

pub async fn delete_tenant(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let response = match admin::delete_tenant(&state.ctx.store, &id).await {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(error) => failed(error),
    };
    with_target(response, format!("tenant {id}"))
}

pub async fn revoke_tokens(State(state): State<AppState>, request: Body) -> Response {
    let bytes = guard!(read_body(request).await);
    let revocation: admin::Revocation = guard!(body(&bytes));
    match admin::revoke_tokens(&state.ctx.store, &revocation, unix_now()).await {
        Ok((owner, revoked)) => {
            let response = Json(json!({ "owner": owner, "refresh_tokens_revoked": revoked })).into_response();
            with_target(response, owner)
        }
        Err(error) => failed(error),
    }
}

pub async fn revoke_key(State(state): State<AppState>, Path(kid): Path<String>) -> Response {
    let response = match admin::revoke_key(&state.ctx.store, &state.master_key, &kid, unix_now()).await {
        Ok(replacement) => {
            changed(&state, portero_core::store::Change::Keys).await;
            let _ = state.reload_keys().await;
            Json(json!({ "revoked": kid, "new_signing_key": replacement.map(|k| k.kid) })).into_response()
        }
        Err(error) => failed(error),
    };
    with_target(response, format!("key {kid}"))
}

/// The OpenAPI 3.1 document of the admin API and the token, introspection and revocation
/// endpoints (`openapi.json` beside this file; a test checks it against the routes).
pub async fn openapi() -> Response {
    let document =
        include_str!("../openapi.json").replace("\"VERSION\"", &format!("\"{}\"", env!("CARGO_PKG_VERSION")));
    ([(header::CONTENT_TYPE, "application/json")], document).into_response()
}

pub async fn no_such_route(uri: axum::http::Uri) -> Response {
    problem(StatusCode::NOT_FOUND, "not_found", format!("no admin route {}", uri.path()))
}

pub async fn method_not_allowed(method: Method, uri: axum::http::Uri) -> Response {
    problem(StatusCode::METHOD_NOT_ALLOWED, "invalid_request", format!("{method} is not allowed on {}", uri.path()))
}
