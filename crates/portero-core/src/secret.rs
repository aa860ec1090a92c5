//! Client secrets and user passwords: generation, hashing, constant-time verification.
//!
//! Stored values are PHC-style strings so schemes can coexist:
//! - `$s256$<salt>$<digest>`: SHA-256 of salt‖secret, for secrets Portero generated (256 random
//!   bits: a fast hash is safe, and `client_credentials` is the hot path).
//! - `$argon2id$...`: for secrets an operator chose (e.g. NetPay's existing `trusted-app` secret)
//!   and for every user password. Successful argon2 checks of client secrets are cached in
//!   memory for a few minutes, keyed by the stored hash, so a legitimate client does not pay
//!   ~30 ms per token and a changed secret invalidates its entry at once.
//! - anything else that `legacy_hash` reads back (bcrypt, PBKDF2, scrypt, other argon2 forms,
//!   imported from another provider): checked on the same workers, and on a match the worker
//!   also computes the argon2id hash that replaces it ([`Checked::upgrade`]). A miss against a
//!   legacy hash runs one dummy argon2 check besides, as the match runs the rehash, so every
//!   miss costs at least what a miss on a native hash costs.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use subtle::ConstantTimeEq;

use crate::argon2_pool::{self, Done, Work};
use crate::bounded_map::BoundedMap;
use crate::password_hash::{S256_PREFIX, hash_with_memory, legacy_form, s256, verify_with_memory};
const CACHE_TTL: Duration = Duration::from_secs(300);

/// `n` random bytes from the system CSPRNG, base64url without padding.
pub fn random_token(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    fill_random(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn fill_random(bytes: &mut [u8]) {
    // aws-lc's RNG only fails if the OS has no entropy source at all; nothing sensible can go on then.
    aws_lc_rs::rand::fill(bytes).expect("the system random generator failed"); // ok: unrecoverable
}

/// SHA-256 of a value, base64url: how refresh tokens are stored and looked up.
pub fn sha256_b64(value: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, value))
}

/// A new client secret: 32 random bytes, base64url (43 characters).
pub fn generate_client_secret() -> String {
    random_token(32)
}

/// The stored form of a secret Portero generated itself (high entropy: fast hash).
pub fn hash_generated_secret(secret: &str) -> String {
    let mut salt = [0u8; 16];
    fill_random(&mut salt);
    format!("{S256_PREFIX}{}${}", URL_SAFE_NO_PAD.encode(salt), s256(&salt, secret))
}

/// argon2id hash of a low-entropy secret (a user password or an operator-chosen client secret),
/// computed on the argon2 workers; blocks the calling thread until it is done.
pub fn hash_password(password: &str) -> String {
    match argon2_pool::run_blocking(Work::Hash { password: password.to_owned() }) {
        Some(Done::Hashed(hash)) => hash,
        // The workers are gone (they never exit while the process runs): hash here instead.
        _ => hash_with_memory(password, &mut Vec::new()),
    }
}

/// [`hash_password`] for async callers: waits on a blocking thread, not on an async one.
pub async fn hash_password_async(password: &str) -> String {
    let owned = password.to_owned();
    match tokio::task::spawn_blocking(move || hash_password(&owned)).await {
        Ok(hash) => hash,
        // No blocking thread (the runtime is stopping): hash here rather than store a hash of
        // something else, which would leave the chosen secret silently unusable.
        Err(_) => hash_with_memory(password, &mut Vec::new()),
    }
}

/// Checks a secret against a stored hash of either native scheme (`$s256$`, argon2id), in
/// constant time for the digest; any other form does not match. argon2 runs on the argon2
/// workers; this blocks the calling thread until they answer.
pub fn verify_blocking(presented: &str, stored: &str) -> bool {
    if stored.starts_with(S256_PREFIX) {
        return verify_with_memory(presented, stored, &mut Vec::new());
    }
    if legacy_form(stored).is_some() {
        return false;
    }
    let work = Work::Check { presented: presented.to_owned(), stored: stored.to_owned() };
    matches!(argon2_pool::run_blocking(work), Some(Done::Checked(true, _)))
}

/// A hash nobody's password matches, verified for unknown users so that "no such user" and
/// "wrong password" cost the same time.
fn dummy_password_hash() -> &'static str {
    argon2_pool::dummy_hash()
}

/// The answer of a secret or password check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Match,
    NoMatch,
    /// The check could not be made: every worker is busy and the queue is full. Not a failed
    /// login; the caller answers 503 and counts nothing.
    Unavailable,
}

/// The answer of a check, and on a match against a legacy hash, the argon2id hash to store in
/// its place (the caller writes it conditionally: see `store::MigrationStore`).
#[derive(Clone, PartialEq, Eq)]
pub struct Checked {
    pub verdict: Verdict,
    pub upgrade: Option<String>,
}

