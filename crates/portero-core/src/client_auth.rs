//! Client authentication (RFC 6749 §2.3.1): HTTP Basic or `client_id`/`client_secret` in the
//! body, exactly one of them, checked against the stored hash.

use std::net::IpAddr;

use base64::Engine;
use base64::engine::general_purpose::GeneralPurpose;
use base64::engine::{DecodePaddingMode, GeneralPurposeConfig};

use crate::error::OAuthError;
use crate::params::{Params, form_decode};
use crate::secret::Verdict;
use crate::single_flight::FlightKey;
use crate::store::{Client, Store};
use crate::token_endpoint::Context;

/// Standard alphabet; padding optional (some clients strip it).
const BASIC_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A client's claimed identity; the secret is not shown by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientCredentials {
    pub client_id: String,
    pub secret: Option<String>,
    /// Basic id and secret exactly as sent, when form-decoding changed them (see [`decode_basic`]).
    pub undecoded: Option<(String, String)>,
}

/// What a Basic header carried.
#[derive(Clone, PartialEq, Eq)]
pub struct BasicCredentials {
    pub id: String,
    pub secret: String,
    pub undecoded: Option<(String, String)>,
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("client_id", &self.client_id)
            .field("secret", &self.secret.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

impl ClientCredentials {
    /// Reads the credentials from the `Authorization` header or the body, never both.
    pub fn from_request(authorization: Option<&str>, params: &Params) -> Result<Self, OAuthError> {
        let body_id = params.get("client_id");
        let body_secret = params.get("client_secret");
        match authorization {
            Some(header) => {
                let basic = decode_basic(header)?;
                if body_secret.is_some() {
                    return Err(OAuthError::invalid_request("use one client authentication method, not two"));
                }
                let raw_id = basic.undecoded.as_ref().map(|(id, _)| id.as_str());
                if body_id.is_some_and(|id| id != basic.id && Some(id) != raw_id) {
                    return Err(OAuthError::invalid_request("client_id does not match the Authorization header"));
                }
                Ok(Self { client_id: basic.id, secret: Some(basic.secret), undecoded: basic.undecoded })
            }
            None => match body_id {
                Some(id) => {
                    Ok(Self { client_id: id.to_owned(), secret: body_secret.map(str::to_owned), undecoded: None })
                }
                None => Err(OAuthError::invalid_client().with_detail("no client authentication")),
            },
        }
    }
}

/// Decodes `Basic base64(urlencode(id) ":" urlencode(secret))` (RFC 6749 §2.3.1, RFC 7617).
///
/// RFC 6749 asks clients to form-encode both parts, and careful libraries (the `oauth2` crate,
/// node-oidc-provider's clients) do; curl's `-u`, Postman and most payment SDKs send them raw.
/// A raw secret with `+` or `%` would not survive decoding, so when decoding changes a part,
/// the part as sent is kept too and tried second (see [`authenticate`]).
pub fn decode_basic(header: &str) -> Result<BasicCredentials, OAuthError> {
    let malformed = || OAuthError::invalid_request("malformed Basic authorization header");
    let (scheme, encoded) = header.trim().split_once(' ').ok_or_else(malformed)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(OAuthError::invalid_request("only the Basic authorization scheme is accepted here"));
    }
    let decoded = BASIC_BASE64.decode(encoded.trim()).map_err(|_| malformed())?;
    let decoded = String::from_utf8(decoded).map_err(|_| malformed())?;
    let (raw_id, raw_secret) = decoded.split_once(':').ok_or_else(malformed)?;
    if raw_id.is_empty() || decoded.chars().any(char::is_control) {
        return Err(malformed());
    }
    // A part that is not valid form-encoding can only have been sent raw.
    let id = form_decode(raw_id.as_bytes()).unwrap_or_else(|_| raw_id.to_owned());
    let secret = form_decode(raw_secret.as_bytes()).unwrap_or_else(|_| raw_secret.to_owned());
    if id.is_empty() || id.chars().chain(secret.chars()).any(char::is_control) {
        return Err(malformed());
    }
    let undecoded = (id != raw_id || secret != raw_secret).then(|| (raw_id.to_owned(), raw_secret.to_owned()));
    Ok(BasicCredentials { id, secret, undecoded })
}

/// Looks the client up and checks its secret (or, during a rotation's overlap, its previous
/// secret). Every failure is the same `invalid_client` after the same work: one argon2 check,
/// real or dummy, whether the client is unknown, has a generated secret or a chosen one.
///
/// A secret already verified recently is accepted without a check. Any other check first takes
/// its attempt slots (see `throttle`), and identical attempts in flight at once share one check.
pub async fn authenticate<S: Store>(
    ctx: &Context<S>,
    credentials: &ClientCredentials,
    source: Option<IpAddr>,
    now: i64,
) -> Result<Client, OAuthError> {
    ctx.throttle.check_address(&ctx.store, source, now).await?;
    let Some(secret) = credentials.secret.as_deref() else {
        return Err(OAuthError::invalid_client().with_detail("public clients are not supported: no client_secret"));
    };
    let raw_id = credentials.undecoded.as_ref().map(|(id, _)| id.as_str());
    let mut client = ctx.clients.get(&ctx.store, &credentials.client_id).await?;
    if client.is_none()
        && let Some(raw_id) = raw_id.filter(|id| *id != credentials.client_id)
    {
        client = ctx.clients.get(&ctx.store, raw_id).await?;
    }
    let key = crate::throttle::client_key(client.as_ref().map_or(&credentials.client_id, |c| &c.id));
    ctx.throttle.check(&ctx.store, &key, now).await?;
    let presented = presented_secrets(secret, credentials);
    let stored = client.as_ref().map(|c| stored_hashes(c, now)).unwrap_or_default();
    if let Some(client) = &client
        && presented.iter().any(|p| stored.iter().any(|h| ctx.verifier.known_client_secret(&client.id, p, h)))
    {
        return Ok(client.clone());
    }
    let flight = flight_key(&key, &presented);
    let attempt = check_secret(ctx, &key, client.as_ref().map(|c| c.id.as_str()), &presented, &stored, source, now);
    match ctx.verifier.client_checks.run(flight, attempt).await? {
        Verdict::Match => client.ok_or_else(|| OAuthError::server_error("matched an unknown client")),
        Verdict::Unavailable => Err(OAuthError::temporarily_unavailable("secret verification is at capacity")),
        Verdict::NoMatch => Err(OAuthError::invalid_client().with_detail(match &client {
            Some(client) => format!("wrong secret for client {:?}", client.id),
            None => format!("unknown client {:?}", credentials.client_id),
        })),
    }
}

/// The secret as decoded, then as sent when decoding changed it (see [`decode_basic`]).
fn presented_secrets<'a>(secret: &'a str, credentials: &'a ClientCredentials) -> Vec<&'a str> {
    let raw = credentials.undecoded.as_ref().map(|(_, raw)| raw.as_str()).filter(|raw| *raw != secret);
    std::iter::once(secret).chain(raw).collect()
}

/// The hashes a client's secret may match: the current one, and the previous during its overlap.
fn stored_hashes(client: &Client, now: i64) -> Vec<&str> {
    let previous = client.previous_secret.as_ref().filter(|p| p.expires_at > now).map(|p| p.hash.as_str());
    std::iter::once(client.secret_hash.as_str()).chain(previous).collect()
}

/// Identifies one attempt (a throttle key and the secrets presented) without keeping a secret.
fn flight_key(key: &str, presented: &[&str]) -> FlightKey {
    let mut digest = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for part in std::iter::once(key).chain(presented.iter().copied()) {
        digest.update(&(part.len() as u64).to_be_bytes());
        digest.update(part.as_bytes());
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.finish().as_ref());
    out
}

/// One throttled check: take the slots, check every presented secret against every stored hash
/// (a dummy argon2 when no slow check ran, so that every miss costs the same), then give the
/// slots back on a match or when the check could not be made, or keep them as failures.
async fn check_secret<S: Store>(
    ctx: &Context<S>,
    key: &str,
    client_id: Option<&str>,
    presented: &[&str],
    stored: &[&str],
    source: Option<IpAddr>,
    now: i64,
) -> Result<Verdict, OAuthError> {
    let slots = ctx.throttle.reserve(&ctx.store, key, source, now).await?;
    let mut verdict = Verdict::NoMatch;
    let mut slow = false;
    'check: for candidate in presented {
        for hash in stored {
            let Some(client_id) = client_id else { break 'check };
            let (answer, was_slow) = ctx.verifier.check_client_secret(client_id, candidate, hash).await;
            slow |= was_slow;
            verdict = answer;
            if answer != Verdict::NoMatch {
                break 'check;
            }
        }
    }
    if verdict == Verdict::NoMatch && !slow {
        verdict = ctx.verifier.slow_miss(presented[0]).await;
    }
    match verdict {
        Verdict::NoMatch => ctx.throttle.failed(slots),
        Verdict::Match | Verdict::Unavailable => ctx.throttle.release(&ctx.store, slots).await,
    }
    Ok(verdict)
}

/// Reads and checks client credentials for endpoints other than the token endpoint
/// (introspection, revocation).
pub async fn authenticate_request<S: Store>(
    ctx: &Context<S>,
    params: &Params,
    authorization: Option<&str>,
    source: Option<IpAddr>,
    now: i64,
) -> Result<Client, OAuthError> {
    let credentials = ClientCredentials::from_request(authorization, params)?;
    authenticate(ctx, &credentials, source, now).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;

    fn basic(raw: &str) -> String {
        format!("Basic {}", STANDARD.encode(raw))
    }

    #[test]
    fn decodes_form_encoded_parts() {
        // RFC 6749 §2.3.1: id and secret are form-encoded before base64 (the oauth2 crate does this).
        let creds = decode_basic(&basic("my%3Aapp:s%2Bc+r%25t:x")).unwrap();
        assert_eq!(creds.id, "my:app");
        assert_eq!(creds.secret, "s+c r%t:x");
        assert_eq!(creds.undecoded, Some(("my%3Aapp".into(), "s%2Bc+r%25t:x".into())));
    }

    #[test]
    fn raw_parts_that_are_not_form_encoding_are_kept_as_sent() {
        let creds = decode_basic(&basic("app:100%sure")).unwrap();
        assert_eq!((creds.id.as_str(), creds.secret.as_str()), ("app", "100%sure"));
        assert_eq!(creds.undecoded, None);
    }

    #[test]
    fn accepts_plain_curl_style_and_missing_padding() {
        assert_eq!(decode_basic(&basic("trusted-app:secret")).unwrap().id, "trusted-app");
        let unpadded = format!("Basic {}", STANDARD.encode("a:b").trim_end_matches('='));
        let creds = decode_basic(&unpadded).unwrap();
        assert_eq!((creds.id.as_str(), creds.secret.as_str()), ("a", "b"));
        assert_eq!(decode_basic(&format!("bAsIc {}", STANDARD.encode("a:"))).unwrap().secret, "");
    }

    #[test]
    fn rejects_malformed_headers() {
        for header in ["Basic", "Basic !!!", "Bearer abc", &basic("no-colon"), &basic(":secret"), &basic("a:b\u{0}")] {
            assert!(decode_basic(header).is_err(), "{header}");
        }
        let invalid_utf8 = format!("Basic {}", STANDARD.encode([0xff, b':', b'a']));
        assert!(decode_basic(&invalid_utf8).is_err());
    }

    #[test]
    fn one_method_only() {
        let limits = crate::params::FieldLimits::default();
        let params = Params::from_form(b"client_secret=x", &limits).unwrap();
        assert!(ClientCredentials::from_request(Some(&basic("a:b")), &params).is_err());
        let params = Params::from_form(b"client_id=other", &limits).unwrap();
        assert!(ClientCredentials::from_request(Some(&basic("a:b")), &params).is_err());
        let params = Params::from_form(b"client_id=a", &limits).unwrap();
        assert!(ClientCredentials::from_request(Some(&basic("a:b")), &params).is_ok());
    }

    #[test]
    fn debug_hides_the_secret() {
        let creds = ClientCredentials { client_id: "a".into(), secret: Some("hunter2".into()), undecoded: None };
        assert!(!format!("{creds:?}").contains("hunter2"));
    }
}
