//! How a token request is written in each dialect, and how the answer is read.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use portero_wire::{AnyErrorCode, ErrorCode, GrantType, TokenResponse};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Map, Value};

use crate::error::ClientError;
use crate::signing::SigningKey;

/// `client_assertion_type` of a JWT client assertion (RFC 7523 §2.2).
const JWT_BEARER_ASSERTION: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The four ways Portero's documented integrations ask for a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Dialect {
    /// HTTP Basic + form body (NetPay, Zertiban; RFC 6749 `client_secret_basic`).
    Basic,
    /// `client_id`/`client_secret` in the form body (`client_secret_post`).
    Post,
    /// JSON body with `action` and the credentials (Pay-me).
    Json,
    /// `grant_type` in the query string, Basic, form content type (Nequi).
    Query,
}

/// The grant a client asks for tokens with (a refresh token, when one was issued, is used
/// for renewals without being configured).
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Grant {
    /// `client_credentials`: the client acts for itself.
    ClientCredentials,
    /// `password`: the client acts for a user whose credentials it holds.
    Password {
        /// The user's name.
        username: String,
        /// The user's password (never shown by `Debug`).
        password: String,
    },
}

impl Grant {
    /// The `grant_type` the grant is asked with.
    pub fn grant_type(&self) -> GrantType {
        match self {
            Self::ClientCredentials => GrantType::ClientCredentials,
            Self::Password { .. } => GrantType::Password,
        }
    }
}

impl std::fmt::Debug for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ClientCredentials => f.write_str("ClientCredentials"),
            Self::Password { username, .. } => write!(f, "Password {{ username: {username:?}, password: [redacted] }}"),
        }
    }
}

/// Everything needed to get tokens: start from [`ClientConfig::client_credentials`], then the
/// `with_*` methods. `Debug` never shows a secret.
#[derive(Clone)]
pub struct ClientConfig {
    token_url: String,
    client_id: String,
    client_secret: String,
    dialect: Dialect,
    grant: Grant,
    scope: Option<String>,
    audience: Option<String>,
    headers: Vec<(String, String)>,
    default_lifetime: Option<Duration>,
    /// Authenticate with assertions signed by this key instead of the secret (`private_key_jwt`).
    assertion_key: Option<Arc<SigningKey>>,
    /// Send a DPoP proof made with this key on every request (RFC 9449).
    dpop_key: Option<Arc<SigningKey>>,
}

/// The API version the Pay-me document makes required on every request (`ALG-API-VERSION`).
pub const PAYME_API_VERSION: (&str, &str) = ("ALG-API-VERSION", "1618440906");

impl Dialect {
    /// Headers the dialect's document requires, sent unless [`ClientConfig::with_header`] overrides
    /// them: Pay-me's `ALG-API-VERSION: 1618440906`.
    pub fn default_headers(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Self::Json => &[PAYME_API_VERSION],
            Self::Basic | Self::Post | Self::Query => &[],
        }
    }
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("token_url", &self.token_url)
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .field("dialect", &self.dialect)
            .field("grant", &self.grant)
            .field("scope", &self.scope)
            .field("audience", &self.audience)
            .field("headers", &self.headers.iter().map(|(name, _)| name).collect::<Vec<_>>())
            .field("default_lifetime", &self.default_lifetime)
            .field("assertion_key", &self.assertion_key)
            .field("dpop_key", &self.dpop_key)
            .finish()
    }
}

impl ClientConfig {
    /// A client asking `token_url` for tokens with the `client_credentials` grant, in `dialect`.
    pub fn client_credentials(
        token_url: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
        dialect: Dialect,
    ) -> Self {
        Self {
            token_url: token_url.into(),
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            dialect,
            grant: Grant::ClientCredentials,
            scope: None,
            audience: None,
            headers: Vec::new(),
            default_lifetime: None,
            assertion_key: None,
            dpop_key: None,
        }
    }

