//! What the protocol needs from storage. `portero-store` implements it for SQLite and
//! PostgreSQL; both pass one conformance suite.
//!
//! Secrets and refresh tokens are stored only as hashes; private keys only encrypted.

pub mod memory;

use std::future::Future;

pub use crate::registration::RefreshPolicy;

use crate::audit_event::{AuditEvent, AuditQuery};
use crate::registration::{AuthMethod, GrantType};

/// Storage failures. `Unavailable` (the database cannot be reached) becomes
/// `temporarily_unavailable`; anything else becomes `server_error`.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("already exists: {0}")]
    Conflict(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("database error: {0}")]
    Other(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    pub id: String,
    pub name: String,
    pub created_at: i64,
}

/// A registered (confidential) client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    pub id: String,
    /// PHC-style hash of the secret (see `secret.rs`); never the secret itself.
    pub secret_hash: String,
    pub grants: Vec<GrantType>,
    pub scopes: Vec<String>,
    pub audiences: Vec<String>,
    /// Tenant ids this client acts for.
    pub tenants: Vec<String>,
    /// Access-token lifetime in seconds; `None` takes the server default.
    pub token_ttl: Option<i64>,
    pub refresh_policy: RefreshPolicy,
    /// Drop scopes the client may not have instead of answering `invalid_scope`.
    pub ignore_unknown_scopes: bool,
    /// Locale of the Pay-me envelope's messages, e.g. `es_PE`.
    pub locale: Option<String>,
    /// The one method the client authenticates with; `None` accepts both secret methods.
    pub auth_method: Option<AuthMethod>,
    /// Seconds after a rotation in which the parent refresh token may be redeemed again for the
    /// same child; `None` takes the server's setting.
    pub refresh_retry_window: Option<i64>,
    /// Set while the client is disabled: it is refused as an unknown client would be.
    pub disabled_at: Option<i64>,
    /// The public JWK Set (JSON text) a `private_key_jwt` client signs its assertions with.
    pub jwks: Option<String>,
    /// Where a `private_key_jwt` client publishes its JWK Set instead (fetched and cached).
    pub jwks_uri: Option<String>,
    /// Every token request must carry a DPoP proof (RFC 9449 §5, `dpop_bound_access_tokens`).
    pub require_dpop: bool,
    /// The subject DN (RFC 4514 string) a `tls_client_auth` client's certificate must have.
    pub tls_subject_dn: Option<String>,
    /// Access tokens are bound to the client certificate of the request (RFC 8705 §3,
    /// `tls_client_certificate_bound_access_tokens`); a request without one is refused.
    pub tls_bound_tokens: bool,
    /// The first successful authentication (see [`MigrationStore::mark_seen`]); `None` until then.
    pub last_seen_at: Option<i64>,
    pub created_at: i64,
    /// The secret replaced by the last rotation, accepted until `expires_at` (the overlap).
    pub previous_secret: Option<PreviousSecret>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviousSecret {
    pub hash: String,
    pub expires_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub tenant_id: String,
    pub username: String,
    /// argon2id PHC string.
    pub password_hash: String,
    /// Set while the user is disabled: the password grant refuses it as an unknown user.
    pub disabled_at: Option<i64>,
    /// The first successful login (see [`MigrationStore::mark_seen`]); `None` until then.
    pub last_seen_at: Option<i64>,
    pub created_at: i64,
}

/// A change that other nodes must hear of at once, because they cache what it changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A client was changed, disabled or deleted.
    Client(String),
    /// A signing key was added or revoked.
    Keys,
    /// A throttling key (see `crate::throttle`) was blocked until this unix time.
    Blocked { key: String, until: i64 },
    /// Changes may have been missed (a listener reconnected): drop everything cached.
    Everything,
}

impl Change {
    /// The text sent between nodes.
    pub fn encode(&self) -> String {
        match self {
            Self::Client(id) => format!("client:{id}"),
            Self::Keys => "keys".to_owned(),
            Self::Blocked { key, until } => format!("blocked:{until}:{key}"),
            Self::Everything => "everything".to_owned(),
        }
    }

