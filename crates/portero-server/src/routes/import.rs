//! `POST /admin/import` and `GET /admin/import/status` (issue 14): behind the admin guard like
//! every admin route, with a larger body limit of their own for the JSON Lines file.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::admin::{failed, problem, read_body_within, with_target};
use crate::routes::token::unix_now;
use crate::state::AppState;

/// Largest import file (`POST /admin/import`): 100,000 users with bcrypt hashes are about 15 MiB.
pub const MAX_IMPORT_BODY: usize = 64 * 1024 * 1024;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ImportQuery {
    #[serde(default)]
    dry_run: bool,
    #[serde(default)]
    update: bool,
}

/// `POST /admin/import[?dry_run=true][&update=true]`: the body is the JSON Lines file. 200 with
/// the report; 400 with it when a row is bad (nothing written).
pub async fn import(
    State(state): State<AppState>,
    query: Result<axum::extract::Query<ImportQuery>, axum::extract::rejection::QueryRejection>,
    request: Body,
) -> Response {
    let Ok(axum::extract::Query(query)) = query else {
        return problem(StatusCode::BAD_REQUEST, "invalid_request", "the query takes dry_run=true and update=true");
    };
    let bytes = match read_body_within(request, MAX_IMPORT_BODY).await {
        Ok(bytes) => bytes,
        Err(refused) => return refused.into_response(),
    };
    let Ok(text) = std::str::from_utf8(&bytes) else {
        return problem(StatusCode::BAD_REQUEST, "invalid_request", "the import file must be UTF-8 JSON Lines");
    };
    let options = portero_core::import::Options { dry_run: query.dry_run, update: query.update };
    let response = match portero_core::import::import(&state.ctx.store, text, options, unix_now()).await {
        Ok(report) => {
            if report.written && report.updated.clients > 0 {
                // The import told the other nodes; this one drops its cached clients too.
                state.ctx.clients.invalidate_all();
            }
            let (created, updated, unchanged) = (&report.created, &report.updated, &report.unchanged);
            let target = format!(
                "created {}/{}/{}, updated {}/{}, unchanged {}/{}/{} (tenants/clients/users), {} errors{}",
                created.tenants,
                created.clients,
                created.users,
                updated.clients,
                updated.users,
                unchanged.tenants,
                unchanged.clients,
                unchanged.users,
                report.errors.len() as u64 + report.errors_not_shown,
                if report.dry_run { " (dry run)" } else { "" },
            );
            let status = if report.has_errors() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
            let mut body = serde_json::to_value(&report).unwrap_or_default();
            if report.has_errors() {
                body["error"] = "invalid_request".into();
                body["error_description"] = "the import file has bad rows; nothing was written".into();
            }
            return with_target((status, Json(body)).into_response(), target);
        }
        Err(error) => failed(error),
    };
    with_target(response, "import")
}

/// `GET /admin/import/status`: per tenant, what came from another provider and how far it is.
pub async fn import_status(State(state): State<AppState>) -> Response {
    match portero_core::import::status(&state.ctx.store).await {
        Ok(lines) => Json(lines).into_response(),
        Err(error) => failed(error),
    }
}
