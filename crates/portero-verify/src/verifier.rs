//! The verifier: where keys come from, and the checks RFC 9068 §4 asks of a resource server.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use portero_wire::AccessTokenClaims;
use portero_wire::jws::{CompactJws, Jwks};

use crate::claims::Claims;
use crate::error::{BuildError, Rejection, VerifyError};

/// No token Portero issues is longer (it refuses to mint longer ones).
const MAX_TOKEN_BYTES: usize = 16 * 1024;
const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);
#[cfg(feature = "reqwest")]
const DEFAULT_HTTP_TIMEOUT: Duration = Duration::from_secs(10);
#[cfg(feature = "reqwest")]
const DEFAULT_UNKNOWN_KID_INTERVAL: Duration = Duration::from_secs(10);

enum Source {
    Keys(Jwks),
    #[cfg(feature = "reqwest")]
    Jwks(crate::jwks::JwksCache),
    #[cfg(feature = "reqwest")]
    Introspection {
        url: String,
        client_id: String,
        client_secret: String,
        http: reqwest::Client,
    },
}

/// Verifies Portero access tokens for one issuer and one audience. Build it once with
/// [`Verifier::builder`] and share it (`Arc`): the JWKS cache lives inside.
pub struct Verifier {
    source: Source,
    issuer: String,
    audience: String,
    leeway_seconds: i64,
    public_url: Option<String>,
    dpop: crate::dpop::Settings,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("leeway_seconds", &self.leeway_seconds)
            .finish_non_exhaustive()
    }
}

enum SourceSpec {
    Keys(Jwks),
    #[cfg(feature = "reqwest")]
    JwksUrl(String),
    #[cfg(feature = "reqwest")]
    Introspection {
        url: String,
        client_id: String,
        client_secret: String,
    },
}

/// Configures a [`Verifier`]: the issuer and audience to expect, and one key source.
#[must_use]
pub struct VerifierBuilder {
    issuer: String,
    audience: String,
    leeway: Duration,
    source: Option<SourceSpec>,
    dpop_max_age: Duration,
    dpop_replay_capacity: usize,
    public_url: Option<String>,
    #[cfg(feature = "reqwest")]
    http: Option<reqwest::Client>,
    #[cfg(feature = "reqwest")]
    unknown_kid_interval: Duration,
}

impl std::fmt::Debug for VerifierBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifierBuilder")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("leeway", &self.leeway)
            .finish_non_exhaustive()
    }
}

impl VerifierBuilder {
    /// Clock-skew allowance for `exp` and `nbf` (default 30 s; whole seconds count).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// The API's public URL (scheme and authority, e.g. `https://api.example.com`): what DPoP
    /// proofs' `htu` names. Without it the request's `Host` is used, over `https` (or `http`
    /// for a loopback host).
    pub fn public_url(mut self, url: impl Into<String>) -> Self {
        self.public_url = Some(url.into().trim_end_matches('/').to_owned());
        self
    }

    /// How old a DPoP proof may be (default 60 s): each proof is remembered this long, so that it
    /// is accepted once.
    pub fn dpop_max_age(mut self, max_age: Duration) -> Self {
        self.dpop_max_age = max_age;
        self
    }

    /// How many recent DPoP proofs are remembered at most (default 200 000). When that many are
    /// live, new proofs are refused until the oldest age out: a replay is never let through.
    pub fn dpop_replay_capacity(mut self, capacity: usize) -> Self {
        self.dpop_replay_capacity = capacity;
        self
    }

    /// Verifies locally with these keys, never fetching any (offline verification, tests).
    pub fn keys(mut self, keys: Jwks) -> Self {
        self.source = Some(SourceSpec::Keys(keys));
        self
    }

    /// Verifies locally with the JWKS at `url` (e.g. `https://auth.example/.well-known/jwks.json`),
    /// fetched on first use, kept as its `Cache-Control` allows (5 s to 24 h, default 5 min),
    /// and refetched when a token names an unknown `kid` (at most once per
    /// [`unknown_kid_interval`](Self::unknown_kid_interval)). If a refetch fails, the cached keys
    /// keep being used.
    #[cfg(feature = "reqwest")]
    pub fn jwks_url(mut self, url: impl Into<String>) -> Self {
        self.source = Some(SourceSpec::JwksUrl(url.into()));
        self
    }