    /// A client asking `token_url` for tokens with the `client_credentials` grant, in
    /// `dialect`, authenticating with `private_key_jwt` (RFC 7523 §2.2): each request carries
    /// a fresh assertion signed by `key` (`aud` the token URL) instead of a secret.
    pub fn private_key_jwt(
        token_url: impl Into<String>,
        client_id: impl Into<String>,
        key: SigningKey,
        dialect: Dialect,
    ) -> Self {
        Self::client_credentials(token_url, client_id, "", dialect).with_private_key(key)
    }

    /// Authenticates with assertions signed by `key` instead of the secret.
    #[must_use]
    pub fn with_private_key(mut self, key: SigningKey) -> Self {
        self.assertion_key = Some(Arc::new(key));
        self
    }

    /// Sends a DPoP proof made with `key` on every token request (RFC 9449): the tokens come
    /// back bound to it (`token_type: DPoP`), and a server nonce is picked up and retried with.
    /// [`crate::TokenClient::dpop_proof`] makes the proofs for API calls with such a token.
    #[must_use]
    pub fn with_dpop(mut self, key: SigningKey) -> Self {
        self.dpop_key = Some(Arc::new(key));
        self
    }

    /// The DPoP key, if requests carry proofs.
    pub fn dpop_key(&self) -> Option<&SigningKey> {
        self.dpop_key.as_deref()
    }

    /// Asks with `grant` instead (the password grant, say).
    #[must_use]
    pub fn with_grant(mut self, grant: Grant) -> Self {
        self.grant = grant;
        self
    }

    /// The `scope` to ask for (space-separated).
    #[must_use]
    pub fn with_scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// The `audience` to ask for.
    #[must_use]
    pub fn with_audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// A header to add to every token request, or to override the dialect's own with (see
    /// [`Dialect::default_headers`]): a name given here replaces the dialect's value, and a name
    /// given with an empty value is not sent at all. A name added twice is sent twice.
    /// [`ClientConfig::request_headers`] says whether they can all be sent.
    #[must_use]
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The lifetime to assume when a token response has no `expires_in` (RFC 6749 §5.1 lets a
    /// server leave it out and document a default instead). Without one, such a token is never
    /// cached: it is handed to the caller that asked, and the next call asks again (with the
    /// refresh token, if one came). Portero always sends `expires_in`.
    #[must_use]
    pub fn with_default_lifetime(mut self, lifetime: Duration) -> Self {
        self.default_lifetime = Some(lifetime);
        self
    }

    /// The token endpoint.
    pub fn token_url(&self) -> &str {
        &self.token_url
    }

    /// The client id.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The dialect requests are written in.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The grant tokens are asked with.
    pub fn grant(&self) -> &Grant {
        &self.grant
    }

    /// The scope asked for.
    pub fn scope(&self) -> Option<&str> {
        self.scope.as_deref()
    }

    /// The audience asked for.
    pub fn audience(&self) -> Option<&str> {
        self.audience.as_deref()
    }

    /// The lifetime assumed for a response without `expires_in`, if any.
    pub fn default_lifetime(&self) -> Option<Duration> {
        self.default_lifetime
    }
}

/// A successful token response: the RFC 6749 §5.1 members, and the whole JSON answer.
#[derive(Clone)]
pub struct TokenAnswer {
    response: TokenResponse,
    raw: Value,
}

impl TokenAnswer {
    /// The access token.
    pub fn access_token(&self) -> &str {
        &self.response.access_token
    }

    /// The lifetime the server gave (`expires_in`), if it gave one.
    pub fn expires_in(&self) -> Option<Duration> {
        self.response.lifetime()
    }

    /// The refresh token, if one was issued.
    pub fn refresh_token(&self) -> Option<&str> {
        self.response.refresh_token.as_deref()
    }

    /// The granted scope, if the server said.
    pub fn scope(&self) -> Option<&str> {
        self.response.scope.as_deref()
    }

    /// The RFC 6749 members.
    pub fn response(&self) -> &TokenResponse {
        &self.response
    }

    /// The whole JSON answer (the Pay-me envelope's extra members are here).
    pub fn raw(&self) -> &Value {
        &self.raw
    }
}

/// Never shows a token.
impl std::fmt::Debug for TokenAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenAnswer").field("response", &self.response).finish_non_exhaustive()
    }
}