impl Checked {
    fn plain(verdict: Verdict) -> Self {
        Self { verdict, upgrade: None }
    }
}

impl std::fmt::Debug for Checked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let upgrade = self.upgrade.as_ref().map(|_| "[redacted]");
        f.debug_struct("Checked").field("verdict", &self.verdict).field("upgrade", &upgrade).finish()
    }
}

/// Secret and password checks for the token endpoint: slow ones on the argon2 workers
/// (`argon2_pool`), successful client-secret checks remembered for a few minutes.
#[derive(Clone)]
pub struct Verifier {
    client_cache: Arc<Mutex<BoundedMap<String, CachedSecret>>>,
    /// Identical client authentications in flight at once, checked once (see `client_auth`).
    pub(crate) client_checks: Arc<crate::single_flight::SingleFlight<Result<Verdict, crate::OAuthError>>>,
    /// Identical password-grant attempts in flight (same client, username and password) share
    /// one check and one throttle slot: a burst of correct logins is not mistaken for guessing.
    pub(crate) password_checks:
        Arc<crate::single_flight::SingleFlight<Result<Option<crate::store::User>, crate::OAuthError>>>,
}

struct CachedSecret {
    stored_hash: String,
    presented_digest: [u8; 32],
    verified_at: Instant,
}

impl Verifier {
    /// `cache_capacity`: how many clients' verified secrets are remembered (as many as the
    /// client cache holds, so a cached client is never cold on its secret alone).
    pub fn new(cache_capacity: usize) -> Self {
        // Start the workers and make the dummy hash now, so the first unknown-user login is not
        // faster than the rest.
        let _ = dummy_password_hash();
        Self {
            client_cache: Arc::new(Mutex::new(BoundedMap::new(cache_capacity))),
            client_checks: Arc::default(),
            password_checks: Arc::default(),
        }
    }

    /// Verifies a user's password; `None` means "no such user" and costs the same as a miss.
    /// A match against a legacy hash comes with its argon2id replacement.
    pub async fn verify_password(&self, presented: &str, stored: Option<&str>) -> Checked {
        let (stored, known) = match stored {
            Some(hash) => (hash, true),
            None => (dummy_password_hash(), false),
        };
        match self.run_argon2(presented.to_owned(), stored.to_owned()).await {
            Checked { verdict: Verdict::Match, .. } if !known => Checked::plain(Verdict::NoMatch),
            checked => checked,
        }
    }

    /// The cost of a failed slow check, for a miss that needed none (an unknown client, a wrong
    /// generated secret): every kind of failure then takes the same time.
    pub async fn slow_miss(&self, presented: &str) -> Verdict {
        match self.run_argon2(presented.to_owned(), dummy_password_hash().to_owned()).await.verdict {
            Verdict::Unavailable => Verdict::Unavailable,
            _ => Verdict::NoMatch,
        }
    }

    /// Whether `presented` is known to match `stored` without a slow check, so without a
    /// throttle slot: a generated (`$s256$`) secret that matches its hash, or a secret verified
    /// against this exact hash within the last few minutes. Both answer only a right secret
    /// early; a wrong or unknown one still takes its slot and its argon2 check, and a blocked
    /// client is refused before this is asked. (Salted SHA-256 of a 256-bit random secret costs
    /// what the cache lookup costs, and keeps no entry: a million clients need no million entries.)
    pub fn known_client_secret(&self, client_id: &str, presented: &str, stored: &str) -> bool {
        if stored.starts_with(S256_PREFIX) {
            return verify_blocking(presented, stored);
        }
        self.cached(client_id, stored, &digest_of(presented))
    }

    /// Checks a client secret against one stored hash of any scheme, remembering a match (under
    /// the replacing hash when a legacy one matched). Returns the answer and whether the check
    /// was a slow one (argon2, or a legacy scheme).
    pub async fn check_client_secret(&self, client_id: &str, presented: &str, stored: &str) -> (Checked, bool) {
        let slow = !stored.starts_with(S256_PREFIX);
        let checked = if slow {
            self.run_argon2(presented.to_owned(), stored.to_owned()).await
        } else if verify_blocking(presented, stored) {
            Checked::plain(Verdict::Match)
        } else {
            Checked::plain(Verdict::NoMatch)
        };
        if checked.verdict == Verdict::Match {
            self.remember(client_id, checked.upgrade.as_deref().unwrap_or(stored), digest_of(presented));
        }
        (checked, slow)
    }

