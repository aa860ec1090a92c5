//! The cached token, its renewal ahead of expiry, and single-flight fetching.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::dialect::{ClientConfig, TokenAnswer, read_answer};
use crate::error::ClientError;
use portero_wire::{AnyErrorCode, ErrorCode};

const ATTEMPTS: u32 = 4;
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const HTTP_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Clone)]
struct Cached {
    access_token: String,
    refresh_token: Option<String>,
    /// When to get a new one: ahead of expiry by a fifth of the lifetime (1 s to 60 s); at
    /// once when the lifetime is unknown.
    renew_at: Instant,
}

/// Gets and caches access tokens. Cheap to clone; clones share the cache.
#[derive(Clone)]
pub struct TokenClient {
    config: Arc<ClientConfig>,
    http: reqwest::Client,
    cached: Arc<RwLock<Option<Cached>>>,
    /// Held while a token is being fetched: the one request in flight.
    fetching: Arc<tokio::sync::Mutex<()>>,
    /// The last `DPoP-Nonce` the token endpoint gave (RFC 9449 §8).
    dpop_nonce: Arc<RwLock<Option<String>>>,
}

impl std::fmt::Debug for TokenClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenClient").field("config", &self.config).finish()
    }
}

impl TokenClient {
    /// A client with its own HTTP client (15 s timeout). Fails if the HTTP client cannot be
    /// built, rather than falling back to one without timeouts.
    pub fn new(config: ClientConfig) -> Result<Self, ClientError> {
        Self::from_builder(config, reqwest::Client::builder().timeout(HTTP_TIMEOUT))
    }

    /// A client whose HTTP client is built from `builder` (proxies, TLS roots, timeouts: set
    /// them there, none is added).
    pub fn from_builder(config: ClientConfig, builder: reqwest::ClientBuilder) -> Result<Self, ClientError> {
        let http = builder.build().map_err(|e| ClientError::HttpClient(e.to_string()))?;
        Ok(Self::with_http(config, http))
    }

    /// A client sharing an existing HTTP client.
    pub fn with_http(config: ClientConfig, http: reqwest::Client) -> Self {
        Self {
            config: Arc::new(config),
            http,
            cached: Arc::default(),
            fetching: Arc::new(tokio::sync::Mutex::new(())),
            dpop_nonce: Arc::default(),
        }
    }

    /// A DPoP proof for an API call of `method` to `url` with `access_token` (one of this
    /// client's DPoP-bound tokens), or `None` when the client has no DPoP key. Send it as the
    /// `DPoP` header with `Authorization: DPoP <token>`; make a new one for every request.
    pub fn dpop_proof(&self, method: &str, url: &str, access_token: &str) -> Option<Result<String, ClientError>> {
        let key = self.config.dpop_key()?;
        Some(key.dpop_proof(method, url, Some(access_token), None))
    }

    fn fresh(&self) -> Option<String> {
        let cached = self.cached.read().ok()?;
        cached.as_ref().filter(|c| Instant::now() < c.renew_at).map(|c| c.access_token.clone())
    }

    /// A valid access token: the cached one, or a new one (one request for all waiting callers).
    pub async fn access_token(&self) -> Result<String, ClientError> {
        if let Some(token) = self.fresh() {
            return Ok(token);
        }
        let _in_flight = self.fetching.lock().await;
        if let Some(token) = self.fresh() {
            return Ok(token);
        }
        let answer = self.renew().await?;
        Ok(answer.access_token().to_owned())
    }

    /// Forgets the cached token (after an API answered 401 with it, say).
    pub fn invalidate(&self) {
        if let Ok(mut cached) = self.cached.write()
            && let Some(c) = cached.as_mut()
        {
            c.renew_at = Instant::now();
        }
    }

    /// Fetches a new token now, bypassing the cache; returns the whole answer.
    pub async fn fetch(&self) -> Result<TokenAnswer, ClientError> {
        let _in_flight = self.fetching.lock().await;
        self.renew().await
    }

    async fn renew(&self) -> Result<TokenAnswer, ClientError> {
        let refresh = self.cached.read().ok().and_then(|c| c.as_ref().and_then(|c| c.refresh_token.clone()));
        let answer = match refresh {
            Some(refresh) => match self.request_with_retries(Some(&refresh)).await {
                Ok(answer) => answer,
                // The refresh token is spent or revoked: start over with the grant itself.
                Err(ClientError::Refused { .. }) => self.request_with_retries(None).await?,
                Err(other) => return Err(other),
            },
            None => self.request_with_retries(None).await?,
        };
        let renew_at = match answer.expires_in().or(self.config.default_lifetime()) {
            Some(lifetime) => {
                let margin = (lifetime / 5).clamp(Duration::from_secs(1).min(lifetime / 2), Duration::from_secs(60));
                Instant::now() + lifetime.saturating_sub(margin)
            }
            None => {
                // Unknown lifetime and no documented default: never reuse it (see
                // `ClientConfig::with_default_lifetime`), but keep the refresh token.
                tracing::debug!("token response without expires_in; not caching the access token");
                Instant::now()
            }
        };
        let cached = Cached {
            access_token: answer.access_token().to_owned(),
            refresh_token: answer.refresh_token().map(str::to_owned),
            renew_at,
        };
        if let Ok(mut slot) = self.cached.write() {
            *slot = Some(cached);
        }
        Ok(answer)
    }

    async fn request_with_retries(&self, refresh: Option<&str>) -> Result<TokenAnswer, ClientError> {
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 1;
        let mut nonce_retried = false;
        loop {
            let nonce = self.dpop_nonce.read().ok().and_then(|n| n.clone());
            let result = match self.config.request(&self.http, refresh, nonce.as_deref())?.send().await {
                Ok(response) => {
                    self.remember_nonce(&response);
                    read_answer(response).await
                }
                Err(error) => Err(ClientError::Unavailable(error.without_url().to_string())),
            };
            match result {
                // RFC 9449 §8: the server wants its nonce in the proof; once per request.
                Err(ClientError::Refused { error, .. })
                    if error == AnyErrorCode::Known(ErrorCode::UseDpopNonce) && !nonce_retried =>
                {
                    nonce_retried = true;
                }
                Err(error) if error.is_transient() && attempt < ATTEMPTS => {
                    tracing::warn!(%error, attempt, "token request failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    fn remember_nonce(&self, response: &reqwest::Response) {
        let given = response.headers().get("dpop-nonce").and_then(|v| v.to_str().ok());
        if let (Some(nonce), Ok(mut slot)) = (given, self.dpop_nonce.write()) {
            *slot = Some(nonce.to_owned());
        }
    }
}
