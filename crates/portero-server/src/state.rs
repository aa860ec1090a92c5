//! Shared state of a running server, and how it is built at start.

use portero_core::remote_keys::RemoteKeys;
use portero_core::store::prelude::*;
use std::path::Path;
use std::sync::Arc;

use portero_core::client_cache::ClientCache;
use portero_core::keys::{Alg, KeyError, KeyRing, KeySet, MasterKey, SigningKey};
use portero_core::secret::Verifier;
use portero_core::store::StoreError;
use portero_core::throttle::Throttle;
use portero_core::token_endpoint::{Context, Policy};
use portero_store::Database;

use crate::config::ServerConfig;

#[derive(Clone)]
pub struct AppState {
    pub ctx: Arc<Context<Database>>,
    pub config: Arc<ServerConfig>,
    pub master_key: MasterKey,
    /// SHA-256 of the admin API's bearer token; `None` keeps the admin API off.
    pub admin_token_digest: Option<[u8; 32]>,
}

/// SHA-256 of a value, for constant-time comparison of equal-length digests.
pub fn digest(value: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, value.as_bytes()).as_ref());
    out
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("master key file {path}: {source}")]
    KeyFile { path: String, source: std::io::Error },
}

impl AppState {
    /// Builds the state: loads the signing keys, generating the first one (with `first_alg`)
    /// when the database has none.
    pub async fn build(
        db: Database,
        master_key: MasterKey,
        policy: Policy,
        config: ServerConfig,
        first_alg: Alg,
        now: i64,
    ) -> Result<Self, StartError> {
        let keys = KeyRing::new(load_or_create_keys(&db, &master_key, first_alg, now).await?);
        let clients = ClientCache::new(config.client_cache_ttl, config.client_cache_entries);
        let throttle = Throttle::new(config.throttle, config.client_cache_entries);
        let verifier = Verifier::new(config.client_cache_entries);
        let pending = Default::default();
        let audit = portero_core::audit::AuditLog::start(db.clone());
        let successors = portero_core::successor::SuccessorKey::new(&master_key);
        let dpop_nonces = portero_core::dpop_nonce::Nonces::new(&master_key);
        let remote_keys = match crate::remote_keys::HttpKeyFetch::new() {
            Ok(fetch) => RemoteKeys::new(std::sync::Arc::new(fetch)),
            Err(error) => {
                tracing::error!(%error, "no HTTP client for jwks_uri clients: they cannot authenticate");
                RemoteKeys::offline()
            }
        };
        let ctx = Context {
            store: db,
            keys,
            policy,
            verifier,
            clients,
            throttle,
            pending,
            successors,
            dpop_nonces,
            remote_keys,
            audit,
        };
        let admin_token_digest = config.admin_token.as_deref().map(digest);
        let _ = crate::metrics::handle();
        Ok(Self { ctx: Arc::new(ctx), config: Arc::new(config), master_key, admin_token_digest })
    }

    /// With `key_rotation_days`, makes the next signing key when the newest one has signed that
    /// long, less the publish delay: the new key is in every JWKS before it signs. Nothing is
    /// made while a key made ahead of time is still waiting to sign.
    async fn rotate_on_schedule(&self, now: i64) -> Result<(), StartError> {
        use portero_core::admin::{DEFAULT_PUBLISH_DELAY_SECONDS, rotate_key};
        let days = self.config.key_rotation_days;
        if days <= 0 {
            return Ok(());
        }
        let keys = self.ctx.store.list_keys().await?;
        let Some(newest) = keys.iter().filter(|k| k.retired_at.is_none()).max_by_key(|k| k.activate_at) else {
            return Ok(());
        };
        if now < newest.activate_at + days * 86_400 - DEFAULT_PUBLISH_DELAY_SECONDS {
            return Ok(());
        }
        let alg = newest.alg.clone();
        match rotate_key(&self.ctx.store, &self.master_key, &alg, DEFAULT_PUBLISH_DELAY_SECONDS, now).await {
            Ok(key) => {
                tracing::info!(kid = %key.kid, alg = %key.alg, activate_at = key.activate_at, "scheduled key rotation");
                self.reload_keys().await
            }
            Err(error) => {
                tracing::warn!(%error, "scheduled key rotation failed; retrying at the next maintenance");
                Ok(())
            }
        }
    }

    /// Drops what this node cached of `change` (a client, or the keys).
    pub async fn apply_change(&self, change: &portero_core::store::Change) {
        use portero_core::store::Change;
        match change {
            Change::Client(id) => self.ctx.clients.invalidate(id),
            Change::Keys => self.reload_keys_logged().await,
            Change::Blocked { key, until } => self.ctx.throttle.blocked_elsewhere(key, *until),
            Change::Everything => {
                self.ctx.throttle.feed_followed_from_now();
                self.learn_failing_keys().await;
                self.ctx.clients.invalidate_all();
                self.reload_keys_logged().await;
            }
        }
    }

    /// See `Throttle::learn_failing_keys`; on failure keys are read per request, as without a feed.
    async fn learn_failing_keys(&self) {
        let now = portero_core::clock::unix_now();
        match self.ctx.throttle.learn_failing_keys(&self.ctx.store, now).await {
            Ok(failing) => tracing::info!(failing, "throttle: keys failing at the feed's start read"),
            Err(error) => tracing::warn!(%error, "throttle: could not read the failing keys; reading per key"),
        }
    }

