//! `tls_client_auth` and `self_signed_tls_client_auth` (RFC 8705 §2): the request sends its
//! `client_id` alone and the TLS client certificate proves it. For `tls_client_auth` the
//! certificate must have chained to the configured client CA and carry the registered subject
//! DN; for `self_signed_tls_client_auth` its public key must be one of the client's registered
//! JWKs (no chain is needed: the TLS handshake proved the client holds the private key).

use std::net::IpAddr;

use super::{AuthMethod, ClientCredentials, throttled};
use crate::context::Context;
use crate::error::OAuthError;
use crate::mtls::ClientCertificate;
use crate::secret::Verdict;
use crate::store::{Client, Store};

/// Checks `certificate` for `client` (`None`: unknown id) by `method`, inside the throttle
/// under `key`. Every refusal is the same `invalid_client`; the reason is only logged.
#[allow(clippy::too_many_arguments)]
pub(super) async fn authenticate<S: Store>(
    ctx: &Context<S>,
    key: &str,
    client: Option<Client>,
    credentials: &ClientCredentials,
    certificate: Option<&ClientCertificate>,
    method: AuthMethod,
    source: Option<IpAddr>,
    now: i64,
) -> Result<Client, OAuthError> {
    let mut refusal = String::new();
    let check = async {
        match check(client.as_ref(), certificate, method) {
            Ok(()) => Verdict::Match,
            Err(reason) => {
                refusal = match &client {
                    Some(_) => reason,
                    None => format!("unknown client {:?}", credentials.client_id),
                };
                Verdict::NoMatch
            }
        }
    };
    let verdict = throttled(ctx, key, source, now, check).await?;
    match (verdict, client) {
        (Verdict::Match, Some(client)) => Ok(client),
        _ => Err(OAuthError::invalid_client().with_detail(refusal)),
    }
}

/// Everything the method compares; the reason of a refusal (with the certificate's thumbprint,
/// the only part of it that may be logged).
fn check(client: Option<&Client>, certificate: Option<&ClientCertificate>, method: AuthMethod) -> Result<(), String> {
    let client = client.ok_or_else(String::new)?;
    let certificate = certificate.ok_or("no client certificate")?;
    let shown = certificate.thumbprint();
    match method {
        AuthMethod::TlsClientAuth => {
            if !certificate.chained() {
                return Err(format!("certificate {shown} does not chain to the client CA"));
            }
            let dn = client.tls_subject_dn.as_deref().ok_or("the client has no registered subject DN")?;
            if !certificate.subject_is(dn) {
                return Err(format!("certificate {shown} has another subject than the registered DN"));
            }
            Ok(())
        }
        AuthMethod::SelfSignedTlsClientAuth => {
            let jwks = client.jwks.as_deref().ok_or("the client has no registered keys")?;
            if !certificate.key_in(jwks) {
                return Err(format!("the key of certificate {shown} is none of the client's registered keys"));
            }
            Ok(())
        }
        other => Err(format!("{} is not a certificate method", other.as_str())),
    }
}
