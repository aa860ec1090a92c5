//! Brute-force defence, counted in the database so that it holds across nodes.
//!
//! Every check of a secret or password that is not already known to be right first takes an
//! attempt slot for its key (a client id, a client's username, a source address) in one atomic
//! statement (`Store::reserve_attempt`); a success gives the slot back. So a key never has more
//! than `threshold` failed or unfinished checks in a window, however many requests arrive at
//! once: the slot is taken before the slow hash runs, not counted after it. When the slots run
//! out the key is blocked for `base_block` seconds, doubling with each further block, at most
//! `max_block`; after a block one more attempt is allowed, so the owner is slowed, never locked
//! out for good. Addresses (IPv6 by /64) have a higher threshold: one address guessing many
//! client ids or usernames is slowed down as a whole.

use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::bounded_map::BoundedMap;
use crate::error::{ErrorCode, OAuthError};
use crate::store::{AttemptRules, Change, Reservation, Store};

#[derive(Debug, Clone, Copy)]
pub struct ThrottleRules {
    pub threshold: i64,
    pub window: i64,
    pub base_block: i64,
    pub max_block: i64,
    /// Failures from one source address before it is blocked; 0 turns the address rule off.
    pub address_threshold: i64,
}

impl Default for ThrottleRules {
    fn default() -> Self {
        Self { threshold: 10, window: 900, base_block: 30, max_block: 900, address_threshold: 50 }
    }
}

impl ThrottleRules {
    fn attempts(&self, threshold: i64) -> AttemptRules {
        AttemptRules { threshold, window: self.window, base_block: self.base_block, max_block: self.max_block }
    }
}

/// Keys with no failures are remembered for a second, so a busy, well-behaved client does not
/// cost a database read per request; a block set by another node is seen within that second.
/// While the node follows a change feed, on which every block is announced
/// ([`Change::Blocked`]), it reads the keys failing at that moment once
/// ([`Throttle::learn_failing_keys`]); from then on every other key is clean unless this node
/// sees it fail or the feed announces its block, so a million clients cost no read per request.
/// (This only spares reads for callers whose credentials are already known to be right: every
/// check of a secret takes its slot in the database, so the bound does not depend on it. The
/// failures another node counts without a block yet are not learnt here: a right secret is
/// then accepted here as before that node's failures, and the attempt that spends the last slot
/// blocks the key everywhere.)
const CLEAN_FOR: Duration = Duration::from_secs(1);
/// Keys remembered per node (clean or blocked) at least; the server sizes it to its client
/// cache. When full, the oldest entry goes (it is read again when next needed).
pub const MIN_SEEN: usize = 100_000;

/// What this node last learnt of a key.
#[derive(Debug, Clone, Copy)]
enum Seen {
    Clean(Instant),
    /// Had failures (or a check in flight) when last seen: read again before it counts as clean.
    Failing,
    /// Blocked until this unix time: refused here without asking the database again.
    Blocked(i64),
}

/// How far this node can trust what it knows of the keys.
#[derive(Debug, Clone, Copy)]
struct Feed {
    /// Since when the node has followed a change feed without missing a change: keys seen
    /// clean since then stay clean.
    since: Instant,
    /// The keys failing when the feed started are in `seen` (none was evicted since): a key
    /// not in it is clean.
    knows_every_failing_key: bool,
}

pub struct Throttle {
    rules: ThrottleRules,
    capacity: usize,
    seen: Mutex<BoundedMap<String, Seen>>,
    /// `None` without a change feed.
    feed: Mutex<Option<Feed>>,
}

/// The attempt slots one check holds (see the module docs). Keep them when the check failed;
/// give them back with [`Throttle::release`] when it succeeded or could not be made.
#[must_use = "slots of a successful attempt must be released"]
#[derive(Debug, Default)]
pub struct Slots {
    taken: Vec<(String, i64)>,
}

pub fn client_key(client_id: &str) -> String {
    format!("client:{client_id}")
}

pub fn user_key(client_id: &str, username: &str) -> String {
    format!("user:{client_id}:{username}")
}

