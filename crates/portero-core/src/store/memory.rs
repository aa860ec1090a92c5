//! An in-memory store: every capability, with the semantics the SQL backends have (the same
//! conformance suite runs on it), behind one mutex per table. For tests of the pipeline that
//! need no database, and for trying Portero out; it keeps nothing across a restart.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use super::{
    AttemptRules, AuditStore, AuthFailures, Change, ChangeFeed, Client, ClientStore, KeyStore, Origin,
    RefreshTokenRecord, RefreshTokenStore, ReplayStore, Reservation, RevocationStore, Rotation, StoreError,
    StoreResult, StoredKey, Tenant, TenantStore, ThrottleStore, TokenOwner, User, UserStore,
};
use crate::audit_event::{AuditEvent, AuditQuery};

/// Rows older than this are purged from the audit trail (as in the SQL backends: 90 days).
const AUDIT_RETENTION: i64 = 90 * 86_400;

#[derive(Clone, Default)]
pub struct MemoryStore {
    tables: Arc<Tables>,
}

#[derive(Default)]
struct Tables {
    tenants: Mutex<Vec<Tenant>>,
    clients: Mutex<BTreeMap<String, Client>>,
    users: Mutex<Vec<User>>,
    refresh_tokens: Mutex<HashMap<String, RefreshTokenRecord>>,
    /// jti → expires_at.
    revoked: Mutex<HashMap<String, i64>>,
    /// (owner kind, owner id) → revoked_before.
    cutoffs: Mutex<HashMap<(&'static str, String), i64>>,
    failures: Mutex<HashMap<String, Failures>>,
    audit: Mutex<AuditTable>,
    keys: Mutex<Vec<StoredKey>>,
    /// Seen jti key → expires_at.
    jtis: Mutex<HashMap<String, i64>>,
    /// (owner kind, id) → how it came from another provider (the SQL backends' extra columns).
    migration: Mutex<HashMap<(&'static str, String), Migrated>>,
}

mod migration;

#[derive(Clone)]
struct Migrated {
    origin: Origin,
    digest: String,
    rehashed_at: Option<i64>,
}

/// Audit rows, and their ids (a retried batch skips rows already in, as `ON CONFLICT` does).
#[derive(Default)]
struct AuditTable {
    rows: Vec<AuditEvent>,
    ids: HashSet<String>,
}

#[derive(Clone, Copy, Default)]
struct Failures {
    failures: i64,
    window_start: i64,
    blocked_until: i64,
    last_block: i64,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MemoryStore")
    }
}

/// A poisoned table (a panic while it was held) is still consistent: every change below is
/// made in one step after its checks.
fn lock<T>(table: &Mutex<T>) -> MutexGuard<'_, T> {
    table.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl TenantStore for MemoryStore {
    async fn create_tenant(&self, tenant: &Tenant) -> StoreResult<()> {
        let mut tenants = lock(&self.tables.tenants);
        if tenants.iter().any(|t| t.id == tenant.id || t.name == tenant.name) {
            return Err(StoreError::Conflict(format!("tenant {:?}", tenant.name)));
        }
        tenants.push(tenant.clone());
        Ok(())
    }

    async fn find_tenant(&self, id_or_name: &str) -> StoreResult<Option<Tenant>> {
        let tenants = lock(&self.tables.tenants);
        let by_id = tenants.iter().find(|t| t.id == id_or_name);
        Ok(by_id.or_else(|| tenants.iter().find(|t| t.name == id_or_name)).cloned())
    }

    async fn list_tenants(&self) -> StoreResult<Vec<Tenant>> {
        let mut tenants = lock(&self.tables.tenants).clone();
        tenants.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(tenants)
    }

    async fn delete_tenant(&self, id: &str) -> StoreResult<()> {
        let mut tenants = lock(&self.tables.tenants);
        let before = tenants.len();
        tenants.retain(|t| t.id != id);
        if tenants.len() == before {
            return Err(StoreError::NotFound(format!("tenant {id:?}")));
        }
        Ok(())
    }
}

impl ClientStore for MemoryStore {
    async fn create_client(&self, client: &Client) -> StoreResult<()> {
        let mut clients = lock(&self.tables.clients);
        if clients.contains_key(&client.id) {
            return Err(StoreError::Conflict(format!("client {:?}", client.id)));
        }
        clients.insert(client.id.clone(), client.clone());
        Ok(())
    }

    async fn find_client(&self, id: &str) -> StoreResult<Option<Client>> {
        Ok(lock(&self.tables.clients).get(id).cloned())
    }

    async fn list_clients(&self) -> StoreResult<Vec<Client>> {
        Ok(lock(&self.tables.clients).values().cloned().collect())
    }

