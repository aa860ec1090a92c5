//! Clients read from the store are kept for a few seconds, so the `client_credentials` hot path
//! does no database read for a known client. Only clients that exist are cached (an attacker
//! cannot fill the cache with made-up ids). Changes made through this node invalidate at once;
//! changes made elsewhere (another node, the CLI) are seen within the TTL.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::store::{Client, Store, StoreResult};

const MAX_ENTRIES: usize = 10_000;

pub struct ClientCache {
    ttl: Duration,
    entries: Mutex<HashMap<String, (Client, Instant)>>,
}

impl ClientCache {
    /// `ttl` zero disables caching.
    pub fn new(ttl: Duration) -> Self {
        Self { ttl, entries: Mutex::default() }
    }

    pub async fn get<S: Store>(&self, store: &S, id: &str) -> StoreResult<Option<Client>> {
        if let Some(client) = self.cached(id) {
            return Ok(Some(client));
        }
        let client = store.find_client(id).await?;
        if let Some(client) = &client
            && !self.ttl.is_zero()
            && let Ok(mut entries) = self.entries.lock()
        {
            if entries.len() >= MAX_ENTRIES {
                entries.retain(|_, (_, at)| at.elapsed() < self.ttl);
                if entries.len() >= MAX_ENTRIES {
                    entries.clear();
                }
            }
            entries.insert(id.to_owned(), (client.clone(), Instant::now()));
        }
        Ok(client)
    }

    fn cached(&self, id: &str) -> Option<Client> {
        let entries = self.entries.lock().ok()?;
        entries.get(id).filter(|(_, at)| at.elapsed() < self.ttl).map(|(client, _)| client.clone())
    }

    /// Forgets a client this node just changed.
    pub fn invalidate(&self, id: &str) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(id);
        }
    }

    /// Forgets every client (changes may have been missed).
    pub fn invalidate_all(&self) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.clear();
        }
    }
}
