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

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use argon2::{Algorithm, Argon2, Block, Params, PasswordHasher, Version};
use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use subtle::ConstantTimeEq;
use tokio::sync::oneshot;

const S256_PREFIX: &str = "$s256$";
const CACHE_TTL: Duration = Duration::from_secs(300);
const CACHE_MAX_ENTRIES: usize = 10_000;

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

fn s256(salt: &[u8], secret: &str) -> String {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(salt);
    ctx.update(secret.as_bytes());
    URL_SAFE_NO_PAD.encode(ctx.finish())
}

fn argon2() -> Argon2<'static> {
    // OWASP's minimum for argon2id: 19 MiB, 2 passes, 1 lane (~30 ms here).
    let params = Params::new(19 * 1024, 2, 1, None).expect("constant argon2 parameters are valid"); // ok: constants
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// argon2id hash of a low-entropy secret (a user password or an operator-chosen client secret).
pub fn hash_password(password: &str) -> String {
    let mut salt = [0u8; 16];
    fill_random(&mut salt);
    argon2()
        .hash_password_with_salt(password.as_bytes(), &salt)
        .expect("argon2 hashing with valid parameters cannot fail") // ok: fixed params, 16-byte salt
        .to_string()
}

/// Checks a secret against a stored hash of either scheme, in constant time for the digest.
/// Slow (argon2) for `$argon2id$` hashes: call it off the async threads.
pub fn verify_blocking(presented: &str, stored: &str) -> bool {
    verify_with_memory(presented, stored, &mut Vec::new())
}

/// As [`verify_blocking`], computing argon2 in `memory`, which is grown as needed and kept by the
/// caller: a worker that reuses it allocates 19 MiB once instead of on every login.
fn verify_with_memory(presented: &str, stored: &str, memory: &mut Vec<Block>) -> bool {
    if let Some(rest) = stored.strip_prefix(S256_PREFIX) {
        let Some((salt, expected)) = rest.split_once('$') else { return false };
        let Ok(salt) = URL_SAFE_NO_PAD.decode(salt) else { return false };
        let actual = s256(&salt, presented);
        return actual.as_bytes().ct_eq(expected.as_bytes()).into();
    }
    let Some(phc) = Argon2idHash::parse(stored) else { return false };
    let Ok(params) = Params::new(phc.m_cost, phc.t_cost, phc.p_cost, Some(phc.hash.len())) else { return false };
    let blocks = params.block_count();
    if memory.len() < blocks {
        memory.resize(blocks, Block::default());
    }
    let mut actual = vec![0u8; phc.hash.len()];
    let hasher = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    if hasher
        .hash_password_into_with_memory(presented.as_bytes(), &phc.salt, &mut actual, &mut memory[..blocks])
        .is_err()
    {
        return false;
    }
    actual.ct_eq(&phc.hash).into()
}

/// `$argon2id$v=19$m=M,t=T,p=P$<salt>$<hash>` (PHC string format, base64 without padding).
struct Argon2idHash {
    m_cost: u32,
    t_cost: u32,
    p_cost: u32,
    salt: Vec<u8>,
    hash: Vec<u8>,
}

impl Argon2idHash {
    fn parse(stored: &str) -> Option<Self> {
        let mut parts = stored.strip_prefix("$argon2id$v=19$")?.split('$');
        let (params, salt, hash) = (parts.next()?, parts.next()?, parts.next()?);
        let (mut m_cost, mut t_cost, mut p_cost) = (None, None, None);
        for param in params.split(',') {
            let (name, value) = param.split_once('=')?;
            let value: u32 = value.parse().ok()?;
            match name {
                "m" => m_cost = Some(value),
                "t" => t_cost = Some(value),
                "p" => p_cost = Some(value),
                _ => return None,
            }
        }
        // Stored hashes are ours, but a tampered row must not make a worker allocate gigabytes.
        let m_cost = m_cost.filter(|m| *m <= 256 * 1024)?;
        Some(Self {
            m_cost,
            t_cost: t_cost?,
            p_cost: p_cost?,
            salt: STANDARD_NO_PAD.decode(salt).ok()?,
            hash: STANDARD_NO_PAD.decode(hash).ok()?,
        })
    }
}

/// A hash nobody's password matches, verified for unknown users so that "no such user" and
/// "wrong password" cost the same time.
fn dummy_password_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash_password(&random_token(24)))
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

/// What a worker answers: whether the secret matched, and a replacement for a legacy hash.
type WorkerAnswer = (bool, Option<String>);

/// One slow check for a worker: the presented secret, the stored hash, where to answer.
struct Job {
    presented: String,
    stored: String,
    answer: oneshot::Sender<WorkerAnswer>,
}

/// A stored hash that is not Portero's own (`$s256$`, native argon2id) but one `legacy_hash`
/// reads back. The prefix test comes first, so native hashes are not parsed twice.
fn legacy_form(stored: &str) -> Option<crate::legacy_hash::LegacyHash> {
    if stored.starts_with(S256_PREFIX) || stored.starts_with("$argon2id$v=19$") {
        return None;
    }
    crate::legacy_hash::LegacyHash::parse_stored(stored).ok().filter(|hash| !hash.is_portero_native())
}