    async fn clients_after(&self, after: &str, limit: u32) -> StoreResult<Vec<Client>> {
        use std::ops::Bound::{Excluded, Unbounded};
        let clients = lock(&self.tables.clients);
        let page = clients.range::<str, _>((Excluded(after), Unbounded)).take(limit as usize);
        Ok(page.map(|(_, client)| client.clone()).collect())
    }

    async fn rotate_client_secret(
        &self,
        id: &str,
        new_hash: &str,
        previous_expires_at: Option<i64>,
    ) -> StoreResult<()> {
        let mut clients = lock(&self.tables.clients);
        let client = clients.get_mut(id).ok_or_else(|| StoreError::NotFound(format!("client {id:?}")))?;
        let old_hash = std::mem::replace(&mut client.secret_hash, new_hash.to_owned());
        client.previous_secret =
            previous_expires_at.map(|expires_at| super::PreviousSecret { hash: old_hash, expires_at });
        Ok(())
    }

    async fn update_client(&self, client: &Client) -> StoreResult<()> {
        let mut clients = lock(&self.tables.clients);
        let stored =
            clients.get_mut(&client.id).ok_or_else(|| StoreError::NotFound(format!("client {:?}", client.id)))?;
        let (secret_hash, previous_secret, created_at, last_seen_at) =
            (stored.secret_hash.clone(), stored.previous_secret.clone(), stored.created_at, stored.last_seen_at);
        *stored = Client { secret_hash, previous_secret, created_at, last_seen_at, ..client.clone() };
        Ok(())
    }

    async fn delete_client(&self, id: &str) -> StoreResult<()> {
        match lock(&self.tables.clients).remove(id) {
            Some(_) => {
                lock(&self.tables.migration).remove(&("client", id.to_owned()));
                Ok(())
            }
            None => Err(StoreError::NotFound(format!("client {id:?}"))),
        }
    }

    async fn max_client_token_ttl(&self) -> StoreResult<Option<i64>> {
        Ok(lock(&self.tables.clients).values().filter_map(|c| c.token_ttl).max())
    }
}

impl UserStore for MemoryStore {
    async fn create_user(&self, user: &User) -> StoreResult<()> {
        if !lock(&self.tables.tenants).iter().any(|t| t.id == user.tenant_id) {
            return Err(StoreError::NotFound(format!("tenant {:?}", user.tenant_id)));
        }
        let mut users = lock(&self.tables.users);
        if users.iter().any(|u| u.id == user.id || (u.tenant_id == user.tenant_id && u.username == user.username)) {
            return Err(StoreError::Conflict(format!("user {:?}", user.username)));
        }
        users.push(user.clone());
        Ok(())
    }

    async fn find_users(&self, username: &str, tenant_ids: &[String]) -> StoreResult<Vec<User>> {
        let mut found: Vec<User> = lock(&self.tables.users)
            .iter()
            .filter(|u| u.username == username && tenant_ids.contains(&u.tenant_id))
            .cloned()
            .collect();
        found.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(found)
    }

    async fn find_user(&self, id: &str) -> StoreResult<Option<User>> {
        Ok(lock(&self.tables.users).iter().find(|u| u.id == id).cloned())
    }

    async fn list_users(&self, tenant_id: &str) -> StoreResult<Vec<User>> {
        let mut found: Vec<User> =
            lock(&self.tables.users).iter().filter(|u| u.tenant_id == tenant_id).cloned().collect();
        found.sort_by(|a, b| a.username.cmp(&b.username));
        Ok(found)
    }

    async fn update_user(&self, user: &User) -> StoreResult<()> {
        let mut users = lock(&self.tables.users);
        let stored = users
            .iter_mut()
            .find(|u| u.id == user.id)
            .ok_or_else(|| StoreError::NotFound(format!("user {:?}", user.id)))?;
        stored.password_hash = user.password_hash.clone();
        stored.disabled_at = user.disabled_at;
        Ok(())
    }

    async fn delete_user(&self, id: &str) -> StoreResult<()> {
        let mut users = lock(&self.tables.users);
        let before = users.len();
        users.retain(|u| u.id != id);
        if users.len() == before {
            return Err(StoreError::NotFound(format!("user {id:?}")));
        }
        lock(&self.tables.migration).remove(&("user", id.to_owned()));
        Ok(())
    }
}

impl RefreshTokenStore for MemoryStore {
    async fn insert_refresh_token(&self, token: &RefreshTokenRecord) -> StoreResult<()> {
        let mut tokens = lock(&self.tables.refresh_tokens);
        if tokens.contains_key(&token.hash) {
            return Err(StoreError::Conflict("refresh token".into()));
        }
        tokens.insert(token.hash.clone(), token.clone());
        Ok(())
    }

