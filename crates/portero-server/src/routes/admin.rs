//! The admin HTTP API: the CLI's operations for onboarding systems. Off unless an admin token
//! is configured; every call needs `Authorization: Bearer <admin token>`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use portero_core::store::Store;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::admin::{self, AdminError, NewClient};
use crate::routes::token::unix_now;
use crate::state::AppState;

fn problem(status: StatusCode, error: &str, description: impl Into<String>) -> Response {
    let mut response =
        (status, Json(json!({ "error": error, "error_description": description.into() }))).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"portero-admin\""));
    }
    response
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        match self {
            AdminError::Invalid(message) => problem(StatusCode::BAD_REQUEST, "invalid_request", message),
            AdminError::Conflict(_) => problem(StatusCode::CONFLICT, "conflict", self.to_string()),
            AdminError::NotFound(message) => problem(StatusCode::NOT_FOUND, "not_found", message),
            AdminError::Store(error) => {
                tracing::error!(%error, "admin request failed");
                problem(StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable", "storage error")
            }
            AdminError::Key(error) => problem(StatusCode::BAD_REQUEST, "invalid_request", error.to_string()),
        }
    }
}

/// Why an admin request was refused before reaching the admin service.
enum Refused {
    Disabled,
    Unauthorized,
    BadJson(String),
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        match self {
            Self::Disabled => problem(StatusCode::NOT_FOUND, "not_found", "the admin API is disabled"),
            Self::Unauthorized => problem(StatusCode::UNAUTHORIZED, "invalid_token", "a valid admin token is required"),
            Self::BadJson(why) => {
                problem(StatusCode::BAD_REQUEST, "invalid_request", format!("invalid JSON body: {why}"))
            }
        }
    }
}

/// Checks the bearer token against the configured admin token, in constant time.
fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), Refused> {
    let Some(expected) = &state.admin_token_digest else {
        return Err(Refused::Disabled);
    };
    if crate::extract::bearer_is(headers, expected) { Ok(()) } else { Err(Refused::Unauthorized) }
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

pub async fn create_tenant(State(state): State<AppState>, headers: HeaderMap, bytes: Bytes) -> Response {
    guard!(authorize(&state, &headers));
    let new: NewTenant = guard!(body(&bytes));
    match admin::create_tenant(&state.ctx.store, &new.name, new.id.as_deref(), unix_now()).await {
        Ok(t) => (StatusCode::CREATED, Json(json!({ "id": t.id, "name": t.name }))).into_response(),
        Err(error) => error.into_response(),
    }
}

pub async fn list_tenants(State(state): State<AppState>, headers: HeaderMap) -> Response {
    guard!(authorize(&state, &headers));
    match state.ctx.store.list_tenants().await {
        Ok(tenants) => {
            Json(tenants.iter().map(|t| json!({ "id": t.id, "name": t.name })).collect::<Vec<_>>()).into_response()
        }
        Err(error) => AdminError::from(error).into_response(),
    }
}

pub async fn create_client(State(state): State<AppState>, headers: HeaderMap, bytes: Bytes) -> Response {
    guard!(authorize(&state, &headers));
    let new: NewClient = guard!(body(&bytes));
    match admin::create_client(&state.ctx.store, new, unix_now()).await {
        Ok((client, secret)) => {
            let mut answer = json!({ "client_id": client.id });
            if let Some(secret) = secret {
                answer["client_secret"] = secret.into();
            }
            crate::respond::no_store((StatusCode::CREATED, Json(answer)).into_response())
        }
        Err(error) => error.into_response(),
    }
}

pub async fn list_clients(State(state): State<AppState>, headers: HeaderMap) -> Response {
    guard!(authorize(&state, &headers));
    match state.ctx.store.list_clients().await {
        Ok(clients) => Json(
            clients
                .iter()
                .map(|c| {
                    json!({
                        "client_id": c.id,
                        "grants": c.grants.iter().map(|g| g.as_str()).collect::<Vec<_>>(),
                        "scopes": c.scopes.join(" "),
                        "audiences": c.audiences,
                        "tenants": c.tenants,
                        "token_ttl": c.token_ttl,
                        "refresh_tokens": c.refresh_policy.as_str(),
                        "ignore_unknown_scopes": c.ignore_unknown_scopes,
                        "locale": c.locale,
                    })
                })
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(error) => AdminError::from(error).into_response(),
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SecretRotation {
    overlap: Option<String>,
}

pub async fn rotate_client_secret(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Response {
    guard!(authorize(&state, &headers));
    let rotation: SecretRotation = if bytes.is_empty() { SecretRotation::default() } else { guard!(body(&bytes)) };
    let overlap = match admin::parse_duration(rotation.overlap.as_deref().unwrap_or("24h")) {
        Ok(seconds) => seconds,
        Err(error) => return error.into_response(),
    };
    let rotated = admin::rotate_client_secret(&state.ctx.store, &id, overlap, unix_now()).await;
    state.ctx.clients.invalidate(&id);
    match rotated {
        Ok(secret) => crate::respond::no_store(
            Json(json!({ "client_id": id, "client_secret": secret, "previous_secret_valid_for": overlap }))
                .into_response(),
        ),
        Err(error) => error.into_response(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    tenant: String,
    username: String,
    password: String,
}

pub async fn create_user(State(state): State<AppState>, headers: HeaderMap, bytes: Bytes) -> Response {
    guard!(authorize(&state, &headers));
    let new: NewUser = guard!(body(&bytes));
    match admin::create_user(&state.ctx.store, &new.tenant, &new.username, &new.password, unix_now()).await {
        Ok(user) => (StatusCode::CREATED, Json(json!({ "id": user.id, "tenant_id": user.tenant_id }))).into_response(),
        Err(error) => error.into_response(),
    }
}

pub async fn list_keys(State(state): State<AppState>, headers: HeaderMap) -> Response {
    guard!(authorize(&state, &headers));
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
        Err(error) => AdminError::from(error).into_response(),
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct KeyRotation {
    alg: Option<String>,
    publish_delay: Option<i64>,
}

pub async fn rotate_key(State(state): State<AppState>, headers: HeaderMap, bytes: Bytes) -> Response {
    guard!(authorize(&state, &headers));
    let rotation: KeyRotation = if bytes.is_empty() { KeyRotation::default() } else { guard!(body(&bytes)) };
    let alg = rotation.alg.as_deref().unwrap_or("RS256");
    let delay = rotation.publish_delay.unwrap_or(360);
    match admin::rotate_key(&state.ctx.store, &state.master_key, alg, delay, unix_now()).await {
        Ok(key) => {
            let _ = state.reload_keys().await;
            (StatusCode::CREATED, Json(json!({ "kid": key.kid, "alg": key.alg, "activate_at": key.activate_at })))
                .into_response()
        }
        Err(error) => error.into_response(),
    }
}