/// A worker's check: native hashes as before; a legacy hash with its own scheme, then one
/// argon2 computation either way (the replacing hash on a match, a dummy check on a miss).
fn check_with_memory(presented: &str, stored: &str, memory: &mut Vec<Block>) -> WorkerAnswer {
    let Some(legacy) = legacy_form(stored) else {
        return (verify_with_memory(presented, stored, memory), None);
    };
    if legacy.verify(presented) {
        (true, Some(hash_password(presented)))
    } else {
        let _ = verify_with_memory(presented, dummy_password_hash(), memory);
        (false, None)
    }
}

/// Checks waiting per worker: 64 at ~25 ms a check is about 1.6 s of queue, well within the
/// request deadline (5 s). A longer queue would only hold requests that miss their deadline
/// anyway; past it, a check is refused at once (503, Retry-After) and counts as no failure.
const QUEUE_PER_WORKER: usize = 64;

/// Runs argon2 checks on a fixed set of worker threads, one per core, each reusing its own
/// memory: a burst of password logins cannot starve the async threads, and memory stays at
/// workers × 19 MiB however many logins arrive.
#[derive(Clone)]
pub struct Verifier {
    jobs: std::sync::mpsc::SyncSender<Job>,
    client_cache: Arc<Mutex<HashMap<String, CachedSecret>>>,
    /// Identical client authentications in flight at once, checked once (see `client_auth`).
    pub(crate) client_checks: Arc<crate::single_flight::SingleFlight<Result<Verdict, crate::OAuthError>>>,
    /// Identical password-grant attempts in flight (same client, username and password) share
    /// one check and one throttle slot: a burst of correct logins is not mistaken for guessing.
    pub(crate) password_checks:
        Arc<crate::single_flight::SingleFlight<Result<Option<crate::store::User>, crate::OAuthError>>>,
}

fn spawn_workers(count: usize) -> std::sync::mpsc::SyncSender<Job> {
    let (sender, receiver) = std::sync::mpsc::sync_channel::<Job>(QUEUE_PER_WORKER * count);
    let receiver = Arc::new(Mutex::new(receiver));
    for index in 0..count {
        let receiver = receiver.clone();
        let spawned = std::thread::Builder::new().name(format!("argon2-{index}")).spawn(move || {
            let mut memory = Vec::new();
            loop {
                let job = match receiver.lock() {
                    Ok(queue) => queue.recv(),
                    Err(_) => return,
                };
                let Ok(job) = job else { return };
                // A request that gave up (deadline) no longer waits: skip its work.
                if job.answer.is_closed() {
                    continue;
                }
                let _ = job.answer.send(check_with_memory(&job.presented, &job.stored, &mut memory));
            }
        });
        if let Err(error) = spawned {
            tracing::error!(%error, "could not start an argon2 worker");
        }
    }
    sender
}

struct CachedSecret {
    stored_hash: String,
    presented_digest: [u8; 32],
    verified_at: Instant,
}

impl Verifier {
    pub fn new(parallelism: usize) -> Self {
        // Warm the dummy hash now so the first unknown-user login is not faster than the rest.
        let _ = dummy_password_hash();
        Self {
            jobs: spawn_workers(parallelism.max(1)),
            client_cache: Arc::default(),
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

    /// Whether this exact secret was verified against this exact stored hash within the last
    /// few minutes (no check needed, no throttle slot taken).
    pub fn known_client_secret(&self, client_id: &str, presented: &str, stored: &str) -> bool {
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
        if cache.len() >= CACHE_MAX_ENTRIES {
            cache.retain(|_, entry| entry.verified_at.elapsed() < CACHE_TTL);
            if cache.len() >= CACHE_MAX_ENTRIES {
                cache.clear();
            }
        }
        let entry = CachedSecret { stored_hash: stored.to_owned(), presented_digest, verified_at: Instant::now() };
        cache.insert(client_id.to_owned(), entry);
    }

    /// Queues a check for the workers; `Unavailable` if they are gone or the queue is full.
    async fn run_argon2(&self, presented: String, stored: String) -> Checked {
        let (answer, answered) = oneshot::channel();
        if self.jobs.try_send(Job { presented, stored, answer }).is_err() {
            tracing::warn!("password verification queue full: refusing");
            return Checked::plain(Verdict::Unavailable);
        }
        match answered.await {
            Ok((true, upgrade)) => Checked { verdict: Verdict::Match, upgrade },
            Ok((false, _)) => Checked::plain(Verdict::NoMatch),
            Err(_) => Checked::plain(Verdict::Unavailable),
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
        let verifier = Verifier::new(1);
        assert_eq!(verifier.verify_password("anything", None).await.verdict, Verdict::NoMatch);
    }

    #[tokio::test]
    async fn cache_is_keyed_by_stored_hash_and_secret() {
        let verifier = Verifier::new(1);
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
        let verifier = Verifier::new(1);
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