/// A key as it may appear in a log line: usernames are replaced by a short digest (it still
/// tells one user's failures from another's, without writing the name down).
pub fn loggable(key: &str) -> String {
    match key.strip_prefix("user:").and_then(|rest| rest.split_once(':')) {
        Some((client, username)) => {
            let digest = crate::secret::sha256_b64(username.as_bytes());
            format!("user:{client}:#{}", &digest[..10])
        }
        None => key.to_owned(),
    }
}

/// The throttling key of a source address: IPv4 as is, IPv6 by its /64 (one host's usual share).
pub fn address_key(address: IpAddr) -> String {
    match address {
        IpAddr::V4(v4) => format!("addr:{v4}"),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => format!("addr:{v4}"),
            None => {
                let s = v6.segments();
                format!("addr:{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

fn too_many(retry_after: i64) -> OAuthError {
    let mut error = OAuthError::new(ErrorCode::SlowDown, "too many failed attempts; try again later");
    error.retry_after = Some(retry_after.max(1) as u64);
    error
}

impl Throttle {
    /// A throttle remembering at most `keys` keys (at least [`MIN_SEEN`]).
    pub fn new(rules: ThrottleRules, keys: usize) -> Self {
        let capacity = keys.max(MIN_SEEN);
        Self { rules, capacity, seen: Mutex::new(BoundedMap::new(capacity)), feed: Mutex::new(None) }
    }

    /// The node follows a change feed from now on (again, after it may have missed changes):
    /// clean keys seen before now are read again once; those seen from now on stay clean. Then
    /// call [`Self::learn_failing_keys`].
    pub fn feed_followed_from_now(&self) {
        if let Ok(mut feed) = self.feed.lock() {
            *feed = Some(Feed { since: Instant::now(), knows_every_failing_key: false });
        }
    }

    /// Reads the keys failing now, once the feed runs (blocks from now on arrive on it); if they
    /// all fit, every key not among them counts as clean without a read.
    pub async fn learn_failing_keys<S: Store>(&self, store: &S, now: i64) -> Result<usize, OAuthError> {
        let Some(since) = self.feed.lock().ok().and_then(|feed| *feed).map(|feed| feed.since) else { return Ok(0) };
        let limit = u32::try_from(self.capacity / 2).unwrap_or(u32::MAX);
        let failing = store.failing_keys(now - self.rules.window, now, limit).await?;
        for (key, record) in &failing {
            let seen = if record.blocked_until > now { Seen::Blocked(record.blocked_until) } else { Seen::Failing };
            self.remember(key, seen);
        }
        if let Ok(mut feed) = self.feed.lock()
            && let Some(feed) = feed.as_mut().filter(|feed| feed.since == since)
        {
            feed.knows_every_failing_key = failing.len() < limit as usize;
        }
        Ok(failing.len())
    }

    /// The feed no longer runs: clean keys are read again after a second, as without one.
    pub fn feed_stopped(&self) {
        if let Ok(mut feed) = self.feed.lock() {
            *feed = None;
        }
    }

    fn feed(&self) -> Option<Feed> {
        self.feed.lock().ok().and_then(|feed| *feed)
    }

    fn unseen_is_clean(&self) -> bool {
        self.feed().is_some_and(|feed| feed.knows_every_failing_key)
    }

    /// Another node (or this one) announced that `key` is blocked until `until`.
    pub fn blocked_elsewhere(&self, key: &str, until: i64) {
        self.remember(key, Seen::Blocked(until));
    }

    /// Whether `key` is known to have no recent failures, as [`Self::check`] last found it: only
    /// then may a right secret be accepted without taking a slot. A key with failures takes one
    /// for every check, so the attempt that finds the slots spent blocks it, the right secret too.
    pub fn is_clean(&self, key: &str) -> bool {
        match self.seen(key) {
            Some(Seen::Clean(at)) => self.still_clean(at),
            Some(_) => false,
            None => self.unseen_is_clean(),
        }
    }

    fn seen(&self, key: &str) -> Option<Seen> {
        self.seen.lock().ok()?.get(key).copied()
    }

    /// Whether a key seen clean at `at` may still be taken as clean without a read.
    fn still_clean(&self, at: Instant) -> bool {
        at.elapsed() < CLEAN_FOR || self.feed().is_some_and(|feed| at >= feed.since)
    }

    fn remember(&self, key: &str, seen: Seen) {
        let Ok(mut map) = self.seen.lock() else { return };
        if map.len() >= self.capacity && map.get(key).is_none() {
            // An eviction may drop a failing key: a key not in the map is no longer known clean.
            if let Ok(mut feed) = self.feed.lock()
                && let Some(feed) = feed.as_mut()
            {
                feed.knows_every_failing_key = false;
            }
        }
        map.insert(key.to_owned(), seen);
    }

    /// `slow_down` (429) while `key` is blocked. Costs no database read for a key this node saw
    /// blocked, or clean (see [`CLEAN_FOR`]).
    pub async fn check<S: Store>(&self, store: &S, key: &str, now: i64) -> Result<(), OAuthError> {
        match self.seen(key) {
            Some(Seen::Clean(at)) if self.still_clean(at) => return Ok(()),
            Some(Seen::Blocked(until)) if until > now => return Err(too_many(until - now)),
            None if self.unseen_is_clean() => return Ok(()),
            _ => {}
        }
        let record = store.auth_failures(key).await?;
        match record {
            Some(r) if r.blocked_until > now => {
                self.remember(key, Seen::Blocked(r.blocked_until));
                tracing::warn!(key = %loggable(key), until = r.blocked_until, "throttled: blocked after repeated failures");
                Err(too_many(r.blocked_until - now))
            }
            Some(r) if r.failures > 0 && r.window_start >= now - self.rules.window => {
                self.remember(key, Seen::Failing);
                Ok(())
            }
            _ => {
                self.remember(key, Seen::Clean(Instant::now()));
                Ok(())
            }
        }
    }

    /// The address failures are counted against: none when the rule is off, the address is
    /// unknown, or it is loopback (a local proxy or tool, not an address that says who is calling:
    /// counting it would make every caller behind a local proxy one address).
    fn counted_address(&self, source: Option<IpAddr>) -> Option<IpAddr> {
        let loopback = |ip: &IpAddr| ip.is_loopback() || ip.to_canonical().is_loopback();
        source.filter(|ip| self.rules.address_threshold > 0 && !loopback(ip))
    }

    /// `slow_down` while the caller's address is blocked.
    pub async fn check_address<S: Store>(&self, store: &S, source: Option<IpAddr>, now: i64) -> Result<(), OAuthError> {
        match self.counted_address(source) {
            Some(address) => self.check(store, &address_key(address), now).await,
            None => Ok(()),
        }
    }

    /// Takes the slots one check of a secret for `key` needs, from `key` and from the caller's
    /// address, before the check runs; `slow_down` when either has none left.
    pub async fn reserve<S: Store>(
        &self,
        store: &S,
        key: &str,
        source: Option<IpAddr>,
        now: i64,
    ) -> Result<Slots, OAuthError> {
        let mut slots = Slots::default();
        self.take(store, key, self.rules.threshold, now, &mut slots).await?;
        if let Some(address) = self.counted_address(source) {
            let taken = self.take(store, &address_key(address), self.rules.address_threshold, now, &mut slots).await;
            if let Err(error) = taken {
                self.release(store, slots).await;
                return Err(error);
            }
        }
        Ok(slots)
    }

    async fn take<S: Store>(
        &self,
        store: &S,
        key: &str,
        threshold: i64,
        now: i64,
        slots: &mut Slots,
    ) -> Result<(), OAuthError> {
        self.remember(key, Seen::Failing);
        match store.reserve_attempt(key, now, &self.rules.attempts(threshold)).await? {
            Reservation::Granted { window_start } => {
                slots.taken.push((key.to_owned(), window_start));
                Ok(())
            }
            Reservation::Blocked { until } => {
                self.remember(key, Seen::Blocked(until));
                // Once per block and node: this node refuses the key in `check` from now on.
                store.announce(&Change::Blocked { key: key.to_owned(), until }).await;
                tracing::warn!(key = %loggable(key), until, "throttled: no attempts left");
                Err(too_many(until - now))
            }
        }
    }

    /// Takes an address slot only (a check with no per-key count, such as the admin token).
    pub async fn reserve_address<S: Store>(
        &self,
        store: &S,
        source: Option<IpAddr>,
        now: i64,
    ) -> Result<Slots, OAuthError> {
        let mut slots = Slots::default();
        if let Some(address) = self.counted_address(source) {
            self.take(store, &address_key(address), self.rules.address_threshold, now, &mut slots).await?;
        }
        Ok(slots)
    }

    /// Gives slots back: their attempt succeeded, or never reached the check. A database error
    /// leaves the slot counted (the safe side) and is only logged.
    pub async fn release<S: Store>(&self, store: &S, slots: Slots) {
        for (key, window_start) in slots.taken {
            if let Err(error) = store.release_attempt(&key, window_start).await {
                tracing::warn!(key = %loggable(&key), %error, "could not give an attempt slot back");
            }
        }
    }

    /// Keeps slots as failures (their check failed), noting it in the log.
    pub fn failed(&self, slots: Slots) {
        for (key, _) in slots.taken {
            tracing::warn!(key = %loggable(&key), "authentication failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_keyed_by_host_or_64_prefix_and_loopback_is_not_counted() {
        assert_eq!(address_key("203.0.113.9".parse().unwrap()), "addr:203.0.113.9");
        assert_eq!(address_key("2001:db8:1:2:aaaa::1".parse().unwrap()), "addr:2001:db8:1:2::/64");
        assert_eq!(address_key("2001:db8:1:2:bbbb::7".parse().unwrap()), "addr:2001:db8:1:2::/64");
        assert_eq!(address_key("::ffff:203.0.113.9".parse().unwrap()), "addr:203.0.113.9");
        let throttle = Throttle::new(ThrottleRules::default(), 0);
        for loopback in ["127.0.0.1", "::1", "::ffff:127.0.0.1"] {
            assert_eq!(throttle.counted_address(Some(loopback.parse().unwrap())), None, "{loopback}");
        }
        assert!(throttle.counted_address(Some("192.0.2.1".parse().unwrap())).is_some());
        let off = Throttle::new(ThrottleRules { address_threshold: 0, ..ThrottleRules::default() }, 0);
        assert_eq!(off.counted_address(Some("192.0.2.1".parse().unwrap())), None);
    }

    /// Following a feed, the node reads the failing keys once; every other key is then clean
    /// without a read, blocks arrive as announcements, and losing the feed ends the trust.
    #[tokio::test]
    async fn a_followed_feed_knows_the_failing_keys_and_takes_the_rest_as_clean() {
        use crate::store::ThrottleStore;
        use crate::store::memory::MemoryStore;
        let store = MemoryStore::default();
        let rules = ThrottleRules::default();
        let now = 1_000_000;
        let attempts = rules.attempts(rules.threshold);
        let _ = store.reserve_attempt("client:failing", now, &attempts).await.unwrap();
        for _ in 0..=rules.threshold {
            let _ = store.reserve_attempt("client:blocked", now, &attempts).await.unwrap();
        }
        let throttle = Throttle::new(rules, 0);
        assert!(!throttle.is_clean("client:any"), "no feed: unseen keys are read");
        throttle.feed_followed_from_now();
        assert!(!throttle.is_clean("client:any"), "feed, failing keys not read yet");
        assert_eq!(throttle.learn_failing_keys(&store, now).await.unwrap(), 2);
        assert!(throttle.is_clean("client:any"));
        assert!(!throttle.is_clean("client:failing"));
        assert!(throttle.check(&store, "client:blocked", now).await.is_err());
        assert!(throttle.check(&store, "client:failing", now).await.is_ok(), "failing is not blocked");

        throttle.blocked_elsewhere("client:any", now + 30);
        assert!(!throttle.is_clean("client:any"));
        assert!(throttle.check(&store, "client:any", now).await.is_err(), "a block announced by another node");

        throttle.feed_stopped();
        assert!(!throttle.is_clean("client:other"), "without the feed unseen keys are read again");
    }
}
