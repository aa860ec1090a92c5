//! An example payments API: every route needs a Portero access token (verified by
//! `portero-verify`), a scope, and an `x-tenant-id` naming one of the token's tenants.
//!
//! - `POST /v1/charges` (`post:charges`): create a charge in the tenant.
//! - `DELETE /v1/charges/{id}` (`delete:charges`): cancel one of the tenant's charges.
//! - `POST /v1/tokens` (`create:token`): tokenize a card for the tenant.

#![warn(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, post};
use axum::{Json, Router};
use portero_verify::{BearerLayer, Claims, Tenant, Verifier, VerifyError};
use serde::Deserialize;
use serde_json::json;

/// Charges by id, each with the tenant it belongs to. In memory: this is an example.
#[derive(Clone, Default)]
pub struct Charges(Arc<Mutex<HashMap<String, (String, i64)>>>);

pub fn app(verifier: Arc<Verifier>) -> Router {
    Router::new()
        .route("/v1/charges", post(create_charge))
        .route("/v1/charges/{id}", delete(cancel_charge))
        .route("/v1/tokens", post(create_token))
        .layer(BearerLayer::new(verifier))
        .with_state(Charges::default())
}

#[derive(Deserialize)]
pub struct NewCharge {
    pub amount: i64,
    #[serde(default = "default_currency")]
    pub currency: String,
}

fn default_currency() -> String {
    "PEN".into()
}

fn bad_request(message: &str) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({ "error": "invalid_request", "error_description": message }))).into_response()
}

async fn create_charge(
    State(charges): State<Charges>,
    claims: Claims,
    Tenant(tenant): Tenant,
    body: Option<Json<NewCharge>>,
) -> Result<Response, VerifyError> {
    claims.require_scopes(&["post:charges"])?;
    let Some(Json(charge)) = body else { return Ok(bad_request("a JSON body with amount is required")) };
    if charge.amount <= 0 {
        return Ok(bad_request("amount must be positive"));
    }
    let id = format!("ch_{}", uuid::Uuid::new_v4().simple());
    if let Ok(mut all) = charges.0.lock() {
        all.insert(id.clone(), (tenant.clone(), charge.amount));
    }
    let answer = json!({ "id": id, "tenant": tenant, "amount": charge.amount, "currency": charge.currency,
                         "created_by": claims.sub });
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

async fn cancel_charge(
    State(charges): State<Charges>,
    claims: Claims,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> Result<StatusCode, VerifyError> {
    claims.require_scopes(&["delete:charges"])?;
    let Ok(mut all) = charges.0.lock() else { return Ok(StatusCode::INTERNAL_SERVER_ERROR) };
    // Another tenant's charge is as good as absent.
    match all.get(&id) {
        Some((owner, _)) if *owner == tenant => {
            all.remove(&id);
            Ok(StatusCode::NO_CONTENT)
        }
        _ => Ok(StatusCode::NOT_FOUND),
    }
}

async fn create_token(claims: Claims, Tenant(tenant): Tenant) -> Result<Response, VerifyError> {
    claims.require_scopes(&["create:token"])?;
    let answer = json!({ "token": format!("tok_{}", uuid::Uuid::new_v4().simple()), "tenant": tenant });
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}