    async fn find_refresh_token(&self, hash: &str) -> StoreResult<Option<RefreshTokenRecord>> {
        Ok(lock(&self.tables.refresh_tokens).get(hash).cloned())
    }

    async fn rotate_refresh_token(&self, old_hash: &str, new: &RefreshTokenRecord) -> StoreResult<Rotation> {
        let mut tokens = lock(&self.tables.refresh_tokens);
        let live = tokens.get(old_hash).is_some_and(|old| old.used_at.is_none() && old.revoked_at.is_none());
        if !live || tokens.contains_key(&new.hash) {
            return Ok(Rotation::AlreadyUsed);
        }
        if let Some(old) = tokens.get_mut(old_hash) {
            old.used_at = Some(new.created_at);
        }
        tokens.insert(new.hash.clone(), new.clone());
        Ok(Rotation::Rotated)
    }

    async fn revoke_refresh_family(&self, family_id: &str, now: i64) -> StoreResult<u64> {
        let mut revoked = 0;
        for token in lock(&self.tables.refresh_tokens).values_mut() {
            if token.family_id == family_id && token.revoked_at.is_none() {
                token.revoked_at = Some(now);
                revoked += 1;
            }
        }
        Ok(revoked)
    }

    async fn revoke_refresh_tokens_of(&self, owner: TokenOwner<'_>, now: i64) -> StoreResult<u64> {
        let mut revoked = 0;
        for token in lock(&self.tables.refresh_tokens).values_mut() {
            let owned = match owner {
                TokenOwner::Client(id) => token.client_id == id,
                TokenOwner::User(id) => token.user_id.as_deref() == Some(id),
            };
            if owned && token.revoked_at.is_none() {
                token.revoked_at = Some(now);
                revoked += 1;
            }
        }
        Ok(revoked)
    }
}

impl RevocationStore for MemoryStore {
    async fn revoke_access_token(&self, jti: &str, _client_id: &str, expires_at: i64, _now: i64) -> StoreResult<()> {
        lock(&self.tables.revoked).entry(jti.to_owned()).or_insert(expires_at);
        Ok(())
    }

    async fn is_access_token_revoked(&self, jti: &str) -> StoreResult<bool> {
        Ok(lock(&self.tables.revoked).contains_key(jti))
    }

    async fn revoke_issued_before(&self, owner: TokenOwner<'_>, at: i64) -> StoreResult<()> {
        let mut cutoffs = lock(&self.tables.cutoffs);
        let cutoff = cutoffs.entry((owner.kind(), owner.id().to_owned())).or_insert(at);
        *cutoff = (*cutoff).max(at);
        Ok(())
    }

    async fn revoked_before(&self, client_id: &str, user_id: Option<&str>) -> StoreResult<Option<i64>> {
        let cutoffs = lock(&self.tables.cutoffs);
        let client = cutoffs.get(&("client", client_id.to_owned())).copied();
        let user = user_id.and_then(|id| cutoffs.get(&("user", id.to_owned())).copied());
        Ok(client.max(user))
    }

    async fn purge_expired(&self, now: i64) -> StoreResult<u64> {
        let mut purged = 0;
        let mut count = |before: usize, after: usize| purged += (before - after) as u64;
        let mut revoked = lock(&self.tables.revoked);
        let before = revoked.len();
        revoked.retain(|_, expires_at| *expires_at >= now);
        count(before, revoked.len());
        let mut tokens = lock(&self.tables.refresh_tokens);
        let before = tokens.len();
        tokens.retain(|_, t| t.expires_at >= now);
        count(before, tokens.len());
        let mut failures = lock(&self.tables.failures);
        let before = failures.len();
        failures.retain(|_, f| !(f.window_start < now - 86_400 && f.blocked_until < now));
        count(before, failures.len());
        let mut audit = lock(&self.tables.audit);
        let before = audit.rows.len();
        let AuditTable { rows, ids } = &mut *audit;
        rows.retain(|e| e.at >= now - AUDIT_RETENTION || !ids.remove(&e.id));
        count(before, audit.rows.len());
        let mut jtis = lock(&self.tables.jtis);
        let before = jtis.len();
        jtis.retain(|_, expires_at| *expires_at >= now);
        count(before, jtis.len());
        Ok(purged)
    }
}

impl ThrottleStore for MemoryStore {
    async fn auth_failures(&self, key: &str) -> StoreResult<Option<AuthFailures>> {
        Ok(lock(&self.tables.failures).get(key).map(|f| AuthFailures {
            failures: f.failures,
            window_start: f.window_start,
            blocked_until: f.blocked_until,
        }))
    }

