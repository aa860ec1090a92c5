//! The cached token, its renewal ahead of expiry, and single-flight fetching.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::dialect::{ClientConfig, TokenAnswer, read_answer};
use crate::error::ClientError;

const ATTEMPTS: u32 = 4;
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

#[derive(Clone)]
struct Cached {
    access_token: String,
    refresh_token: Option<String>,
    /// When to get a new one: ahead of expiry by a fifth of the lifetime (1 s to 60 s).
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
}

impl std::fmt::Debug for TokenClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenClient").field("config", &self.config).finish()
    }
}

impl TokenClient {
    pub fn new(config: ClientConfig) -> Self {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(15)).build().unwrap_or_default();
        Self::with_http(config, http)
    }

    pub fn with_http(config: ClientConfig, http: reqwest::Client) -> Self {
        Self { config: Arc::new(config), http, cached: Arc::default(), fetching: Arc::new(tokio::sync::Mutex::new(())) }
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
        Ok(answer.access_token)
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
        let lifetime = Duration::from_secs(answer.expires_in.unwrap_or(60));
        let margin = (lifetime / 5).clamp(Duration::from_secs(1).min(lifetime / 2), Duration::from_secs(60));
        let cached = Cached {
            access_token: answer.access_token.clone(),
            refresh_token: answer.refresh_token.clone(),
            renew_at: Instant::now() + lifetime.saturating_sub(margin),
        };
        if let Ok(mut slot) = self.cached.write() {
            *slot = Some(cached);
        }
        Ok(answer)
    }

    async fn request_with_retries(&self, refresh: Option<&str>) -> Result<TokenAnswer, ClientError> {
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 1;
        loop {
            let result = match self.config.request(&self.http, refresh)?.send().await {
                Ok(response) => read_answer(response).await,
                Err(error) => Err(ClientError::Unavailable(error.without_url().to_string())),
            };
            match result {
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
}
