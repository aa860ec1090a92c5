//! The tower layer: verifies the bearer token of every request, checks `x-tenant-id` against
//! the token's tenants when the header is present, and hands the claims to handlers.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{Request, header};
use axum::response::{IntoResponse, Response};
use tower::{Layer, Service};

use crate::claims::Claims;
use crate::error::VerifyError;
use crate::verifier::Verifier;

/// The header that names the tenant a call acts on (the Zertiban document's `x-tenant-id`).
pub const TENANT_HEADER: &str = "x-tenant-id";

/// The tenant named by `x-tenant-id`, already checked against the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant(pub String);

#[derive(Clone)]
pub struct BearerLayer {
    verifier: Arc<Verifier>,
}

impl BearerLayer {
    pub fn new(verifier: Arc<Verifier>) -> Self {
        Self { verifier }
    }
}

impl<S> Layer<S> for BearerLayer {
    type Service = BearerService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BearerService { inner, verifier: self.verifier.clone() }
    }
}

#[derive(Clone)]
pub struct BearerService<S> {
    inner: S,
    verifier: Arc<Verifier>,
}

/// The token of `Authorization: Bearer <token>` (RFC 6750 §2.1); one header only.
pub fn bearer_token(parts: &http::HeaderMap) -> Result<&str, VerifyError> {
    let mut values = parts.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else { return Err(VerifyError::Missing) };
    if values.next().is_some() {
        return Err(VerifyError::InvalidRequest("more than one Authorization header".into()));
    }
    let value = value.to_str().map_err(|_| VerifyError::InvalidRequest("malformed Authorization header".into()))?;
    let (scheme, token) = value.split_once(' ').ok_or(VerifyError::Missing)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(VerifyError::Missing);
    }
    let token = token.trim();
    let b64token = |c: char| c.is_ascii_alphanumeric() || "-._~+/=".contains(c);
    if token.is_empty() || !token.chars().all(b64token) {
        return Err(VerifyError::InvalidRequest("malformed bearer token".into()));
    }
    Ok(token)
}

/// Verifies the request's token and tenant; returns what handlers may extract.
pub async fn authenticate(
    verifier: &Verifier,
    headers: &http::HeaderMap,
) -> Result<(Claims, Option<Tenant>), VerifyError> {
    let claims = verifier.verify(bearer_token(headers)?).await?;
    let tenant = match headers.get(TENANT_HEADER) {
        None => None,
        Some(value) => {
            let tenant = value.to_str().map_err(|_| VerifyError::InvalidRequest("malformed x-tenant-id".into()))?;
            claims.require_tenant(tenant)?;
            Some(Tenant(tenant.to_owned()))
        }
    };
    Ok((claims, tenant))
}

impl<S> Service<Request<Body>> for BearerService<S>
where
    S: Service<Request<Body>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        // The clone that was polled ready is the one that must be called.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let verifier = self.verifier.clone();
        Box::pin(async move {
            match authenticate(&verifier, request.headers()).await {
                Ok((claims, tenant)) => {
                    request.extensions_mut().insert(claims);
                    if let Some(tenant) = tenant {
                        request.extensions_mut().insert(tenant);
                    }
                    inner.call(request).await
                }
                Err(error) => Ok(error.into_response()),
            }
        })
    }
}

/// Handlers behind [`BearerLayer`] take the verified claims as an argument.
impl<S: Send + Sync> FromRequestParts<S> for Claims {
    type Rejection = VerifyError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Claims>().cloned().ok_or(VerifyError::Missing)
    }
}

/// A handler that acts within a tenant requires `x-tenant-id`, checked by [`BearerLayer`].
impl<S: Send + Sync> FromRequestParts<S> for Tenant {
    type Rejection = VerifyError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Tenant>()
            .cloned()
            .ok_or_else(|| VerifyError::InvalidRequest("the x-tenant-id header is required".into()))
    }
}
