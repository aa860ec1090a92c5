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

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::error::{ErrorCode, OAuthError};
use crate::store::{AttemptRules, Reservation, Store};

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
/// (This only spares reads for callers whose credentials are already known to be right: every
/// check of a secret takes its slot in the database, so the bound does not depend on it.)
const CLEAN_FOR: Duration = Duration::from_secs(1);
/// Keys remembered per node (clean or blocked); when full, stale entries go (all, if none is stale).
const SEEN_MAX: usize = 100_000;

/// What this node last learnt of a key.
#[derive(Debug, Clone, Copy)]
enum Seen {
    Clean(Instant),
    /// Blocked until this unix time: refused here without asking the database again.
    Blocked(i64),
}

pub struct Throttle {
    rules: ThrottleRules,
    seen: Mutex<HashMap<String, Seen>>,
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
    pub fn new(rules: ThrottleRules) -> Self {
        Self { rules, seen: Mutex::default() }
    }

    fn seen(&self, key: &str) -> Option<Seen> {
        self.seen.lock().ok()?.get(key).copied()
    }

    fn remember(&self, key: &str, seen: Option<Seen>, now: i64) {
        let Ok(mut map) = self.seen.lock() else { return };
        match seen {
            Some(seen) => {
                if map.len() >= SEEN_MAX {
                    map.retain(|_, s| match s {
                        Seen::Clean(at) => at.elapsed() < CLEAN_FOR,
                        Seen::Blocked(until) => *until > now,
                    });
                    if map.len() >= SEEN_MAX {
                        map.clear();
                    }
                }
                map.insert(key.to_owned(), seen);
            }
            None => {
                map.remove(key);
            }
        }
    }

    /// `slow_down` (429) while `key` is blocked. Costs no database read for a key this node saw
    /// clean within the last second or saw blocked.
    pub async fn check<S: Store>(&self, store: &S, key: &str, now: i64) -> Result<(), OAuthError> {
        match self.seen(key) {
            Some(Seen::Clean(at)) if at.elapsed() < CLEAN_FOR => return Ok(()),
            Some(Seen::Blocked(until)) if until > now => return Err(too_many(until - now)),
            _ => {}
        }
        let record = store.auth_failures(key).await?;
        match record {
            Some(r) if r.blocked_until > now => {
                self.remember(key, Some(Seen::Blocked(r.blocked_until)), now);
                tracing::warn!(key = %loggable(key), until = r.blocked_until, "throttled: blocked after repeated failures");
                Err(too_many(r.blocked_until - now))
            }
            Some(r) if r.failures > 0 && r.window_start >= now - self.rules.window => {
                self.remember(key, None, now);
                Ok(())
            }
            _ => {
                self.remember(key, Some(Seen::Clean(Instant::now())), now);
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
        self.remember(key, None, now);
        match store.reserve_attempt(key, now, &self.rules.attempts(threshold)).await? {
            Reservation::Granted { window_start } => {
                slots.taken.push((key.to_owned(), window_start));
                Ok(())
            }
            Reservation::Blocked { until } => {
                self.remember(key, Some(Seen::Blocked(until)), now);
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
        let throttle = Throttle::new(ThrottleRules::default());
        for loopback in ["127.0.0.1", "::1", "::ffff:127.0.0.1"] {
            assert_eq!(throttle.counted_address(Some(loopback.parse().unwrap())), None, "{loopback}");
        }
        assert!(throttle.counted_address(Some("192.0.2.1".parse().unwrap())).is_some());
        let off = Throttle::new(ThrottleRules { address_threshold: 0, ..ThrottleRules::default() });
        assert_eq!(off.counted_address(Some("192.0.2.1".parse().unwrap())), None);
    }
}
