//! How a token request is written in each dialect, and how the answer is read.

use base64::Engine;
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
    /// Extra headers, e.g. `("ALG-API-VERSION", "1618440906")` for Pay-me.
    pub headers: Vec<(String, String)>,
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

    /// Builds the HTTP request for a new token, or a refresh when `refresh` is given.
    pub(crate) fn request(&self, http: &reqwest::Client, refresh: Option<&str>) -> reqwest::RequestBuilder {
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
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        request
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