/// RFC 6749 §2.3.1: form-encode id and secret, then base64 them for Basic.
fn basic(id: &str, secret: &str) -> String {
    let encode = |value: &str| {
        let mut out = String::with_capacity(value.len());
        for byte in value.bytes() {
            match byte {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => out.push(byte as char),
                b' ' => out.push('+'),
                other => out.push_str(&format!("%{other:02X}")),
            }
        }
        out
    };
    let raw = format!("{}:{}", encode(id), encode(secret));
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(raw))
}

impl ClientConfig {
    /// The parameters of a request for `grant_type` (the refresh grant when `refresh` is given).
    fn params(&self, refresh: Option<&str>) -> Vec<(&'static str, String)> {
        let mut params = Vec::new();
        match (refresh, &self.grant) {
            (Some(token), _) => {
                params.push(("grant_type", GrantType::RefreshToken.as_str().to_owned()));
                params.push(("refresh_token", token.to_owned()));
            }
            (None, Grant::ClientCredentials) => {
                params.push(("grant_type", self.grant.grant_type().as_str().to_owned()))
            }
            (None, Grant::Password { username, password }) => {
                params.push(("grant_type", self.grant.grant_type().as_str().to_owned()));
                params.push(("username", username.clone()));
                params.push(("password", password.clone()));
            }
        }
        if refresh.is_none() {
            if let Some(scope) = &self.scope {
                params.push(("scope", scope.clone()));
            }
            if let Some(audience) = &self.audience {
                params.push(("audience", audience.clone()));
            }
        }
        params
    }

    /// The dialect's headers with the configured ones applied over them.
    pub fn request_headers(&self) -> Result<HeaderMap, ClientError> {
        let invalid = |name: &str| ClientError::InvalidHeader(name.to_owned());
        let parse = |name: &str, value: &str| -> Result<(HeaderName, HeaderValue), ClientError> {
            let header_name = HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| invalid(name))?;
            let header_value = HeaderValue::from_str(value.trim()).map_err(|_| invalid(name))?;
            Ok((header_name, header_value))
        };
        let mut headers = HeaderMap::new();
        for (name, value) in self.dialect.default_headers() {
            let (name, value) = parse(name, value)?;
            headers.insert(name, value);
        }
        let mut overridden = Vec::new();
        for (name, value) in &self.headers {
            let (name, value) = parse(name, value)?;
            if overridden.contains(&name) {
                headers.append(name, value);
            } else {
                overridden.push(name.clone());
                headers.remove(&name);
                if !value.is_empty() {
                    headers.insert(name, value);
                }
            }
        }
        Ok(headers)
    }

    /// The client-authentication parameters of a body: a fresh assertion, or the secret.
    fn credentials_in_body(&self) -> Result<Vec<(&'static str, String)>, ClientError> {
        let mut params = vec![("client_id", self.client_id.clone())];
        match &self.assertion_key {
            Some(key) => {
                params.push(("client_assertion_type", JWT_BEARER_ASSERTION.to_owned()));
                params.push(("client_assertion", key.client_assertion(&self.client_id, &self.token_url)?));
            }
            None => params.push(("client_secret", self.client_secret.clone())),
        }
        Ok(params)
    }

    /// `Authorization: Basic` for the Basic dialects; with assertions, none (they go in the body).
    fn with_client_authentication(
        &self,
        request: reqwest::RequestBuilder,
        params: &mut Vec<(&'static str, String)>,
    ) -> Result<reqwest::RequestBuilder, ClientError> {
        if self.assertion_key.is_some() {
            params.extend(self.credentials_in_body()?);
            return Ok(request);
        }
        Ok(request.header("Authorization", basic(&self.client_id, &self.client_secret)))
    }

    /// Builds the HTTP request for a new token, or a refresh when `refresh` is given; with a
    /// DPoP key, with a proof carrying `nonce` (the server's, when it gave one).
    pub(crate) fn request(
        &self,
        http: &reqwest::Client,
        refresh: Option<&str>,
        nonce: Option<&str>,
    ) -> Result<reqwest::RequestBuilder, ClientError> {
        let headers = self.request_headers()?;
        let mut params = self.params(refresh);
        let mut request = match self.dialect {
            Dialect::Basic => {
                let request = self.with_client_authentication(http.post(&self.token_url), &mut params)?;
                request.form(&params)
            }
            Dialect::Post => {
                params.extend(self.credentials_in_body()?);
                http.post(&self.token_url).form(&params)
            }
            Dialect::Json => {
                let mut body = Map::new();
                let action = if refresh.is_some() { "refresh" } else { "authorize" };
                body.insert("action".into(), action.into());
                for (name, value) in params.into_iter().chain(self.credentials_in_body()?) {
                    body.insert(name.into(), value.into());
                }
                http.post(&self.token_url).json(&body)
            }
            Dialect::Query => {
                let grant_type = params.remove(0).1;
                let request = http.post(&self.token_url).query(&[("grant_type", grant_type)]);
                self.with_client_authentication(request, &mut params)?.form(&params)
            }
        };
        for (name, value) in &headers {
            request = request.header(name, value);
        }
        if let Some(key) = &self.dpop_key {
            request = request.header("DPoP", key.dpop_proof("POST", &self.token_url, None, nonce)?);
        }
        Ok(request)
    }
}

