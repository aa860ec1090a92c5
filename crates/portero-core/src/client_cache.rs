//! Clients read from the store are kept for `client_cache_seconds`, so the `client_credentials` hot path
//! does no database read for a known client. Only clients that exist are cached (an attacker
//! cannot fill the cache with made-up ids). Changes made through this node invalidate at once;
//! changes announced elsewhere (another node, the CLI) drop their entry when the change feed
//! brings them; a row edited by hand is seen within the TTL. At most `capacity`
//! clients are kept; past that the oldest entry makes room, one at a time. At start,
//! [`ClientCache::warm`] fills it from the table a page at a time, beside serving.
//!
//! A read from the store and an invalidation can cross: the read returns the old row, the
//! change lands and invalidates, then the read's result is inserted. Every invalidation bumps
//! a generation under the lock, and a result read before a bump is not inserted.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::bounded_map::BoundedMap;
use crate::store::{Client, Store, StoreResult};

/// Clients kept by default: ~1 KiB each, so about 100 MiB when full.
pub const DEFAULT_CAPACITY: usize = 100_000;

/// Clients read per page while warming: one short read each, so serving never waits long
/// behind one.
const WARM_PAGE: usize = 1_000;

pub struct ClientCache {
    ttl: Duration,
    capacity: usize,
    entries: Mutex<Entries>,
}

struct Entries {
    clients: BoundedMap<String, (Client, Instant)>,
    /// Bumped by every invalidation.
    generation: u64,
}

impl ClientCache {
    /// `ttl` zero disables caching, as does `capacity` zero.
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        let capacity = if ttl.is_zero() { 0 } else { capacity };
        Self { ttl, capacity, entries: Mutex::new(Entries { clients: BoundedMap::new(capacity), generation: 0 }) }
    }

    pub async fn get<S: Store>(&self, store: &S, id: &str) -> StoreResult<Option<Client>> {
        if let Some(client) = self.cached(id) {
            return Ok(Some(client));
        }
        let generation = self.generation();
        let client = store.find_client(id).await?;
        if let Some(client) = &client {
            self.insert_unless_changed(generation, std::iter::once(client.clone()), true);
        }
        Ok(client)
    }

    /// Reads the client table a page at a time into the cache until it is full or the table
    /// ends, so the first request of each client after a start needs no read. Meant to run
    /// beside serving: a client read on demand meanwhile is kept as read, and a page read
    /// before an invalidation is dropped (those clients are read on demand). Returns how many
    /// clients it cached.
    pub async fn warm<S: Store>(&self, store: &S) -> StoreResult<usize> {
        let mut warmed = 0;
        let mut after = String::new();
        while warmed < self.capacity {
            let generation = self.generation();
            let limit = WARM_PAGE.min(self.capacity - warmed);
            let page = store.clients_after(&after, limit as u32).await?;
            let Some(last) = page.last() else { break };
            after.clone_from(&last.id);
            let full_page = page.len() == limit;
            warmed += self.insert_unless_changed(generation, page.into_iter(), false);
            if !full_page {
                break;
            }
            tokio::task::yield_now().await;
        }
        Ok(warmed)
    }

    fn generation(&self) -> u64 {
        self.entries.lock().map_or(0, |entries| entries.generation)
    }

    /// Inserts `clients` read when the generation was `generation`, unless an invalidation came
    /// since; `replace` says whether a cached entry gives way. Returns how many went in.
    fn insert_unless_changed(&self, generation: u64, clients: impl Iterator<Item = Client>, replace: bool) -> usize {
        if self.capacity == 0 {
            return 0;
        }
        let Ok(mut entries) = self.entries.lock() else { return 0 };
        if entries.generation != generation {
            return 0;
        }
        let now = Instant::now();
        let mut inserted = 0;
        for client in clients {
            if replace || entries.clients.get(client.id.as_str()).is_none() {
                entries.clients.insert(client.id.clone(), (client, now));
                inserted += 1;
            }
        }
        inserted
    }

    fn cached(&self, id: &str) -> Option<Client> {
        let entries = self.entries.lock().ok()?;
        entries.clients.get(id).filter(|(_, at)| at.elapsed() < self.ttl).map(|(client, _)| client.clone())
    }

    /// Forgets a client this node just changed.
    pub fn invalidate(&self, id: &str) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.clients.remove(id);
            entries.generation += 1;
        }
    }

    /// Forgets every client (changes may have been missed).
    pub fn invalidate_all(&self) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.clients.clear();
            entries.generation += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;
    use crate::store::{ClientStore, RefreshPolicy};

    fn client(id: &str, scopes: &[&str]) -> Client {
        Client {
            id: id.to_owned(),
            secret_hash: String::new(),
            grants: vec![],
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            audiences: vec![],
            tenants: vec![],
            token_ttl: None,
            refresh_policy: RefreshPolicy::Never,
            ignore_unknown_scopes: false,
            locale: None,
            auth_method: None,
            refresh_retry_window: None,
            disabled_at: None,
            jwks: None,
            jwks_uri: None,
            require_dpop: false,
            tls_subject_dn: None,
            tls_bound_tokens: false,
            last_seen_at: None,
            created_at: 0,
            previous_secret: None,
        }
    }

    async fn store_with(count: usize) -> MemoryStore {
        let store = MemoryStore::default();
        for i in 0..count {
            store.create_client(&client(&format!("client-{i:05}"), &[])).await.unwrap();
        }
        store
    }

    fn cached_ids(cache: &ClientCache) -> usize {
        cache.entries.lock().unwrap().clients.len()
    }

    #[tokio::test]
    async fn warming_reads_the_table_until_the_cache_is_full() {
        let store = store_with(2_500).await;
        let roomy = ClientCache::new(Duration::from_secs(60), 10_000);
        assert_eq!(roomy.warm(&store).await.unwrap(), 2_500);
        assert!(roomy.cached("client-02499").is_some());
        let small = ClientCache::new(Duration::from_secs(60), 1_500);
        assert_eq!(small.warm(&store).await.unwrap(), 1_500);
        assert_eq!(cached_ids(&small), 1_500);
        assert!(small.cached("client-01499").is_some() && small.cached("client-01500").is_none());
    }

    #[tokio::test]
    async fn a_disabled_cache_warms_nothing() {
        let store = store_with(10).await;
        assert_eq!(ClientCache::new(Duration::ZERO, 100).warm(&store).await.unwrap(), 0);
        assert_eq!(ClientCache::new(Duration::from_secs(60), 0).warm(&store).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn a_read_that_crossed_an_invalidation_is_not_kept() {
        let cache = ClientCache::new(Duration::from_secs(60), 100);
        let stale = client("payme", &["old"]);
        let before = cache.generation();
        cache.invalidate("payme");
        assert_eq!(cache.insert_unless_changed(before, std::iter::once(stale.clone()), true), 0);
        assert!(cache.cached("payme").is_none());
        let after = cache.generation();
        assert_eq!(cache.insert_unless_changed(after, std::iter::once(stale), true), 1);
        assert!(cache.cached("payme").is_some());
    }

    #[tokio::test]
    async fn warming_keeps_what_was_read_on_demand() {
        let store = store_with(3).await;
        let cache = ClientCache::new(Duration::from_secs(60), 100);
        let fresher = client("client-00001", &["read-on-demand"]);
        cache.insert_unless_changed(cache.generation(), std::iter::once(fresher.clone()), true);
        assert_eq!(cache.warm(&store).await.unwrap(), 2);
        assert_eq!(cache.cached("client-00001"), Some(fresher));
    }
}
