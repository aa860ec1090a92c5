//! A JWKS cache (feature `reqwest`): keys fetched from the token service, kept as long as its
//! `Cache-Control` allows, refetched once (rate-limited) when a token names a `kid` the cache
//! does not know.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use portero_wire::jws::{Jwks, PublicKey};

use crate::error::{Rejection, VerifyError};

const DEFAULT_MAX_AGE: Duration = Duration::from_secs(300);
const MIN_MAX_AGE: Duration = Duration::from_secs(5);
const MAX_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

#[derive(Default)]
struct Snapshot {
    keys: Arc<Jwks>,
    fetched_at: Option<Instant>,
    max_age: Duration,
    last_unknown_kid_refetch: Option<Instant>,
}

pub(crate) struct JwksCache {
    url: String,
    http: reqwest::Client,
    snapshot: RwLock<Snapshot>,
    /// One fetch at a time; waiters reuse its result.
    fetching: tokio::sync::Mutex<()>,
    unknown_kid_interval: Duration,
}

impl JwksCache {
    pub(crate) fn new(url: String, http: reqwest::Client, unknown_kid_interval: Duration) -> Self {
        Self {
            url,
            http,
            snapshot: RwLock::new(Snapshot::default()),
            fetching: tokio::sync::Mutex::new(()),
            unknown_kid_interval,
        }
    }

    fn read(&self) -> (Arc<Jwks>, bool) {
        let snapshot = match self.snapshot.read() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let fresh = snapshot.fetched_at.is_some_and(|at| at.elapsed() < snapshot.max_age);
        (snapshot.keys.clone(), fresh)
    }

    /// The key for `kid`, fetching the JWKS when the cache is stale or does not know the kid.
    pub(crate) async fn key(&self, kid: &str) -> Result<PublicKey, VerifyError> {
        let (keys, fresh) = self.read();
        if fresh && let Some(key) = keys.get(kid) {
            return Ok(key.clone());
        }
        if !fresh {
            // Stale: refetch, but keep verifying with what we have if the service is down.
            if let Err(error) = self.refresh(false).await {
                if keys.is_empty() {
                    return Err(error);
                }
                tracing::warn!(%error, "JWKS refresh failed; using the cached keys");
            }
        } else if self.may_refetch_for_unknown_kid() {
            self.refresh(true).await?;
        }
        self.read().0.get(kid).cloned().ok_or_else(|| Rejection::UnknownKeyId(kid.to_owned()).into())
    }

    fn may_refetch_for_unknown_kid(&self) -> bool {
        let Ok(mut snapshot) = self.snapshot.write() else { return false };
        let allowed = snapshot.last_unknown_kid_refetch.is_none_or(|at| at.elapsed() >= self.unknown_kid_interval);
        if allowed {
            snapshot.last_unknown_kid_refetch = Some(Instant::now());
        }
        allowed
    }

    async fn refresh(&self, forced: bool) -> Result<(), VerifyError> {
        let started = Instant::now();
        let _one_at_a_time = self.fetching.lock().await;
        // Someone else fetched while we waited: use theirs.
        let fetched_since = self.snapshot.read().ok().and_then(|s| s.fetched_at).is_some_and(|at| at >= started);
        if fetched_since || (!forced && self.read().1) {
            return Ok(());
        }
        let response = self.http.get(&self.url).send().await.map_err(|e| VerifyError::Unavailable(e.to_string()))?;
        if !response.status().is_success() {
            return Err(VerifyError::Unavailable(format!("JWKS answered {}", response.status())));
        }
        let max_age = max_age(response.headers()).unwrap_or(DEFAULT_MAX_AGE).clamp(MIN_MAX_AGE, MAX_MAX_AGE);
        let set: serde_json::Value =
            response.json().await.map_err(|e| VerifyError::Unavailable(format!("bad JWKS: {e}")))?;
        let keys = Jwks::from_json(&set).map_err(|e| VerifyError::Unavailable(format!("bad JWKS: {e}")))?;
        if let Ok(mut snapshot) = self.snapshot.write() {
            snapshot.keys = Arc::new(keys);
            snapshot.fetched_at = Some(Instant::now());
            snapshot.max_age = max_age;
        }
        Ok(())
    }
}

/// `max-age` from `Cache-Control`; `no-store`/`no-cache` mean "refetch soon".
fn max_age(headers: &http::HeaderMap) -> Option<Duration> {
    let value = headers.get(http::header::CACHE_CONTROL)?.to_str().ok()?;
    for directive in value.split(',').map(str::trim) {
        if directive.eq_ignore_ascii_case("no-store") || directive.eq_ignore_ascii_case("no-cache") {
            return Some(MIN_MAX_AGE);
        }
        if let Some(seconds) = directive.strip_prefix("max-age=") {
            return seconds.trim().parse().ok().map(Duration::from_secs);
        }
    }
    None
}
