//! The in-memory store's `MigrationStore` (issue 14): what the SQL backends keep in their
//! `origin`, `import_digest` and `migrated_at` columns lives in the `migration` table.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::{MemoryStore, Migrated, lock};
use crate::store::{
    ExistingUser, ImportBatch, MigrationCount, MigrationStore, Origin, StoreError, StoreResult, TokenOwner,
};

/// kind, tenants, origin, legacy, rehashed, seen.
type CountKey = (&'static str, Vec<String>, &'static str, bool, bool, bool);

/// Whether a stored hash is Portero's own (as the SQL backends test it, by prefix).
fn native(hash: &str) -> bool {
    hash.starts_with("$s256$") || hash.starts_with("$argon2id$v=19$")
}

impl MigrationStore for MemoryStore {
    async fn upgrade_hash(&self, owner: TokenOwner<'_>, old: &str, new: &str, now: i64) -> StoreResult<bool> {
        let replaced = match owner {
            TokenOwner::Client(id) => {
                let mut clients = lock(&self.tables.clients);
                match clients.get_mut(id) {
                    Some(client) if client.secret_hash == old => {
                        client.secret_hash = new.to_owned();
                        client.last_seen_at = client.last_seen_at.or(Some(now));
                        true
                    }
                    _ => false,
                }
            }
            TokenOwner::User(id) => {
                let mut users = lock(&self.tables.users);
                match users.iter_mut().find(|u| u.id == id) {
                    Some(user) if user.password_hash == old => {
                        user.password_hash = new.to_owned();
                        user.last_seen_at = user.last_seen_at.or(Some(now));
                        true
                    }
                    _ => false,
                }
            }
        };
        if replaced && let Some(meta) = lock(&self.tables.migration).get_mut(&(owner.kind(), owner.id().to_owned())) {
            meta.rehashed_at = Some(now);
        }
        Ok(replaced)
    }

    async fn mark_seen(&self, owner: TokenOwner<'_>, now: i64) -> StoreResult<()> {
        match owner {
            TokenOwner::Client(id) => {
                if let Some(client) = lock(&self.tables.clients).get_mut(id) {
                    client.last_seen_at = client.last_seen_at.or(Some(now));
                }
            }
            TokenOwner::User(id) => {
                if let Some(user) = lock(&self.tables.users).iter_mut().find(|u| u.id == id) {
                    user.last_seen_at = user.last_seen_at.or(Some(now));
                }
            }
        }
        Ok(())
    }

    async fn client_import_digests(&self) -> StoreResult<HashMap<String, String>> {
        let migration = lock(&self.tables.migration);
        Ok(migration
            .iter()
            .filter(|((kind, _), meta)| *kind == "client" && meta.origin == Origin::Import)
            .map(|((_, id), meta)| (id.clone(), meta.digest.clone()))
            .collect())
    }

    async fn users_for_import(&self, tenant_ids: &[String]) -> StoreResult<Vec<ExistingUser>> {
        let users = lock(&self.tables.users);
        let migration = lock(&self.tables.migration);
        Ok(users
            .iter()
            .filter(|u| tenant_ids.contains(&u.tenant_id))
            .map(|u| ExistingUser {
                id: u.id.clone(),
                tenant_id: u.tenant_id.clone(),
                username: u.username.clone(),
                password_hash: u.password_hash.clone(),
                created_at: u.created_at,
                digest: migration
                    .get(&("user", u.id.clone()))
                    .filter(|m| m.origin == Origin::Import)
                    .map(|m| m.digest.clone()),
            })
            .collect())
    }