    /// Asks the introspection endpoint (RFC 7662) about every token, authenticating with HTTP
    /// Basic as a client: revocation is seen at once, at the cost of a request per token.
    #[cfg(feature = "reqwest")]
    pub fn introspection(
        mut self,
        url: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> Self {
        self.source = Some(SourceSpec::Introspection {
            url: url.into(),
            client_id: client_id.into(),
            client_secret: client_secret.into(),
        });
        self
    }

    /// The HTTP client for the JWKS and introspection (default: a client with a 10 s timeout).
    #[cfg(feature = "reqwest")]
    pub fn http_client(mut self, http: reqwest::Client) -> Self {
        self.http = Some(http);
        self
    }

    /// How often an unknown `kid` may trigger a JWKS refetch (default 10 s).
    #[cfg(feature = "reqwest")]
    pub fn unknown_kid_interval(mut self, interval: Duration) -> Self {
        self.unknown_kid_interval = interval;
        self
    }

    /// The verifier; fails without a key source, or when the default HTTP client cannot be
    /// built (never falling back to a client without timeouts).
    pub fn build(self) -> Result<Verifier, BuildError> {
        #[cfg(feature = "reqwest")]
        let http = || match self.http.clone() {
            Some(http) => Ok(http),
            None => reqwest::Client::builder()
                .timeout(DEFAULT_HTTP_TIMEOUT)
                .build()
                .map_err(|e| BuildError::HttpClient(e.to_string())),
        };
        let source = match self.source {
            None => return Err(BuildError::NoKeySource),
            Some(SourceSpec::Keys(keys)) => Source::Keys(keys),
            #[cfg(feature = "reqwest")]
            Some(SourceSpec::JwksUrl(ref url)) => {
                Source::Jwks(crate::jwks::JwksCache::new(url.clone(), http()?, self.unknown_kid_interval))
            }
            #[cfg(feature = "reqwest")]
            Some(SourceSpec::Introspection { ref url, ref client_id, ref client_secret }) => Source::Introspection {
                url: url.clone(),
                client_id: client_id.clone(),
                client_secret: client_secret.clone(),
                http: http()?,
            },
        };
        Ok(Verifier {
            source,
            issuer: self.issuer,
            audience: self.audience,
            leeway_seconds: i64::try_from(self.leeway.as_secs()).unwrap_or(i64::MAX),
            public_url: self.public_url,
            dpop: crate::dpop::Settings {
                // At most an hour: a proof is for one request, and the sum with `iat` stays small.
                max_age: i64::try_from(self.dpop_max_age.as_secs()).unwrap_or(i64::MAX).clamp(1, 3600),
                replay: crate::dpop::ReplayCache::new(self.dpop_replay_capacity),
            },
        })
    }
}

impl Verifier {
    /// Starts a verifier expecting tokens issued by `issuer` (their `iss`, e.g.
    /// `https://auth.example`) for `audience` (one of their `aud`).
    pub fn builder(issuer: impl Into<String>, audience: impl Into<String>) -> VerifierBuilder {
        VerifierBuilder {
            issuer: issuer.into(),
            audience: audience.into(),
            leeway: DEFAULT_LEEWAY,
            source: None,
            dpop_max_age: Duration::from_secs(crate::dpop::DEFAULT_MAX_AGE.unsigned_abs()),
            dpop_replay_capacity: crate::dpop::DEFAULT_REPLAY_CAPACITY,
            public_url: None,
            #[cfg(feature = "reqwest")]
            http: None,
            #[cfg(feature = "reqwest")]
            unknown_kid_interval: DEFAULT_UNKNOWN_KID_INTERVAL,
        }
    }

    /// Verifies `token` now (by the system clock). A clock before 1970 is
    /// [`VerifyError::Clock`], never "every token is still valid".
    pub async fn verify(&self, token: &str) -> Result<Claims, VerifyError> {
        self.verify_at(token, SystemTime::now()).await
    }

    /// Verifies `token` as of `now`: the signature (or introspection), `typ`, `iss`, `aud`, `sub`,
    /// and `exp`/`nbf` against `now` with the leeway. A `now` before 1970 is [`VerifyError::Clock`].
    /// A token bound to a DPoP key is refused here ([`Rejection::DpopBound`]): it is worth
    /// nothing without its proof, see [`Verifier::verify_dpop`].
    pub async fn verify_at(&self, token: &str, now: SystemTime) -> Result<Claims, VerifyError> {
        let claims = self.verified_claims(token, unix_seconds(now)?).await?;
        if claims.dpop_thumbprint().is_some() {
            return Err(VerifyError::DpopInvalidToken(Rejection::DpopBound));
        }
        Ok(Claims::new(claims))
    }

    /// Verifies a DPoP-bound `token` sent as `Authorization: DPoP` with `proof` (the `DPoP`
    /// header) in a request of `method` to `url` (as the client addressed it; query and
    /// fragment are ignored): the token as [`Verifier::verify`] does, then RFC 9449 §7.1's
    /// proof checks (`htm`, `htu`, `ath`, `iat`, the key is the token's `cnf.jkt`, and the
    /// proof was not used before).
    pub async fn verify_dpop(&self, token: &str, proof: &str, method: &str, url: &str) -> Result<Claims, VerifyError> {
        self.verify_dpop_at(token, proof, (method, url), SystemTime::now()).await
    }

