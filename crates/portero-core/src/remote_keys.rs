//! JWK Sets of `private_key_jwt` clients registered with a `jwks_uri` (RFC 7591 §2): fetched
//! when first needed and cached as a resource server caches Portero's own: for the document's
//! `Cache-Control: max-age` (clamped to 1 minute .. 24 hours, 5 minutes without one), refetched
//! early when an assertion names a `kid` the cached set lacks (at most once per 10 s per URL, so
//! assertions with made-up kids cannot make Portero hammer the client's server), and kept in use
//! while a refetch fails. One fetch per URL is in flight however many requests wait for it.
//!
//! This crate makes no HTTP requests: the server hands in a [`KeyFetch`].

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use portero_wire::jws::Jwks;
use serde_json::Value;

const DEFAULT_TTL: Duration = Duration::from_secs(300);
const MIN_TTL: Duration = Duration::from_secs(60);
const MAX_TTL: Duration = Duration::from_secs(86_400);
/// The soonest a `kid` the cache lacks may cause another fetch of the same URL.
const UNKNOWN_KID_INTERVAL: Duration = Duration::from_secs(10);
/// URLs cached at most; beyond, the least recently fetched goes.
const MAX_URLS: usize = 10_000;

/// A fetched JWK Set document and how long it may be cached.
pub struct Fetched {
    pub body: Value,
    pub max_age: Option<Duration>,
}

/// Fetches a client's JWK Set document (the server's HTTP client: verified TLS, a timeout, a
/// bounded body). The error is for the log.
pub trait KeyFetch: Send + Sync + 'static {
    fn fetch<'a>(&'a self, url: &'a str) -> Pin<Box<dyn Future<Output = Result<Fetched, String>> + Send + 'a>>;
}

struct Entry {
    keys: Arc<Jwks>,
    fresh_until: Instant,
    fetched_at: Instant,
}

/// The cache of remote JWK Sets, by URL, and of registered ones, parsed, by their text.
pub struct RemoteKeys {
    fetch: Option<Arc<dyn KeyFetch>>,
    cache: Mutex<HashMap<String, Entry>>,
    in_flight: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    registered: Mutex<HashMap<String, Arc<Jwks>>>,
}

impl RemoteKeys {
    pub fn new(fetch: Arc<dyn KeyFetch>) -> Self {
        Self { fetch: Some(fetch), ..Self::offline() }
    }

    /// No fetching: clients with a `jwks_uri` cannot authenticate (for tools and tests without
    /// a network).
    pub fn offline() -> Self {
        Self { fetch: None, cache: Mutex::default(), in_flight: Mutex::default(), registered: Mutex::default() }
    }

    /// A registered JWK Set (its JSON text), parsed once: parsing validates every key's point,
    /// which costs as much as the signature check it is for. Keyed by the text itself, so an
    /// updated set is a new entry; at most [`MAX_URLS`] are kept (beyond, one goes for each new).
    pub fn registered(&self, text: &str) -> Result<Arc<Jwks>, String> {
        if let Some(keys) = self.registered.lock().unwrap_or_else(|p| p.into_inner()).get(text) {
            return Ok(keys.clone());
        }
        let set: Value = serde_json::from_str(text).map_err(|_| "an unreadable JWK Set".to_owned())?;
        let keys = Arc::new(Jwks::from_json(&set).map_err(|e| e.to_string())?);
        let mut registered = self.registered.lock().unwrap_or_else(|p| p.into_inner());
        if registered.len() >= MAX_URLS
            && let Some(any) = registered.keys().next().cloned()
        {
            registered.remove(&any);
        }
        registered.insert(text.to_owned(), keys.clone());
        Ok(keys)
    }

    /// The keys at `url`, fetched if not cached, stale, or lacking `kid`.
    pub async fn keys(&self, url: &str, kid: Option<&str>) -> Result<Arc<Jwks>, String> {
        if let Some(keys) = self.cached(url, kid) {
            return Ok(keys);
        }
        let flight = {
            let mut in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
            in_flight.entry(url.to_owned()).or_default().clone()
        };
        let _one_fetch = flight.lock().await;
        if let Some(keys) = self.cached(url, kid) {
            return Ok(keys);
        }
        let result = self.refetch(url).await;
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        // Only this flight's lock: a newer one may already stand there for later callers.
        if in_flight.get(url).is_some_and(|current| Arc::ptr_eq(current, &flight)) {
            in_flight.remove(url);
        }
        result
    }