    async fn reload_keys_logged(&self) {
        if let Err(error) = self.reload_keys().await {
            tracing::warn!(%error, "reloading the signing keys after a change failed");
        }
    }

    /// Applies the changes other nodes and processes announce, for as long as the server runs.
    /// The client cache is warmed once the feed is live (see [`Self::warm_client_cache`]).
    pub fn follow_changes(&self) {
        let Some(mut changes) = self.ctx.store.changes() else {
            self.warm_client_cache();
            return;
        };
        let state = self.clone();
        // The feed's first `Change::Everything` (once it is live) starts the throttle's trust in
        // it and drops what was cached before: a change announced before the LISTEN was in place
        // is not lost, and the warm-up that follows is not thrown away.
        tokio::spawn(async move {
            let mut live = false;
            while let Some(change) = changes.recv().await {
                tracing::debug!(change = %loggable_change(&change), "change announced");
                state.apply_change(&change).await;
                if !std::mem::replace(&mut live, true) {
                    state.warm_client_cache();
                }
            }
            state.ctx.throttle.feed_stopped();
            tracing::warn!("the change feed stopped: caches and the throttle fall back to their timeouts");
        });
    }

    /// Fills the client cache from the client table beside serving (see `ClientCache::warm`),
    /// once changes made meanwhile are seen.
    fn warm_client_cache(&self) {
        let state = self.clone();
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            match state.ctx.clients.warm(&state.ctx.store).await {
                Ok(clients) => {
                    tracing::info!(clients, ms = started.elapsed().as_millis() as u64, "client cache warmed")
                }
                Err(error) => tracing::warn!(%error, "warming the client cache stopped; clients are read on demand"),
            }
        });
    }

    /// Re-reads the keys from the database when the published set changed, so a rotation done
    /// elsewhere shows without a restart. Cheap when nothing changed: one small query.
    pub async fn reload_keys(&self) -> Result<(), StartError> {
        let stored = self.ctx.store.list_keys().await?;
        let mut stored_kids: Vec<&str> =
            stored.iter().filter(|k| k.retired_at.is_none()).map(|k| k.kid.as_str()).collect();
        let current = self.ctx.keys.current();
        let mut current_kids = current.kids();
        stored_kids.sort_unstable();
        current_kids.sort_unstable();
        if stored_kids != current_kids {
            self.ctx.keys.replace(KeySet::load(&stored, &self.master_key)?);
            tracing::info!(keys = stored_kids.len(), "signing keys reloaded");
        }
        Ok(())
    }

    /// Periodic upkeep: reload keys, make the next one when the schedule says so, retire
    /// superseded ones, purge what has expired.
    pub async fn maintain(&self, now: i64) -> Result<(), StartError> {
        self.reload_keys().await?;
        self.rotate_on_schedule(now).await?;
        let store = &self.ctx.store;
        let longest_ttl = store.max_client_token_ttl().await?.unwrap_or(0).max(self.ctx.policy.access_token_ttl);
        let retirable = self.ctx.keys.current().retirable(now, longest_ttl);
        for kid in &retirable {
            store.retire_key(kid, now).await?;
            tracing::info!(%kid, "signing key retired: no unexpired token carries it");
        }
        if !retirable.is_empty() {
            self.reload_keys().await?;
        }
        store.purge_expired(now).await?;
        Ok(())
    }
}

async fn load_or_create_keys(db: &Database, master: &MasterKey, alg: Alg, now: i64) -> Result<KeySet, StartError> {
    let set = KeySet::load(&db.list_keys().await?, master)?;
    if set.active(now).is_ok() {
        return Ok(set);
    }
    let key = SigningKey::generate(alg, master, now, now)?;
    tracing::info!(kid = %key.kid, alg = alg.as_str(), "generated the first signing key");
    match db.insert_key(&key).await {
        // Another node created one at the same moment: use whatever is there now.
        Ok(()) | Err(StoreError::Conflict(_)) => {}
        Err(other) => return Err(other.into()),
    }
    Ok(KeySet::load(&db.list_keys().await?, master)?)
}

/// The master key: from `PORTERO_MASTER_KEY` when given, else from `key_file`, which is
/// created (mode 0600) with a random key on first use.
pub fn resolve_master_key(from_env: Option<&str>, key_file: &Path) -> Result<MasterKey, StartError> {
    if let Some(text) = from_env {
        return Ok(MasterKey::parse(text)?);
    }
    let io_err = |source| StartError::KeyFile { path: key_file.display().to_string(), source };
    match std::fs::read_to_string(key_file) {
        Ok(text) => Ok(MasterKey::parse(&text)?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = MasterKey::generate();
            write_private_file(key_file, &key.to_base64()).map_err(io_err)?;
            tracing::warn!(
                path = %key_file.display(),
                "PORTERO_MASTER_KEY is not set: created a master key file (mode 0600) that seals the signing keys; \
                 back it up, and set PORTERO_MASTER_KEY on every node that shares a database"
            );
            Ok(key)
        }
        Err(e) => Err(io_err(e)),
    }
}

fn write_private_file(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}

/// A change as a log line may carry it: a blocked key's username replaced by its digest (see
/// `throttle::loggable`).
fn loggable_change(change: &portero_core::store::Change) -> String {
    match change {
        portero_core::store::Change::Blocked { key, until } => {
            format!("blocked:{until}:{}", portero_core::throttle::loggable(key))
        }
        other => other.encode(),
    }
}