    /// [`Verifier::verify_dpop`] as of `now`; `request` is the method and the URL.
    pub async fn verify_dpop_at(
        &self,
        token: &str,
        proof: &str,
        request: (&str, &str),
        now: SystemTime,
    ) -> Result<Claims, VerifyError> {
        let now = unix_seconds(now)?;
        let claims = self.verified_claims(token, now).await.map_err(|error| match error {
            VerifyError::InvalidToken(rejection) => VerifyError::DpopInvalidToken(rejection),
            other => other,
        })?;
        let jkt = claims.dpop_thumbprint().ok_or(VerifyError::DpopInvalidToken(Rejection::NotDpopBound))?;
        crate::dpop::check(&self.dpop, (token, jkt), proof, request, now)?;
        Ok(Claims::new(claims))
    }

    /// The configured public URL of the API, if any (see [`VerifierBuilder::public_url`]).
    pub fn public_url(&self) -> Option<&str> {
        self.public_url.as_deref()
    }

    /// The token's claims once its signature (or introspection) and RFC 9068 §4's checks pass.
    async fn verified_claims(&self, token: &str, now: i64) -> Result<AccessTokenClaims, VerifyError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(Rejection::TooLong.into());
        }
        let claims = match &self.source {
            Source::Keys(keys) => {
                let jws = parse_access_token(token)?;
                let kid = jws.header().kid.as_deref().ok_or(Rejection::NoKeyId)?;
                let key = keys.get(kid).ok_or_else(|| Rejection::UnknownKeyId(kid.to_owned()))?;
                read_claims(&jws.verify(key)?)?
            }
            #[cfg(feature = "reqwest")]
            Source::Jwks(cache) => {
                let jws = parse_access_token(token)?;
                let kid = jws.header().kid.as_deref().ok_or(Rejection::NoKeyId)?;
                let key = cache.key(kid).await?;
                read_claims(&jws.verify(&key)?)?
            }
            #[cfg(feature = "reqwest")]
            Source::Introspection { url, client_id, client_secret, http } => {
                introspect(http, url, client_id, client_secret, token).await?
            }
        };
        self.check_claims(&claims, now)?;
        Ok(claims)
    }

    /// `iss`, `aud`, `exp` and `nbf` (with the leeway), as RFC 9068 §4 asks.
    fn check_claims(&self, claims: &AccessTokenClaims, now: i64) -> Result<(), Rejection> {
        let leeway = self.leeway_seconds;
        if claims.exp.saturating_add(leeway) <= now {
            return Err(Rejection::Expired);
        }
        if claims.nbf.is_some_and(|nbf| nbf.saturating_sub(leeway) > now) {
            return Err(Rejection::NotYetValid);
        }
        if claims.iss != self.issuer {
            return Err(Rejection::WrongIssuer);
        }
        if !claims.has_audience(&self.audience) {
            return Err(Rejection::WrongAudience);
        }
        if claims.sub.is_empty() {
            return Err(Rejection::NoSubject);
        }
        Ok(())
    }
}

/// Seconds since the Unix epoch; [`VerifyError::Clock`] before it.
fn unix_seconds(now: SystemTime) -> Result<i64, VerifyError> {
    let now = now.duration_since(UNIX_EPOCH).map_err(|_| VerifyError::Clock)?;
    i64::try_from(now.as_secs()).map_err(|_| VerifyError::Clock)
}

/// The shared JWS parse (no `none`, HMAC or `crit`), then RFC 9068's `typ`.
fn parse_access_token(token: &str) -> Result<CompactJws<'_>, VerifyError> {
    let jws = CompactJws::parse(token)?;
    let typ = jws.header().typ.as_deref().unwrap_or("");
    if !typ.eq_ignore_ascii_case("at+jwt") && !typ.eq_ignore_ascii_case("application/at+jwt") {
        return Err(Rejection::NotAnAccessToken.into());
    }
    Ok(jws)
}

fn read_claims(payload: &[u8]) -> Result<AccessTokenClaims, Rejection> {
    serde_json::from_slice(payload).map_err(|_| Rejection::MalformedClaims)
}

#[cfg(feature = "reqwest")]
async fn introspect(
    http: &reqwest::Client,
    url: &str,
    client_id: &str,
    client_secret: &str,
    token: &str,
) -> Result<AccessTokenClaims, VerifyError> {
    use serde_json::Value;
    let response = http
        .post(url)
        .basic_auth(client_id, Some(client_secret))
        .form(&[("token", token), ("token_type_hint", "access_token")])
        .send()
        .await
        .map_err(|e| VerifyError::Unavailable(e.to_string()))?;
    if !response.status().is_success() {
        return Err(VerifyError::Unavailable(format!("introspection answered {}", response.status())));
    }
    let answer: Value = response.json().await.map_err(|e| VerifyError::Unavailable(e.to_string()))?;
    // A DPoP-bound token introspects as `token_type: DPoP` with its `cnf` (RFC 9449 §6.2).
    let access_token = matches!(answer.get("token_type").and_then(Value::as_str), Some("Bearer" | "DPoP"));
    if answer.get("active") != Some(&Value::Bool(true)) || !access_token {
        return Err(Rejection::Inactive.into());
    }
    Ok(serde_json::from_value(answer).map_err(|_| Rejection::MalformedClaims)?)
}
