//! Rendering: RFC 6749 §5.1/§5.2 bodies and headers, in the request's dialect.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use portero_core::dialect::{self, Dialect};
use portero_core::error::OAuthError;
use portero_core::token_endpoint::TokenResponse;
use serde_json::{Map, Value};

/// The challenge sent with every 401 (RFC 6749 §5.2, RFC 7235 §3.1).
const BASIC_CHALLENGE: &str = "Basic realm=\"portero\", charset=\"UTF-8\"";

/// Token responses are never cached (RFC 6749 §5.1).
pub fn no_store(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

pub fn token(response: &TokenResponse, dialect: &Dialect, locale: &str) -> Response {
    let body = dialect::wrap(dialect, response.to_json(), locale, Ok(()));
    no_store(Json(body).into_response())
}

pub fn error(error: &OAuthError, dialect: &Dialect, locale: &str, status_override: Option<u16>) -> Response {
    let mut body = Map::new();
    body.insert("error".into(), error.code.as_str().into());
    body.insert("error_description".into(), Value::String(error.description.to_string()));
    let body = dialect::wrap(dialect, body, locale, Err(error.code));
    let status = status_override.unwrap_or_else(|| error.code.http_status());
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    let mut response = (status, Json(body)).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(BASIC_CHALLENGE));
    }
    if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE {
        let seconds = error.retry_after.unwrap_or(1);
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    no_store(response)
}
