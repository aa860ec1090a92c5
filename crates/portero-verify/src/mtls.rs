//! Certificate-bound access tokens at the resource server (RFC 8705 §3): a token whose `cnf`
//! carries `x5t#S256` is accepted only over a connection whose TLS client certificate has that
//! SHA-256 thumbprint.
//!
//! This crate does not terminate TLS. Where the API does, the integration puts the leaf client
//! certificate of the connection (DER) into each request's extensions as a [`PeerCertificate`]
//! before [`BearerLayer`] runs; with axum-server, for instance, from the `Arc<TlsInfo>` it adds:
//!
//! ```ignore
//! async fn peer_certificate(mut request: Request, next: Next) -> Response {
//!     let leaf = request.extensions().get::<Arc<axum_server::tls::TlsInfo>>()
//!         .and_then(|tls| tls.peer_certificates.first().cloned());
//!     if let Some(der) = leaf {
//!         request.extensions_mut().insert(portero_verify::PeerCertificate(der));
//!     }
//!     next.run(request).await
//! }
//! // router.layer(BearerLayer::new(verifier)).layer(axum::middleware::from_fn(peer_certificate))
//! ```
//!
//! A request with no `PeerCertificate` presents no certificate: a bound token is then refused
//! with 401 `invalid_token`, as it is with another certificate.
//!
//! [`BearerLayer`]: crate::BearerLayer

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::claims::Claims;
use crate::error::{Rejection, VerifyError};

/// The TLS client certificate (leaf, DER) of the connection a request came over.
#[derive(Clone, PartialEq, Eq)]
pub struct PeerCertificate(pub Vec<u8>);

impl std::fmt::Debug for PeerCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("PeerCertificate").field(&thumbprint(&self.0)).finish()
    }
}

/// `base64url(SHA-256(der))`.
fn thumbprint(der: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der))
}

/// [`VerifyError::InvalidToken`] when `claims` are bound to a certificate and `peer` is not it.
pub fn check_certificate_binding(claims: &Claims, peer: Option<&PeerCertificate>) -> Result<(), VerifyError> {
    let Some(bound) = claims.cnf.as_ref().and_then(|cnf| cnf.x5t_s256.as_deref()) else {
        return Ok(());
    };
    let presented = peer.map(|p| thumbprint(&p.0));
    match presented {
        Some(presented)
            if aws_lc_rs::constant_time::verify_slices_are_equal(presented.as_bytes(), bound.as_bytes()).is_ok() =>
        {
            Ok(())
        }
        Some(_) => Err(VerifyError::InvalidToken(Rejection::WrongCertificate)),
        None => Err(VerifyError::InvalidToken(Rejection::NoCertificate)),
    }
}