    /// Unknown text is read as `Everything`: a newer node's change is never ignored.
    pub fn decode(text: &str) -> Self {
        match text.split_once(':') {
            Some(("client", id)) => Self::Client(id.to_owned()),
            Some(("blocked", rest)) => match rest.split_once(':').map(|(until, key)| (until.parse(), key)) {
                Some((Ok(until), key)) => Self::Blocked { key: key.to_owned(), until },
                _ => Self::Everything,
            },
            _ if text == "keys" => Self::Keys,
            _ => Self::Everything,
        }
    }
}

/// Whose tokens a lifecycle operation ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenOwner<'a> {
    Client(&'a str),
    /// A user, by id.
    User(&'a str),
}

impl TokenOwner<'_> {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Client(_) => "client",
            Self::User(_) => "user",
        }
    }

    pub fn id(&self) -> &str {
        match self {
            Self::Client(id) | Self::User(id) => id,
        }
    }
}

/// One refresh token, stored by the hash of its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshTokenRecord {
    pub hash: String,
    /// Every token rotated from the same original grant shares a family; reuse revokes it all.
    pub family_id: String,
    pub client_id: String,
    pub subject: String,
    pub user_id: Option<String>,
    pub tenants: Vec<String>,
    pub scopes: Vec<String>,
    pub audiences: Vec<String>,
    pub auth_time: i64,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    pub revoked_at: Option<i64>,
    /// The DPoP key (its JWK thumbprint) the family is bound to: redeeming needs a proof from it.
    pub jkt: Option<String>,
}

/// A signing key as stored: the PKCS#8 private key sealed under the master key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKey {
    pub kid: String,
    pub alg: String,
    pub sealed_private_key: String,
    pub created_at: i64,
    /// Published from creation; used for signing from this instant on.
    pub activate_at: i64,
    pub retired_at: Option<i64>,
}

/// Recent failed authentications for one key (a client id, or a client's username).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthFailures {
    pub failures: i64,
    pub window_start: i64,
    pub blocked_until: i64,
}

/// How [`ThrottleStore::reserve_attempt`] counts one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptRules {
    /// Slots (failed or unfinished attempts) a window allows.
    pub threshold: i64,
    /// Length of a window in seconds; the first slot taken after it starts a new one.
    pub window: i64,
    /// The first block, in seconds; each later block in the same window doubles the last.
    pub base_block: i64,
    pub max_block: i64,
}

/// The answer of [`ThrottleStore::reserve_attempt`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    /// A slot is taken; give it back with `release_attempt(key, window_start)` on success.
    Granted { window_start: i64 },
    /// No slot: the key is blocked until then.
    Blocked { until: i64 },
}

/// Result of an atomic refresh-token rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    /// The old token is marked used and the new one stored, in one transaction.
    Rotated,
    /// Someone else used (or revoked) the old token first: nothing was written.
    AlreadyUsed,
}

/// How a client or user came to Portero from another provider (issue 14).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// `portero import` / `POST /admin/import`.
    Import,
    /// Lazily, through the old provider's token endpoint.
    Upstream,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Import => "import",
            Self::Upstream => "upstream",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "import" => Some(Self::Import),
            "upstream" => Some(Self::Upstream),
            _ => None,
        }
    }
}

/// A client of an import: new, or replacing the stored one of the same id (`--update`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedClient {
    pub client: Client,
    /// What the next import of the same row compares with (see `crate::import`).
    pub digest: String,
    pub replaces: bool,
}

/// A user of an import: new, or replacing the stored one of the same id (`--update`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedUser {
    pub user: User,
    pub digest: String,
    pub replaces: bool,
}

/// Everything one import writes, in one transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportBatch {
    pub tenants: Vec<Tenant>,
    pub clients: Vec<ImportedClient>,
    pub users: Vec<ImportedUser>,
    pub at: i64,
}

/// A stored user as an import compares with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExistingUser {
    pub id: String,
    pub tenant_id: String,
    pub username: String,
    pub password_hash: String,
    pub created_at: i64,
    /// The digest of the import row it came from, if it was imported.
    pub digest: Option<String>,
}

/// One group of `portero import status`: clients or users of one tenant list, one origin, in
/// one state, and how many.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationCount {
    /// `client` or `user`.
    pub kind: &'static str,
    /// A user's tenant, or a client's tenants.
    pub tenants: Vec<String>,
    pub origin: Origin,
    /// Still on a hash that is not Portero's own.
    pub legacy: bool,
    /// Its legacy hash was replaced at a first success.
    pub rehashed: bool,
    /// Authenticated at least once since it came.
    pub seen: bool,
    pub count: i64,
}

