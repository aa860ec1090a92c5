//! The tower layer (feature `axum`): verifies the access token of every request (Bearer, or
//! DPoP with its proof), checks
//! `x-tenant-id` against the token's tenants when the header is present, and hands the claims
//! to handlers as axum extractors.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::http::Request;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use tower::{Layer, Service};

use crate::bearer::{Tenant, authenticate_request_with_certificate};
use crate::claims::Claims;
use crate::error::VerifyError;
use crate::mtls::PeerCertificate;
use crate::verifier::Verifier;

/// A tower layer that refuses requests without a valid bearer token (with the RFC 6750
/// challenge) and puts [`Claims`] (and [`Tenant`]) in the request's extensions.
#[derive(Clone)]
pub struct BearerLayer {
    verifier: Arc<Verifier>,
}

impl BearerLayer {
    /// A layer verifying with `verifier`.
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

/// The service [`BearerLayer`] wraps around an inner one.
#[derive(Clone)]
pub struct BearerService<S> {
    inner: S,
    verifier: Arc<Verifier>,
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
            // RFC 8705 §3: a certificate-bound token only over its certificate, which the
            // integration put in the extensions (see `PeerCertificate`).
            let peer = request.extensions().get::<PeerCertificate>();
            let verified = authenticate_request_with_certificate(
                &verifier,
                request.method(),
                request.uri(),
                request.headers(),
                peer,
            )
            .await;
            match verified {
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