    fn cached(&self, client_id: &str, stored: &str, presented_digest: &[u8; 32]) -> bool {
        let Ok(cache) = self.client_cache.lock() else {
            return false;
        };
        cache.get(client_id).is_some_and(|entry| {
            entry.stored_hash == stored
                && entry.verified_at.elapsed() < CACHE_TTL
                && bool::from(entry.presented_digest.ct_eq(presented_digest))
        })
    }

    fn remember(&self, client_id: &str, stored: &str, presented_digest: [u8; 32]) {
        let Ok(mut cache) = self.client_cache.lock() else {
            return;
        };
        let entry = CachedSecret { stored_hash: stored.to_owned(), presented_digest, verified_at: Instant::now() };
        cache.insert(client_id.to_owned(), entry);
    }

    /// Queues a check for the workers; `Unavailable` if they are gone or the queue is full.
    async fn run_argon2(&self, presented: String, stored: String) -> Checked {
        match argon2_pool::run(Work::Check { presented, stored }).await {
            Some(Done::Checked(true, upgrade)) => Checked { verdict: Verdict::Match, upgrade },
            Some(_) => Checked::plain(Verdict::NoMatch),
            None => {
                tracing::warn!("password verification queue full: refusing");
                Checked::plain(Verdict::Unavailable)
            }
        }
    }
}

fn digest_of(value: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, value.as_bytes()).as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secret_round_trip() {
        let secret = generate_client_secret();
        assert_eq!(secret.len(), 43);
        let stored = hash_generated_secret(&secret);
        assert!(!stored.contains(&secret));
        assert!(verify_blocking(&secret, &stored));
        assert!(!verify_blocking("wrong", &stored));
    }

    #[test]
    fn argon2_round_trip() {
        let stored = hash_password("123456");
        assert!(stored.starts_with("$argon2id$"));
        assert!(verify_blocking("123456", &stored));
        assert!(!verify_blocking("1234567", &stored));
        assert!(!verify_blocking("x", "garbage"));
    }

    #[tokio::test]
    async fn unknown_user_never_matches() {
        let verifier = Verifier::new(16);
        assert_eq!(verifier.verify_password("anything", None).await.verdict, Verdict::NoMatch);
    }

    #[tokio::test]
    async fn cache_is_keyed_by_stored_hash_and_secret() {
        let verifier = Verifier::new(16);
        let stored = hash_password("s3cret");
        assert!(!verifier.known_client_secret("c", "s3cret", &stored));
        assert_eq!(verifier.check_client_secret("c", "s3cret", &stored).await, (Checked::plain(Verdict::Match), true));
        assert!(verifier.known_client_secret("c", "s3cret", &stored));
        assert!(!verifier.known_client_secret("c", "other", &stored));
        assert_eq!(verifier.check_client_secret("c", "other", &stored).await, (Checked::plain(Verdict::NoMatch), true));
        let rotated = hash_password("new");
        assert!(!verifier.known_client_secret("c", "s3cret", &rotated));
        let generated = hash_generated_secret("g");
        assert_eq!(verifier.check_client_secret("d", "g", &generated).await, (Checked::plain(Verdict::Match), false));
        assert!(verifier.known_client_secret("d", "g", &generated));
    }

    /// PBKDF2-SHA256 of "s3cret", 1000 iterations, salt "saltsalt" (Python's hashlib), stored
    /// in the PHC form `legacy_hash` writes.
    const LEGACY: &str = "$pbkdf2-sha256$i=1000,l=32$c2FsdHNhbHQ$1RWAS5YYkIY9nckTZesthMF5e49TOFXt8bOwrxWRD7s";

    #[tokio::test]
    async fn a_legacy_match_comes_with_its_argon2id_replacement() {
        let verifier = Verifier::new(16);
        let checked = verifier.verify_password("s3cret", Some(LEGACY)).await;
        assert_eq!(checked.verdict, Verdict::Match);
        let upgrade = checked.upgrade.clone().expect("a legacy match is rehashed");
        assert!(upgrade.starts_with("$argon2id$v=19$") && verify_blocking("s3cret", &upgrade));
        assert!(!format!("{checked:?}").contains("argon2id"), "Debug hides the new hash");
        assert_eq!(verifier.verify_password("wrong", Some(LEGACY)).await, Checked::plain(Verdict::NoMatch));
        let (client, slow) = verifier.check_client_secret("c", "s3cret", LEGACY).await;
        assert!(slow && client.verdict == Verdict::Match);
        let upgrade = client.upgrade.expect("rehashed");
        assert!(verifier.known_client_secret("c", "s3cret", &upgrade), "remembered under the new hash");
        // A native hash is never "upgraded".
        let native = hash_password("n");
        assert_eq!(verifier.verify_password("n", Some(&native)).await, Checked::plain(Verdict::Match));
    }
}