/// Moving credentials in from another provider (issue 14): legacy hashes replaced at the first
/// success, the bulk import written in one transaction, and what is left to migrate.
pub trait MigrationStore: Send + Sync + 'static {
    /// Replaces the secret (client) or password (user) hash `old` with `new`, only while it is
    /// still `old`: of concurrent successes one write wins and the others change nothing (the
    /// winner's hash verifies the same secret). Marks it rehashed and seen. `true` when this
    /// call replaced it.
    fn upgrade_hash(
        &self,
        owner: TokenOwner<'_>,
        old: &str,
        new: &str,
        now: i64,
    ) -> impl Future<Output = StoreResult<bool>> + Send;
    /// Records the first successful authentication: only while none is recorded, so callers
    /// write it once (when the `last_seen_at` they read is `None`), not on every login.
    fn mark_seen(&self, owner: TokenOwner<'_>, now: i64) -> impl Future<Output = StoreResult<()>> + Send;
    /// Import digests of the stored clients, by id (clients that were not imported have none).
    fn client_import_digests(
        &self,
    ) -> impl Future<Output = StoreResult<std::collections::HashMap<String, String>>> + Send;
    /// The users of these tenants, as an import compares with them.
    fn users_for_import(&self, tenant_ids: &[String]) -> impl Future<Output = StoreResult<Vec<ExistingUser>>> + Send;
    /// Writes a whole import in one transaction: every tenant, client and user, or nothing (a
    /// conflict with a row written meanwhile is `Conflict`, and nothing is written).
    fn write_import(&self, batch: &ImportBatch) -> impl Future<Output = StoreResult<()>> + Send;
    /// Marks a client or user just created from an old provider's answer as lazily migrated
    /// (origin `upstream`, seen now).
    fn record_upstream(&self, owner: TokenOwner<'_>, now: i64) -> impl Future<Output = StoreResult<()>> + Send;
    /// Counts of what came from another provider, grouped (see [`MigrationCount`]).
    fn migration_counts(&self) -> impl Future<Output = StoreResult<Vec<MigrationCount>>> + Send;
}

/// Tenants.
pub trait TenantStore: Send + Sync + 'static {
    fn create_tenant(&self, tenant: &Tenant) -> impl Future<Output = StoreResult<()>> + Send;
    /// A tenant by id or by name.
    fn find_tenant(&self, id_or_name: &str) -> impl Future<Output = StoreResult<Option<Tenant>>> + Send;
    fn list_tenants(&self) -> impl Future<Output = StoreResult<Vec<Tenant>>> + Send;
    /// `NotFound` for an unknown id. The caller checks nothing still belongs to it.
    fn delete_tenant(&self, id: &str) -> impl Future<Output = StoreResult<()>> + Send;
}

/// Registered clients.
pub trait ClientStore: Send + Sync + 'static {
    fn create_client(&self, client: &Client) -> impl Future<Output = StoreResult<()>> + Send;
    fn find_client(&self, id: &str) -> impl Future<Output = StoreResult<Option<Client>>> + Send;
    fn list_clients(&self) -> impl Future<Output = StoreResult<Vec<Client>>> + Send;
    /// Up to `limit` clients whose id sorts after `after` (`""` for the first page), in id order:
    /// the table read a page at a time, never whole.
    fn clients_after(&self, after: &str, limit: u32) -> impl Future<Output = StoreResult<Vec<Client>>> + Send;
    /// Replaces the secret hash, keeping the old one valid until `previous_expires_at`
    /// (or not at all when `None`). `NotFound` for an unknown client.
    fn rotate_client_secret(
        &self,
        id: &str,
        new_hash: &str,
        previous_expires_at: Option<i64>,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// Replaces everything but the id, the secret and the creation time. `NotFound` if unknown.
    fn update_client(&self, client: &Client) -> impl Future<Output = StoreResult<()>> + Send;
    /// `NotFound` for an unknown id.
    fn delete_client(&self, id: &str) -> impl Future<Output = StoreResult<()>> + Send;
    /// The longest access-token lifetime any client has (for key retirement).
    fn max_client_token_ttl(&self) -> impl Future<Output = StoreResult<Option<i64>>> + Send;
}

