//! How a token request is written in each dialect, and how the answer is read.

use base64::Engine;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::error::ClientError;

/// The four ways Portero's documented integrations ask for a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

#[derive(Clone, PartialEq, Eq)]
pub enum Grant {
    ClientCredentials,
    Password { username: String, password: String },
}

impl std::fmt::Debug for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ClientCredentials => f.write_str("ClientCredentials"),
            Self::Password { username, .. } => write!(f, "Password {{ username: {username:?}, password: [redacted] }}"),
        }
    }
}

/// Everything needed to get tokens. `Debug` never shows a secret.
#[derive(Clone)]
pub struct ClientConfig {
    pub token_url: String,
    pub client_id: String,
    pub client_secret: String,
    pub dialect: Dialect,
    pub grant: Grant,
    pub scope: Option<String>,
    pub audience: Option<String>,
    /// Headers to add to every token request, or to override the dialect's own with (see
    /// [`Dialect::default_headers`]): a name given here replaces the dialect's value, and a
    /// name given with an empty value is not sent at all. A name repeated here is sent repeated.
    pub headers: Vec<(String, String)>,
}

/// The API version the Pay-me document makes required on every request (`ALG-API-VERSION`).
pub const PAYME_API_VERSION: (&str, &str) = ("ALG-API-VERSION", "1618440906");

impl Dialect {
    /// Headers the dialect's document requires, sent unless [`ClientConfig::headers`] overrides
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
            .finish()
    }
}

impl ClientConfig {
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
        }
    }
}

/// A successful token response.
#[derive(Clone, Deserialize)]
pub struct TokenAnswer {
    pub access_token: String,
    pub expires_in: Option<u64>,
    #[serde(default)]
    pub refresh_token: Option<String>,
    #[serde(default)]
    pub scope: Option<String>,
    /// The whole JSON answer (the Pay-me envelope's extra members are here).
    #[serde(skip)]
    pub raw: Value,
}

impl std::fmt::Debug for TokenAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenAnswer").field("expires_in", &self.expires_in).field("scope", &self.scope).finish()
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
                params.push(("grant_type", "refresh_token".to_owned()));
                params.push(("refresh_token", token.to_owned()));
            }
            (None, Grant::ClientCredentials) => params.push(("grant_type", "client_credentials".to_owned())),
            (None, Grant::Password { username, password }) => {
                params.push(("grant_type", "password".to_owned()));
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

    /// Builds the HTTP request for a new token, or a refresh when `refresh` is given.
    pub(crate) fn request(
        &self,
        http: &reqwest::Client,
        refresh: Option<&str>,
    ) -> Result<reqwest::RequestBuilder, ClientError> {
        let headers = self.request_headers()?;
        let mut params = self.params(refresh);
        let mut request = match self.dialect {
            Dialect::Basic => http
                .post(&self.token_url)
                .header("Authorization", basic(&self.client_id, &self.client_secret))
                .form(&params),
            Dialect::Post => {
                params.push(("client_id", self.client_id.clone()));
                params.push(("client_secret", self.client_secret.clone()));
                http.post(&self.token_url).form(&params)
            }
            Dialect::Json => {
                let mut body = Map::new();
                let action = if refresh.is_some() { "refresh" } else { "authorize" };
                body.insert("action".into(), action.into());
                for (name, value) in params {
                    body.insert(name.into(), value.into());
                }
                body.insert("client_id".into(), self.client_id.clone().into());
                body.insert("client_secret".into(), self.client_secret.clone().into());
                http.post(&self.token_url).json(&body)
            }
            Dialect::Query => {
                let grant_type = params.remove(0).1;
                http.post(&self.token_url)
                    .query(&[("grant_type", grant_type)])
                    .header("Authorization", basic(&self.client_id, &self.client_secret))
                    .form(&params)
            }
        };
        for (name, value) in &headers {
            request = request.header(name, value);
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
            return Err(ClientError::Refused { status, error: "server_error".into(), description: None });
        }
        Err(_) => return Err(ClientError::Protocol(format!("{status} with a non-JSON body"))),
    };
    if !(200..300).contains(&status) {
        let error = raw.get("error").and_then(Value::as_str).unwrap_or("unknown_error").to_owned();
        let description = raw.get("error_description").and_then(Value::as_str).map(str::to_owned);
        return Err(ClientError::Refused { status, error, description });
    }
    let mut answer: TokenAnswer =
        serde_json::from_value(raw.clone()).map_err(|e| ClientError::Protocol(e.to_string()))?;
    answer.raw = raw;
    Ok(answer)
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