    /// The cached keys, when fresh and (for a `kid`) holding it, or when a refetch for an unknown
    /// `kid` would come too soon.
    fn cached(&self, url: &str, kid: Option<&str>) -> Option<Arc<Jwks>> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let entry = cache.get(url)?;
        let now = Instant::now();
        if now >= entry.fresh_until {
            return None;
        }
        let has_kid = kid.is_none_or(|kid| entry.keys.get(kid).is_some());
        (has_kid || now < entry.fetched_at + UNKNOWN_KID_INTERVAL).then(|| entry.keys.clone())
    }

    async fn refetch(&self, url: &str) -> Result<Arc<Jwks>, String> {
        let Some(fetch) = &self.fetch else { return Err("fetching JWK Sets is off".to_owned()) };
        let fetched = fetch.fetch(url).await.and_then(|f| {
            let keys = Jwks::from_json(&f.body).map_err(|e| format!("not a JWK Set: {e}"))?;
            Ok((keys, f.max_age))
        });
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        match fetched {
            Ok((keys, max_age)) => {
                let keys = Arc::new(keys);
                let now = Instant::now();
                let ttl = max_age.unwrap_or(DEFAULT_TTL).clamp(MIN_TTL, MAX_TTL);
                if cache.len() >= MAX_URLS && !cache.contains_key(url) {
                    let oldest = cache.iter().min_by_key(|(_, e)| e.fetched_at).map(|(u, _)| u.clone());
                    oldest.map(|u| cache.remove(&u));
                }
                cache.insert(url.to_owned(), Entry { keys: keys.clone(), fresh_until: now + ttl, fetched_at: now });
                Ok(keys)
            }
            // The last keys fetched keep working while the client's server is away, and a failure
            // is not retried for UNKNOWN_KID_INTERVAL: requests do not queue behind one
            // timed-out fetch after another. A URL never fetched is remembered as having no keys.
            Err(error) => {
                let now = Instant::now();
                let host = url.split("://").nth(1).and_then(|rest| rest.split(['/', '?']).next()).unwrap_or("?");
                tracing::warn!(%host, %error, "fetching a client's JWK Set failed");
                let retry_at = now + UNKNOWN_KID_INTERVAL;
                match cache.get_mut(url) {
                    Some(entry) => {
                        entry.fetched_at = now;
                        entry.fresh_until = entry.fresh_until.max(retry_at);
                        Ok(entry.keys.clone())
                    }
                    None => {
                        let empty = Entry { keys: Arc::new(Jwks::default()), fresh_until: retry_at, fetched_at: now };
                        cache.insert(url.to_owned(), empty);
                        Err(error)
                    }
                }
            }
        }
    }
}

/// Whether `url` may be a `jwks_uri`: `https`, or `http` to a loopback host (for tests and
/// sidecars), with a host, no credentials and no fragment.
pub fn acceptable_uri(url: &str) -> bool {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (scheme.to_ascii_lowercase(), rest),
        None => return false,
    };
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    if authority.is_empty() || authority.contains('@') || url.contains('#') || url.len() > 2048 {
        return false;
    }
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if port.parse::<u16>().is_ok() => host,
        _ => authority,
    };
    let loopback = matches!(host.to_ascii_lowercase().as_str(), "localhost" | "[::1]")
        || host.parse::<std::net::Ipv4Addr>().is_ok_and(|ip| ip.is_loopback());
    scheme == "https" || (scheme == "http" && loopback)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Counting {
        calls: AtomicUsize,
        body: Mutex<Option<Value>>,
    }

    impl KeyFetch for Counting {
        fn fetch<'a>(&'a self, _url: &'a str) -> Pin<Box<dyn Future<Output = Result<Fetched, String>> + Send + 'a>> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let body = self.body.lock().unwrap().clone();
            Box::pin(async move {
                // Long enough for every waiting request to queue behind this fetch.
                tokio::time::sleep(Duration::from_millis(20)).await;
                body.map(|body| Fetched { body, max_age: None }).ok_or_else(|| "down".to_owned())
            })
        }
    }

    fn set(kid: &str) -> Value {
        serde_json::json!({ "keys": [{ "kty": "OKP", "crv": "Ed25519", "kid": kid,
            "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo" }] })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn one_fetch_then_cached_and_an_unknown_kid_refetches_at_most_every_ten_seconds() {
        let fetch = Arc::new(Counting { calls: AtomicUsize::new(0), body: Mutex::new(Some(set("a"))) });
        let keys = Arc::new(RemoteKeys::new(fetch.clone()));
        let waiting: Vec<_> = (0..20)
            .map(|_| {
                let keys = keys.clone();
                tokio::spawn(async move { keys.keys("https://client.example/jwks", Some("a")).await.is_ok() })
            })
            .collect();
        for task in waiting {
            assert!(task.await.unwrap());
        }
        assert_eq!(fetch.calls.load(Ordering::SeqCst), 1, "one fetch for twenty waiting requests");
        *fetch.body.lock().unwrap() = Some(set("b"));
        let found = keys.keys("https://client.example/jwks", Some("b")).await.unwrap();
        assert!(found.get("b").is_none(), "an unknown kid within 10 s of a fetch does not refetch");
        assert_eq!(fetch.calls.load(Ordering::SeqCst), 1);
        *fetch.body.lock().unwrap() = None;
        assert!(RemoteKeys::offline().keys("https://client.example/jwks", None).await.is_err());
    }

    #[test]
    fn only_https_or_loopback_http() {
        for good in
            ["https://client.example/jwks", "http://127.0.0.1:9000/jwks", "http://localhost/k", "http://[::1]:80/"]
        {
            assert!(acceptable_uri(good), "{good}");
        }
        for bad in
            ["http://client.example/jwks", "ftp://x/y", "https://", "https://u:p@x/", "jwks.json", "https://x/#f"]
        {
            assert!(!acceptable_uri(bad), "{bad}");
        }
    }
}