/// Resource owners of the password grant.
pub trait UserStore: Send + Sync + 'static {
    fn create_user(&self, user: &User) -> impl Future<Output = StoreResult<()>> + Send;
    /// Users with this username in any of the given tenants.
    fn find_users(&self, username: &str, tenant_ids: &[String]) -> impl Future<Output = StoreResult<Vec<User>>> + Send;
    fn find_user(&self, id: &str) -> impl Future<Output = StoreResult<Option<User>>> + Send;
    /// The users of one tenant, by username.
    fn list_users(&self, tenant_id: &str) -> impl Future<Output = StoreResult<Vec<User>>> + Send;
    /// Replaces the password hash and the disabled mark. `NotFound` if unknown.
    fn update_user(&self, user: &User) -> impl Future<Output = StoreResult<()>> + Send;
    /// `NotFound` for an unknown id.
    fn delete_user(&self, id: &str) -> impl Future<Output = StoreResult<()>> + Send;
}

/// Refresh tokens, by the hash of their value, in families.
pub trait RefreshTokenStore: Send + Sync + 'static {
    fn insert_refresh_token(&self, token: &RefreshTokenRecord) -> impl Future<Output = StoreResult<()>> + Send;
    fn find_refresh_token(&self, hash: &str) -> impl Future<Output = StoreResult<Option<RefreshTokenRecord>>> + Send;
    /// Inserts `new` and marks `old_hash` used (at `new.created_at`) atomically, only if
    /// `old_hash` is still unused and unrevoked. Two concurrent callers: exactly one `Rotated`.
    fn rotate_refresh_token(
        &self,
        old_hash: &str,
        new: &RefreshTokenRecord,
    ) -> impl Future<Output = StoreResult<Rotation>> + Send;
    /// Revokes every token of a family; returns how many were still live.
    fn revoke_refresh_family(&self, family_id: &str, now: i64) -> impl Future<Output = StoreResult<u64>> + Send;
    /// Revokes every refresh token of a client or a user; returns how many were still unrevoked.
    fn revoke_refresh_tokens_of(
        &self,
        owner: TokenOwner<'_>,
        now: i64,
    ) -> impl Future<Output = StoreResult<u64>> + Send;
}

/// Revoked access tokens (RFC 7009), and the purge of what expired.
pub trait RevocationStore: Send + Sync + 'static {
    /// Records a revoked access token until it would have expired anyway.
    fn revoke_access_token(
        &self,
        jti: &str,
        client_id: &str,
        expires_at: i64,
        now: i64,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    fn is_access_token_revoked(&self, jti: &str) -> impl Future<Output = StoreResult<bool>> + Send;
    /// Makes every access token of `owner` issued at or before `at` inactive (a later cutoff
    /// replaces an earlier one, never the reverse).
    fn revoke_issued_before(&self, owner: TokenOwner<'_>, at: i64) -> impl Future<Output = StoreResult<()>> + Send;
    /// The latest cutoff of the client or the user (if any): tokens issued at or before it are
    /// inactive.
    fn revoked_before(
        &self,
        client_id: &str,
        user_id: Option<&str>,
    ) -> impl Future<Output = StoreResult<Option<i64>>> + Send;
    /// Deletes revocations, refresh tokens and seen jtis past their expiry; returns how many rows went.
    fn purge_expired(&self, now: i64) -> impl Future<Output = StoreResult<u64>> + Send;
}

/// Attempt slots of the brute-force throttle.
pub trait ThrottleStore: Send + Sync + 'static {
    /// Failures in the current window and the end of any block, for `key`.
    fn auth_failures(&self, key: &str) -> impl Future<Output = StoreResult<Option<AuthFailures>>> + Send;
    /// Takes one attempt slot for `key` before its secret is checked, in one atomic statement
    /// (see [`AttemptRules`]): granted while fewer than `threshold` slots are taken in the
    /// window; otherwise refused, and a block starts (the last one doubled, at most `max_block`)
    /// after which one more slot is free. A key that is blocked is refused and left as it is.
    fn reserve_attempt(
        &self,
        key: &str,
        now: i64,
        rules: &AttemptRules,
    ) -> impl Future<Output = StoreResult<Reservation>> + Send;
    /// Gives back a slot taken by [`ThrottleStore::reserve_attempt`] (the attempt succeeded, or was
    /// never checked): only within the window it was taken in.
    fn release_attempt(&self, key: &str, window_start: i64) -> impl Future<Output = StoreResult<()>> + Send;
    /// At most `limit` keys, in key order, that had failures in a window starting at or after
    /// `window_since`, or are blocked past `now`: what a node that starts following the change
    /// feed must know, every other key being clean.
    fn failing_keys(
        &self,
        window_since: i64,
        now: i64,
        limit: u32,
    ) -> impl Future<Output = StoreResult<Vec<(String, AuthFailures)>>> + Send;
}