    async fn write_import(&self, batch: &ImportBatch) -> StoreResult<()> {
        // Every table at once, in one order, checked in full before anything changes.
        let mut tenants = lock(&self.tables.tenants);
        let mut clients = lock(&self.tables.clients);
        let mut users = lock(&self.tables.users);
        let mut migration = lock(&self.tables.migration);
        let mut tenant_ids: HashSet<String> = tenants.iter().map(|t| t.id.clone()).collect();
        let mut tenant_names: HashSet<String> = tenants.iter().map(|t| t.name.clone()).collect();
        for tenant in &batch.tenants {
            if !tenant_ids.insert(tenant.id.clone()) || !tenant_names.insert(tenant.name.clone()) {
                return Err(StoreError::Conflict(format!("tenant {:?}", tenant.name)));
            }
        }
        for imported in &batch.clients {
            if clients.contains_key(&imported.client.id) != imported.replaces {
                return Err(StoreError::Conflict(format!("client {:?}", imported.client.id)));
            }
        }
        let mut user_ids: HashMap<String, usize> = users.iter().enumerate().map(|(i, u)| (u.id.clone(), i)).collect();
        let mut names: HashSet<(String, String)> =
            users.iter().map(|u| (u.tenant_id.clone(), u.username.clone())).collect();
        for imported in &batch.users {
            let user = &imported.user;
            if !tenant_ids.contains(&user.tenant_id) {
                return Err(StoreError::NotFound(format!("tenant {:?}", user.tenant_id)));
            }
            let exists = user_ids.contains_key(&user.id);
            if exists != imported.replaces
                || (!exists && !names.insert((user.tenant_id.clone(), user.username.clone())))
            {
                return Err(StoreError::Conflict(format!("user {:?}", user.username)));
            }
        }
        tenants.extend(batch.tenants.iter().cloned());
        let meta = |digest: &str| Migrated { origin: Origin::Import, digest: digest.to_owned(), rehashed_at: None };
        for imported in &batch.clients {
            let mut client = imported.client.clone();
            if let Some(stored) = clients.get(&client.id) {
                client.created_at = stored.created_at;
            }
            clients.insert(client.id.clone(), client);
            migration.insert(("client", imported.client.id.clone()), meta(&imported.digest));
        }
        for imported in &batch.users {
            let user = &imported.user;
            match user_ids.get(&user.id) {
                Some(&at) => {
                    let stored = &mut users[at];
                    stored.password_hash = user.password_hash.clone();
                    stored.last_seen_at = None;
                }
                None => {
                    user_ids.insert(user.id.clone(), users.len());
                    users.push(user.clone());
                }
            }
            migration.insert(("user", user.id.clone()), meta(&imported.digest));
        }
        Ok(())
    }

    async fn record_upstream(&self, owner: TokenOwner<'_>, now: i64) -> StoreResult<()> {
        self.mark_seen(owner, now).await?;
        let meta = Migrated { origin: Origin::Upstream, digest: String::new(), rehashed_at: None };
        lock(&self.tables.migration).insert((owner.kind(), owner.id().to_owned()), meta);
        Ok(())
    }

    async fn migration_counts(&self) -> StoreResult<Vec<MigrationCount>> {
        let clients = lock(&self.tables.clients);
        let users = lock(&self.tables.users);
        let migration = lock(&self.tables.migration);
        let mut counts: BTreeMap<CountKey, i64> = BTreeMap::new();
        let mut count = |kind: &'static str, id: &str, tenants: Vec<String>, hash: &str, seen: bool| {
            if let Some(meta) = migration.get(&(kind, id.to_owned())) {
                let key = (kind, tenants, meta.origin.as_str(), !native(hash), meta.rehashed_at.is_some(), seen);
                *counts.entry(key).or_default() += 1;
            }
        };
        for client in clients.values() {
            count("client", &client.id, client.tenants.clone(), &client.secret_hash, client.last_seen_at.is_some());
        }
        for user in users.iter() {
            count("user", &user.id, vec![user.tenant_id.clone()], &user.password_hash, user.last_seen_at.is_some());
        }
        Ok(counts
            .into_iter()
            .filter_map(|((kind, tenants, origin, legacy, rehashed, seen), count)| {
                Some(MigrationCount { kind, tenants, origin: Origin::parse(origin)?, legacy, rehashed, seen, count })
            })
            .collect())
    }
}