/// Reads a token response, or the RFC 6749 error it carries.
pub(crate) async fn read_answer(response: reqwest::Response) -> Result<TokenAnswer, ClientError> {
    let status = response.status().as_u16();
    let text = response.text().await.map_err(|e| ClientError::Unavailable(e.to_string()))?;
    let raw: Value = match serde_json::from_str(&text) {
        Ok(value) => value,
        Err(_) if status >= 500 || status == 429 => {
            let error = AnyErrorCode::Known(ErrorCode::ServerError);
            return Err(ClientError::Refused { status, error, description: None });
        }
        Err(_) => return Err(ClientError::Protocol(format!("{status} with a non-JSON body"))),
    };
    if !(200..300).contains(&status) {
        let error = AnyErrorCode::parse(raw.get("error").and_then(Value::as_str).unwrap_or(""));
        let description = raw.get("error_description").and_then(Value::as_str).map(str::to_owned);
        return Err(ClientError::Refused { status, error, description });
    }
    let response: TokenResponse =
        serde_json::from_value(raw.clone()).map_err(|e| ClientError::Protocol(e.to_string()))?;
    Ok(TokenAnswer { response, raw })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dialect: Dialect, headers: &[(&str, &str)]) -> ClientConfig {
        let mut config = ClientConfig::client_credentials("http://127.0.0.1:9/oauth2/token", "id", "secret", dialect);
        config.headers = headers.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect();
        config
    }

    fn sent(config: &ClientConfig, name: &str) -> Vec<String> {
        let headers = config.request_headers().unwrap();
        headers.get_all(name).iter().map(|v| v.to_str().unwrap().to_owned()).collect()
    }

    #[test]
    fn pay_me_sends_its_api_version_unless_told_otherwise() {
        assert_eq!(sent(&config(Dialect::Json, &[]), "alg-api-version"), ["1618440906"]);
        for other in [Dialect::Basic, Dialect::Post, Dialect::Query] {
            assert!(sent(&config(other, &[]), "ALG-API-VERSION").is_empty(), "{other:?}");
        }
        let newer = config(Dialect::Json, &[("alg-api-version", "1700000000")]);
        assert_eq!(sent(&newer, "ALG-API-VERSION"), ["1700000000"], "a configured value replaces the default");
        assert!(sent(&config(Dialect::Json, &[("ALG-API-VERSION", "")]), "ALG-API-VERSION").is_empty());
        let added = config(Dialect::Basic, &[("X-Trace", "a"), ("X-Trace", "b")]);
        assert_eq!(sent(&added, "x-trace"), ["a", "b"]);
        let bad = config(Dialect::Basic, &[("Bad Name", "x")]).request_headers();
        assert!(matches!(bad, Err(ClientError::InvalidHeader(name)) if name == "Bad Name"));
    }
}