/// Identifiers that may be used once: the `jti` of client assertions (RFC 7523 §3) and of DPoP
/// proofs (RFC 9449 §11.1).
pub trait ReplayStore: Send + Sync + 'static {
    /// Records `key` until `expires_at` (purged by [`RevocationStore::purge_expired`] after it);
    /// `true` the first time, `false` when it was already recorded. Atomic: of two concurrent
    /// callers with the same key, exactly one gets `true`.
    fn remember_jti(&self, key: &str, expires_at: i64) -> impl Future<Output = StoreResult<bool>> + Send;
}

/// The audit trail.
pub trait AuditStore: Send + Sync + 'static {
    fn insert_audit_events(&self, events: &[AuditEvent]) -> impl Future<Output = StoreResult<()>> + Send;
    /// Newest first.
    fn list_audit_events(&self, query: &AuditQuery) -> impl Future<Output = StoreResult<Vec<AuditEvent>>> + Send;
}

/// Signing keys, sealed.
pub trait KeyStore: Send + Sync + 'static {
    fn insert_key(&self, key: &StoredKey) -> impl Future<Output = StoreResult<()>> + Send;
    /// Every key, retired or not, oldest first.
    fn list_keys(&self) -> impl Future<Output = StoreResult<Vec<StoredKey>>> + Send;
    /// Stops publishing a key (no unexpired token carries its kid any more).
    fn retire_key(&self, kid: &str, now: i64) -> impl Future<Output = StoreResult<()>> + Send;
}

/// Telling the other nodes on the same database what changed (PostgreSQL: NOTIFY). Where one
/// process serves (SQLite, memory) there is no one to tell.
pub trait ChangeFeed: Send + Sync + 'static {
    fn announce(&self, change: &Change) -> impl Future<Output = ()> + Send;
}

/// Storage for everything Portero keeps: every capability. Code asks for the capabilities it
/// uses (`impl ThrottleStore`, `impl RefreshTokenStore`...); the pipeline holds the sum.
/// `impl Future + Send` throughout, so servers can spawn on it.
pub trait Store:
    TenantStore
    + ClientStore
    + UserStore
    + RefreshTokenStore
    + RevocationStore
    + ThrottleStore
    + ReplayStore
    + AuditStore
    + KeyStore
    + ChangeFeed
    + MigrationStore
{
}

impl<T> Store for T where
    T: TenantStore
        + ClientStore
        + UserStore
        + RefreshTokenStore
        + RevocationStore
        + ThrottleStore
        + ReplayStore
        + AuditStore
        + KeyStore
        + ChangeFeed
        + MigrationStore
{
}

impl From<StoreError> for crate::error::OAuthError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable(detail) => Self::temporarily_unavailable(detail),
            other => Self::server_error(other.to_string()),
        }
    }
}

/// Every capability trait, for code that holds a concrete store and calls its methods.
pub mod prelude {
    pub use super::{
        AuditStore, ChangeFeed, ClientStore, KeyStore, MigrationStore, RefreshTokenStore, ReplayStore, RevocationStore,
        Store, TenantStore, ThrottleStore, UserStore,
    };
}

#[cfg(test)]
mod tests {
    use super::Change;

    #[test]
    fn changes_travel_as_text_and_unknown_text_means_everything() {
        let changes = [
            Change::Client("a:b".into()),
            Change::Keys,
            Change::Blocked { key: "user:app:ana".into(), until: 1_764_000_000 },
            Change::Everything,
        ];
        for change in changes {
            assert_eq!(Change::decode(&change.encode()), change);
        }
        for unknown in ["blocked:soon:client:x", "blocked:12", "rotated:x", ""] {
            assert_eq!(Change::decode(unknown), Change::Everything, "{unknown}");
        }
    }
}
