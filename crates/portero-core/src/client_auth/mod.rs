//! Client authentication (RFC 6749 §2.3): the method a client is registered for
//! (`token_endpoint_auth_method`, RFC 7591 names), what a request presented, and the check.
//!
//! Every method runs inside the same frame: the caller's address and the client's key are
//! checked against the failure throttle, an attempt slot is taken before any slow check, given
//! back on success and kept on failure, and identical attempts in flight share one check. A
//! method only says whether the presented proof matches ([`client_secret`] for shared secrets,
//! [`private_key_jwt`] for signed assertions, [`tls_certificate`] for the two RFC 8705 methods).

mod client_secret;
mod credentials;
mod private_key_jwt;
mod tls_certificate;

use std::net::IpAddr;

pub use crate::registration::AuthMethod;
pub use credentials::{BasicCredentials, ClientCredentials, JWT_BEARER_ASSERTION, decode_basic};

use crate::context::Context;
use crate::error::OAuthError;
use crate::mtls::ClientCertificate;
use crate::params::Params;
use crate::secret::Verdict;
use crate::store::{Client, Store};

/// Authenticates the client of a request. Every failure is the same `invalid_client` after the
/// same work; a client that used another method than its registered one is refused too, after
/// the same check, so the refusal says nothing about whether the secret was right.
///
/// `certificate` is the TLS client certificate of the request, if it had one.
pub async fn authenticate<S: Store>(
    ctx: &Context<S>,
    credentials: &ClientCredentials,
    certificate: Option<&ClientCertificate>,
    source: Option<IpAddr>,
    now: i64,
) -> Result<Client, OAuthError> {
    ctx.throttle.check_address(&ctx.store, source, now).await?;
    let client = find_client(ctx, credentials).await?;
    let key = crate::throttle::client_key(client.as_ref().map_or(&credentials.client_id, |c| &c.id));
    ctx.throttle.check(&ctx.store, &key, now).await?;
    let method = presented_method(credentials, client.as_ref(), certificate);
    let client = match method {
        AuthMethod::PrivateKeyJwt => private_key_jwt::authenticate(ctx, client, credentials, source, now).await?,
        AuthMethod::ClientSecretBasic | AuthMethod::ClientSecretPost => {
            client_secret::authenticate(ctx, &key, client, credentials, source, now).await?
        }
        AuthMethod::TlsClientAuth | AuthMethod::SelfSignedTlsClientAuth => {
            tls_certificate::authenticate(ctx, &key, client, credentials, certificate, method, source, now).await?
        }
    };
    if !method.allowed_for(client.auth_method) {
        return Err(OAuthError::invalid_client().with_detail(format!(
            "client {:?} is registered for {}, not {}",
            client.id,
            client.auth_method.map_or("client_secret_basic or client_secret_post", AuthMethod::as_str),
            method.as_str()
        )));
    }
    Ok(client)
}

/// The method a request used. RFC 8705 §2: a certificate method sends `client_id` alone (no
/// secret, no assertion) and the TLS client certificate proves it; the two certificate methods
/// look the same on the wire, so the client's registration says which check applies.
fn presented_method(
    credentials: &ClientCredentials,
    client: Option<&Client>,
    certificate: Option<&ClientCertificate>,
) -> AuthMethod {
    let certificate_only =
        credentials.method == AuthMethod::ClientSecretPost && credentials.secret.is_none() && certificate.is_some();
    if !certificate_only {
        return credentials.method;
    }
    match client.and_then(|c| c.auth_method) {
        Some(AuthMethod::SelfSignedTlsClientAuth) => AuthMethod::SelfSignedTlsClientAuth,
        _ => AuthMethod::TlsClientAuth,
    }
}

/// The client the credentials name: by the id as decoded, then as sent (see [`decode_basic`]).
async fn find_client<S: Store>(
    ctx: &Context<S>,
    credentials: &ClientCredentials,
) -> Result<Option<Client>, OAuthError> {
    let client = ctx.clients.get(&ctx.store, &credentials.client_id).await?;
    let raw_id = credentials.undecoded.as_ref().map(|(id, _)| id.as_str());
    let client = match raw_id {
        Some(raw_id) if client.is_none() && raw_id != credentials.client_id => {
            ctx.clients.get(&ctx.store, raw_id).await?
        }
        _ => client,
    };
    // A disabled client is refused as an unknown one: after the same dummy check.
    Ok(client.filter(|c| c.disabled_at.is_none()))
}

/// Runs one check of a method inside the throttle: takes the attempt slots of `key` and the
/// caller's address first, then gives them back on a match or when the check could not be made
/// (capacity), or keeps them as failures.
async fn throttled<S: Store>(
    ctx: &Context<S>,
    key: &str,
    source: Option<IpAddr>,
    now: i64,
    check: impl Future<Output = Verdict>,
) -> Result<Verdict, OAuthError> {
    let slots = ctx.throttle.reserve(&ctx.store, key, source, now).await?;
    let verdict = check.await;
    match verdict {
        Verdict::NoMatch => ctx.throttle.failed(slots),
        Verdict::Match | Verdict::Unavailable => ctx.throttle.release(&ctx.store, slots).await,
    }
    Ok(verdict)
}

/// Runs the check of a method whose proof cannot be guessed (a signature), outside the slots:
/// none is taken before the check (a client's concurrent requests each carry their own
/// assertion, and would run out of slots as if they were guesses), and a refusal counts against
/// the caller's address only, so nobody can lock a client out by sending bad assertions in its
/// name. A key already blocked (by failed secrets) is still refused before, by `authenticate`.
async fn unguessable<S: Store>(
    ctx: &Context<S>,
    source: Option<IpAddr>,
    now: i64,
    check: impl Future<Output = Verdict>,
) -> Result<Verdict, OAuthError> {
    let verdict = check.await;
    if matches!(verdict, Verdict::NoMatch) {
        let slots = ctx.throttle.reserve_address(&ctx.store, source, now).await?;
        ctx.throttle.failed(slots);
    }
    Ok(verdict)
}

/// Reads and checks client credentials for endpoints other than the token endpoint
/// (introspection, revocation).
pub async fn authenticate_request<S: Store>(
    ctx: &Context<S>,
    params: &Params,
    authorization: Option<&str>,
    certificate: Option<&ClientCertificate>,
    source: Option<IpAddr>,
    now: i64,
) -> Result<Client, OAuthError> {
    let credentials = ClientCredentials::from_request(authorization, params)?;
    authenticate(ctx, &credentials, certificate, source, now).await
}