    /// The same decision as the SQL backends' single upsert, under the table's lock.
    async fn reserve_attempt(&self, key: &str, now: i64, rules: &AttemptRules) -> StoreResult<Reservation> {
        let threshold = rules.threshold.max(1);
        let max_block = rules.max_block.max(1);
        let base_block = rules.base_block.min(rules.max_block).max(1);
        let mut failures = lock(&self.tables.failures);
        let Some(old) = failures.get(key).copied() else {
            failures.insert(key.to_owned(), Failures { failures: 1, window_start: now, ..Failures::default() });
            return Ok(Reservation::Granted { window_start: now });
        };
        let next = if old.blocked_until > now {
            old
        } else if old.window_start < now - rules.window {
            Failures { failures: 1, window_start: now, blocked_until: 0, last_block: 0 }
        } else if old.failures < threshold {
            Failures { failures: old.failures + 1, ..old }
        } else {
            let block = if old.last_block == 0 { base_block } else { (old.last_block * 2).min(max_block) };
            Failures {
                failures: threshold - 1,
                window_start: old.window_start,
                blocked_until: now + block,
                last_block: block,
            }
        };
        failures.insert(key.to_owned(), next);
        Ok(if next.blocked_until > now {
            Reservation::Blocked { until: next.blocked_until }
        } else {
            Reservation::Granted { window_start: next.window_start }
        })
    }

    async fn failing_keys(&self, window_since: i64, now: i64, limit: u32) -> StoreResult<Vec<(String, AuthFailures)>> {
        let failures = lock(&self.tables.failures);
        let mut failing: Vec<(String, AuthFailures)> = failures
            .iter()
            .filter(|(_, f)| (f.failures > 0 && f.window_start >= window_since) || f.blocked_until > now)
            .map(|(key, f)| {
                let record =
                    AuthFailures { failures: f.failures, window_start: f.window_start, blocked_until: f.blocked_until };
                (key.clone(), record)
            })
            .collect();
        failing.sort_by(|a, b| a.0.cmp(&b.0));
        failing.truncate(limit as usize);
        Ok(failing)
    }

    async fn release_attempt(&self, key: &str, window_start: i64) -> StoreResult<()> {
        if let Some(f) = lock(&self.tables.failures).get_mut(key)
            && f.window_start == window_start
            && f.failures > 0
        {
            f.failures -= 1;
        }
        Ok(())
    }
}

impl AuditStore for MemoryStore {
    async fn insert_audit_events(&self, events: &[AuditEvent]) -> StoreResult<()> {
        let mut audit = lock(&self.tables.audit);
        for event in events {
            if audit.ids.insert(event.id.clone()) {
                audit.rows.push(event.clone());
            }
        }
        Ok(())
    }

    async fn list_audit_events(&self, query: &AuditQuery) -> StoreResult<Vec<AuditEvent>> {
        let mut found: Vec<AuditEvent> = lock(&self.tables.audit)
            .rows
            .iter()
            .filter(|e| query.since.is_none_or(|since| e.at >= since))
            .filter(|e| query.client_id.as_ref().is_none_or(|id| e.client_id.as_ref() == Some(id)))
            .filter(|e| query.kind.as_ref().is_none_or(|kind| &e.kind == kind))
            .cloned()
            .collect();
        found.sort_by(|a, b| b.at.cmp(&a.at).then_with(|| b.id.cmp(&a.id)));
        found.truncate(query.limit.max(0) as usize);
        Ok(found)
    }
}

impl KeyStore for MemoryStore {
    async fn insert_key(&self, key: &StoredKey) -> StoreResult<()> {
        let mut keys = lock(&self.tables.keys);
        if keys.iter().any(|k| k.kid == key.kid) {
            return Err(StoreError::Conflict(format!("key {:?}", key.kid)));
        }
        keys.push(key.clone());
        Ok(())
    }

    async fn list_keys(&self) -> StoreResult<Vec<StoredKey>> {
        let mut keys = lock(&self.tables.keys).clone();
        keys.sort_by(|a, b| a.created_at.cmp(&b.created_at).then_with(|| a.kid.cmp(&b.kid)));
        Ok(keys)
    }

    async fn retire_key(&self, kid: &str, now: i64) -> StoreResult<()> {
        for key in lock(&self.tables.keys).iter_mut().filter(|k| k.kid == kid && k.retired_at.is_none()) {
            key.retired_at = Some(now);
        }
        Ok(())
    }
}

impl ReplayStore for MemoryStore {
    async fn remember_jti(&self, key: &str, expires_at: i64) -> StoreResult<bool> {
        let mut jtis = lock(&self.tables.jtis);
        if jtis.contains_key(key) {
            return Ok(false);
        }
        jtis.insert(key.to_owned(), expires_at);
        Ok(true)
    }
}

/// One process holds the whole store: nobody else to tell.
impl ChangeFeed for MemoryStore {
    async fn announce(&self, _change: &Change) {}
}
