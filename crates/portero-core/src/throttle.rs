//! Brute-force defence: failed client authentications (per client id) and failed passwords (per
//! client and username) are counted in the database, so the count holds across nodes. After
//! `threshold` failures within `window` seconds the key is blocked, for `base_block` seconds
//! doubling with each further failure, at most `max_block`: the owner is slowed, never locked
//! out for good, and a success clears the count.
//!
//! Failures are also counted per source address (IPv6 by /64), with a higher threshold and no
//! reset on success: one address guessing many client ids or usernames is slowed down as a whole.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::error::{ErrorCode, OAuthError};
use crate::store::Store;

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

/// Keys with no failures are remembered for a second, so a busy, well-behaved client does not
/// cost a database read per request; a block set by another node is seen within that second.
const CLEAN_FOR: Duration = Duration::from_secs(1);

pub struct Throttle {
    rules: ThrottleRules,
    clean: Mutex<HashMap<String, Instant>>,
}

pub fn client_key(client_id: &str) -> String {
    format!("client:{client_id}")
}

pub fn user_key(client_id: &str, username: &str) -> String {
    format!("user:{client_id}:{username}")
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
        Self { rules, clean: Mutex::default() }
    }

    fn known_clean(&self, key: &str) -> bool {
        self.clean.lock().ok().and_then(|c| c.get(key).map(|at| at.elapsed() < CLEAN_FOR)).unwrap_or(false)
    }

    fn mark_clean(&self, key: &str, clean: bool) {
        if let Ok(mut cache) = self.clean.lock() {
            if cache.len() > 100_000 {
                cache.clear();
            }
            if clean {
                cache.insert(key.to_owned(), Instant::now());
            } else {
                cache.remove(key);
            }
        }
    }

    /// `slow_down` (429) while `key` is blocked. Returns whether `key` has failures to clear on success.
    pub async fn check<S: Store>(&self, store: &S, key: &str, now: i64) -> Result<bool, OAuthError> {
        if self.known_clean(key) {
            return Ok(false);
        }
        let record = store.auth_failures(key).await?;
        let has_failures = record.is_some_and(|r| r.failures > 0 && r.window_start >= now - self.rules.window);
        self.mark_clean(key, !has_failures && record.is_none_or(|r| r.blocked_until <= now));
        match record {
            Some(r) if r.blocked_until > now => {
                tracing::warn!(key, until = r.blocked_until, "throttled: blocked after repeated failures");
                Err(too_many(r.blocked_until - now))
            }
            _ => Ok(has_failures),
        }
    }

    /// Counts a failure for `key`, blocking it once the threshold is reached.
    pub async fn failed<S: Store>(&self, store: &S, key: &str, now: i64) -> Result<(), OAuthError> {
        self.count_failure(store, key, self.rules.threshold, now).await
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
            Some(address) => self.check(store, &address_key(address), now).await.map(|_| ()),
            None => Ok(()),
        }
    }

    /// Counts a failed authentication against the caller's address.
    pub async fn failed_address<S: Store>(
        &self,
        store: &S,
        source: Option<IpAddr>,
        now: i64,
    ) -> Result<(), OAuthError> {
        match self.counted_address(source) {
            Some(address) => self.count_failure(store, &address_key(address), self.rules.address_threshold, now).await,
            None => Ok(()),
        }
    }

    async fn count_failure<S: Store>(&self, store: &S, key: &str, threshold: i64, now: i64) -> Result<(), OAuthError> {
        self.mark_clean(key, false);
        let failures = store.record_auth_failure(key, now, now - self.rules.window).await?;
        tracing::warn!(key, failures, "authentication failed");
        if failures >= threshold {
            let doublings = (failures - threshold).min(20) as u32;
            let block = self.rules.base_block.saturating_mul(1 << doublings).min(self.rules.max_block);
            store.block_auth(key, now + block).await?;
        }
        Ok(())
    }

    /// Forgets the failures of `key` after a success.
    pub async fn succeeded<S: Store>(&self, store: &S, key: &str) -> Result<(), OAuthError> {
        store.clear_auth_failures(key).await?;
        self.mark_clean(key, true);
        Ok(())
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
