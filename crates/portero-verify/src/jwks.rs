//! A JWKS cache: keys fetched from the token service, kept as long as its `Cache-Control`
//! allows, refetched once (rate-limited) when a token names a `kid` the cache does not know.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ED25519, ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256, VerificationAlgorithm,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm};

use crate::error::VerifyError;

const DEFAULT_MAX_AGE: Duration = Duration::from_secs(300);
const MIN_MAX_AGE: Duration = Duration::from_secs(5);
const MAX_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// A published key, parsed once into aws-lc's form, with the one JWS algorithm it may be used with.
#[derive(Clone)]
pub struct VerificationKey {
    /// `RS256`, `ES256` or `EdDSA`: what the token header's `alg` must say.
    pub alg: &'static str,
    pub key: Arc<ParsedPublicKey>,
}

#[derive(Default)]
struct Snapshot {
    keys: Arc<HashMap<String, VerificationKey>>,
    fetched_at: Option<Instant>,
    max_age: Duration,
    last_unknown_kid_refetch: Option<Instant>,
}

pub struct JwksCache {
    url: String,
    http: reqwest::Client,
    snapshot: RwLock<Snapshot>,
    /// One fetch at a time; waiters reuse its result.
    fetching: tokio::sync::Mutex<()>,
    unknown_kid_interval: Duration,
}

impl JwksCache {
    pub fn new(url: impl Into<String>, http: reqwest::Client) -> Self {
        Self {
            url: url.into(),
            http,
            snapshot: RwLock::new(Snapshot::default()),
            fetching: tokio::sync::Mutex::new(()),
            unknown_kid_interval: Duration::from_secs(10),
        }
    }

    /// A fixed key set that is never refetched (offline verification, benchmarks, tests).
    pub fn from_set(set: &JwkSet) -> Self {
        let cache = Self::new(String::new(), reqwest::Client::new());
        if let Ok(mut snapshot) = cache.snapshot.write() {
            snapshot.keys = Arc::new(parse_keys(set));
            snapshot.fetched_at = Some(Instant::now());
            snapshot.max_age = Duration::MAX;
            // Unknown kids never trigger a fetch of the empty URL.
            snapshot.last_unknown_kid_refetch = Some(Instant::now());
        }
        cache.with_unknown_kid_interval(Duration::MAX)
    }

    /// How often an unknown `kid` may trigger a refetch (default 10 s).
    pub fn with_unknown_kid_interval(mut self, interval: Duration) -> Self {
        self.unknown_kid_interval = interval;
        self
    }

    fn read(&self) -> (Arc<HashMap<String, VerificationKey>>, bool) {
        let snapshot = match self.snapshot.read() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let fresh = snapshot.fetched_at.is_some_and(|at| at.elapsed() < snapshot.max_age);
        (snapshot.keys.clone(), fresh)
    }

    /// The key for `kid`, fetching the JWKS when the cache is stale or does not know the kid.
    pub async fn key(&self, kid: &str) -> Result<VerificationKey, VerifyError> {
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
        self.read().0.get(kid).cloned().ok_or_else(|| VerifyError::InvalidToken(format!("unknown key id {kid:?}")))
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
        let set: JwkSet = response.json().await.map_err(|e| VerifyError::Unavailable(format!("bad JWKS: {e}")))?;
        let keys = parse_keys(&set);
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

/// Usable signature keys by kid. Symmetric (`oct`) keys are never accepted: with them a
/// public key could be used as an HMAC secret.
pub fn parse_keys(set: &JwkSet) -> HashMap<String, VerificationKey> {
    set.keys.iter().filter_map(|jwk| Some((jwk.common.key_id.clone()?, parse_key(jwk)?))).collect()
}

fn parse_key(jwk: &Jwk) -> Option<VerificationKey> {
    let b64 = |value: &str| URL_SAFE_NO_PAD.decode(value.trim_end_matches('=')).ok();
    let (alg, algorithm, bytes): (&'static str, &'static dyn VerificationAlgorithm, Vec<u8>) =
        match (&jwk.algorithm, jwk.common.key_algorithm) {
            (AlgorithmParameters::RSA(rsa), None | Some(KeyAlgorithm::RS256)) => {
                ("RS256", &RSA_PKCS1_2048_8192_SHA256, rsa_public_key_der(&b64(&rsa.n)?, &b64(&rsa.e)?))
            }
            (AlgorithmParameters::EllipticCurve(ec), None | Some(KeyAlgorithm::ES256))
                if ec.curve == EllipticCurve::P256 =>
            {
                let mut point = vec![0x04];
                point.extend(b64(&ec.x)?);
                point.extend(b64(&ec.y)?);
                ("ES256", &ECDSA_P256_SHA256_FIXED, point)
            }
            (AlgorithmParameters::OctetKeyPair(okp), None | Some(KeyAlgorithm::EdDSA))
                if okp.curve == EllipticCurve::Ed25519 =>
            {
                ("EdDSA", &ED25519, b64(&okp.x)?)
            }
            _ => return None,
        };
    let key = ParsedPublicKey::new(algorithm, bytes).ok()?;
    Some(VerificationKey { alg, key: Arc::new(key) })
}

/// DER of PKCS#1 `RSAPublicKey ::= SEQUENCE { n INTEGER, e INTEGER }`.
fn rsa_public_key_der(n: &[u8], e: &[u8]) -> Vec<u8> {
    fn length(len: usize) -> Vec<u8> {
        match len {
            0..=0x7f => vec![len as u8],
            0x80..=0xff => vec![0x81, len as u8],
            _ => vec![0x82, (len >> 8) as u8, len as u8],
        }
    }
    fn integer(bytes: &[u8]) -> Vec<u8> {
        let trimmed: Vec<u8> = bytes.iter().copied().skip_while(|b| *b == 0).collect();
        let mut value = if trimmed.is_empty() { vec![0] } else { trimmed };
        if value[0] & 0x80 != 0 {
            value.insert(0, 0);
        }
        [vec![0x02], length(value.len()), value].concat()
    }
    let body = [integer(n), integer(e)].concat();
    [vec![0x30], length(body.len()), body].concat()
}
