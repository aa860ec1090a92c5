//! SQLite and PostgreSQL storage for Portero, behind `portero_core::store::Store`.
//!
//! Both backends run the same SQL: statements use `$N` placeholders, which PostgreSQL and
//! SQLite both understand, and only portable types. The [`Database`] enum picks the pool from
//! the URL; `with_pool!` runs one statement text against whichever pool it holds.

#![warn(clippy::unwrap_used)]

mod rows;

use std::str::FromStr;
use std::time::Duration;

use portero_core::audit::{AuditEvent, AuditQuery};
use portero_core::store::{
    AttemptRules, AuditStore, AuthFailures, Change, ChangeFeed, Client, ClientStore, KeyStore, RefreshTokenRecord,
    RefreshTokenStore, ReplayStore, Reservation, RevocationStore, Rotation, StoreError, StoreResult, StoredKey, Tenant,
    TenantStore, ThrottleStore, TokenOwner, User, UserStore,
};
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

use rows::{AuditRow, ClientRow, KeyRow, RefreshRow, TenantRow, UserRow, join};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// How long a query waits for a connection before the database counts as unavailable: shorter
/// than the server's request deadline, so an outage is answered by a clear 503.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// PostgreSQL connections of the audit writer (one batch at a time, plus one for a reconnect).
const AUDIT_CONNECTIONS: u32 = 2;

/// A connection pool to one of the supported databases, and what commits its hot writes in groups.
#[derive(Clone, Debug)]
pub struct Database {
    backend: Backend,
}

#[derive(Clone, Debug)]
enum Backend {
    Sqlite(Sqlite),
    Postgres(Postgres),
}

/// SQLite allows one writer at a time. The hot writes (every token request's) go through the
/// write thread, which commits what waits in one transaction (see `writer`); the rare ones
/// (admin, migrations, import) through sqlx's single writer connection, and the two take turns
/// on the file lock. Reads run in parallel on the others (WAL), which are opened read-only, so a
/// statement that writes can only succeed on a writer.
#[derive(Clone, Debug)]
pub struct Sqlite {
    reader: SqlitePool,
    writer: SqlitePool,
    write_thread: writer::WriteThread,
    /// The refresh grant's lookup, on the calling thread (see `sqlite_reads`).
    direct_reads: std::sync::Arc<sqlite_reads::Readers>,
}

#[derive(Clone, Debug)]
pub(crate) struct Postgres {
    pool: PgPool,
    /// Refresh-token rotations, committed in groups (see `rotation`).
    rotations: rotation::Queue,
    /// Replay records (`seen_jtis`), committed in groups (see `replay`).
    replays: replay::Queue,
    /// The audit writer's own connections, so audit batches do not queue behind token traffic.
    audit: PgPool,
}

/// Runs the same expression against whichever pool `db` holds (for SQLite, the readers).
macro_rules! with_pool {
    ($db:expr, |$pool:ident| $body:expr) => {
        match &$db.backend {
            Backend::Sqlite(sqlite) => {
                let $pool = &sqlite.reader;
                $body
            }
            Backend::Postgres($crate::Postgres { pool: $pool, .. }) => $body,
        }
    };
}

/// As `with_pool!`, for statements that write (for SQLite, the single writer).
macro_rules! with_writer {
    ($db:expr, |$pool:ident| $body:expr) => {
        match &$db.backend {
            Backend::Sqlite(sqlite) => {
                let $pool = &sqlite.writer;
                $body
            }
            Backend::Postgres($crate::Postgres { pool: $pool, .. }) => $body,
        }
    };
}

impl Database {
    /// Opens `sqlite://PATH` (created if missing) or `postgres://...`, and migrates the schema.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        /// The database holds password hashes: a new file is created owner-only (0600, whatever
        /// the umask) before SQLite opens it. SQLite gives its `-wal` and `-shm` files the main
        /// file's permissions, so they come out 0600 too.
        fn create_private(url: &str, path: &std::path::Path) -> StoreResult<()> {
            let special = in_memory(url) || url.contains("mode=ro");
            if special || path.as_os_str().is_empty() || path.to_string_lossy().starts_with("file:") {
                return Ok(());
            }
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            match options.open(path) {
                // The umask may have taken bits off the mode: set it exactly.
                #[cfg(unix)]
                Ok(file) => {
                    use std::os::unix::fs::PermissionsExt;
                    file.set_permissions(std::fs::Permissions::from_mode(0o600))
                        .map_err(|e| StoreError::Other(format!("setting the mode of {}: {e}", path.display())))
                }
                #[cfg(not(unix))]
                Ok(_) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    // An older Portero (or the operator) made it: say so, leave the choice to them.
                    #[cfg(unix)]
                    {
                        use std::os::unix::fs::PermissionsExt;
                        if std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o077 != 0) {
                            tracing::warn!(
                                path = %path.display(),
                                "the database file is readable by other users; it holds password hashes: chmod 600 it \
                                 (and its -wal and -shm files)"
                            );
                        }
                    }
                    Ok(())
                }
                Err(e) => Err(StoreError::Other(format!("creating the SQLite file {}: {e}", path.display()))),
            }
        }

        let db = if url.starts_with("sqlite:") {
            let options =
                SqliteConnectOptions::from_str(url).map_err(|e| StoreError::Other(format!("bad SQLite URL: {e}")))?;
            create_private(url, options.get_filename())?;
            let options = options
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true);
            let writer = SqlitePoolOptions::new()
                .max_connections(1)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .connect_with(options.clone())
                .await
                .map_err(map_err)?;
            // Migrated (and the in-memory database created) before the write thread opens it.
            migrate_sqlite(&writer).await?;
            let memory = in_memory(url);
            let write_thread = writer::WriteThread::start(options.get_filename(), memory)?;
            let direct_reads = std::sync::Arc::new(sqlite_reads::Readers::new(options.get_filename(), memory));
            // Readers are opened read-only: a write sent to the wrong pool fails at once
            // instead of queueing on the file lock behind the writer.
            let reader = SqlitePoolOptions::new()
                .max_connections(8)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .connect_with(options.read_only(true))
                .await
                .map_err(map_err)?;
            Backend::Sqlite(Sqlite { reader, writer, write_thread, direct_reads })
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .connect(url)
                .await
                .map_err(map_err)?;
            MIGRATOR.run(&pool).await.map_err(|e| StoreError::Other(format!("migration failed: {e}")))?;
            let audit = PgPoolOptions::new()
                .max_connections(AUDIT_CONNECTIONS)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .connect_lazy(url)
                .map_err(map_err)?;
            let (rotations, replays) = (rotation::start(pool.clone()), replay::start(pool.clone()));
            Backend::Postgres(Postgres { pool, rotations, replays, audit })
        } else {
            return Err(StoreError::Other("the database URL must start with sqlite: or postgres:".into()));
        };
        Ok(Self { backend: db })
    }

    /// Answers whether the database responds (for readiness checks).
    pub async fn ping(&self) -> StoreResult<()> {
        with_pool!(self, |pool| sqlx::query("SELECT 1").execute(pool).await.map(|_| ()).map_err(map_err))
    }

    pub async fn close(&self) {
        match &self.backend {
            Backend::Sqlite(sqlite) => {
                sqlite.write_thread.close();
                sqlite.direct_reads.close();
                sqlite.reader.close().await;
                sqlite.writer.close().await;
            }
            Backend::Postgres(postgres) => {
                postgres.pool.close().await;
                postgres.audit.close().await;
            }
        }
    }

    /// Runs a `DELETE ... WHERE id = $1`; `NotFound` (naming `what`) when no row had that id.
    async fn delete_by_id(&self, sql: &'static str, id: &str, what: &str) -> StoreResult<()> {
        let deleted =
            with_writer!(self, |pool| sqlx::query(sql).bind(id).execute(pool).await.map(|d| d.rows_affected()))
                .map_err(map_err)?;
        found_one(deleted, || format!("{what} {id:?}"))
    }

    /// The PostgreSQL pool, for tools and tests that run their own statements.
    pub fn postgres_pool(&self) -> Option<&PgPool> {
        match &self.backend {
            Backend::Postgres(postgres) => Some(&postgres.pool),
            Backend::Sqlite(_) => None,
        }
    }
}

/// `NotFound` when a statement that names one row by its key changed none.
fn found_one(rows: u64, what: impl FnOnce() -> String) -> StoreResult<()> {
    if rows == 0 { Err(StoreError::NotFound(what())) } else { Ok(()) }
}

/// Whether a `sqlite:` URL names an in-memory database (no file to create or open by path).
fn in_memory(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
}

async fn migrate_sqlite(writer: &SqlitePool) -> StoreResult<()> {
    MIGRATOR.run(writer).await.map_err(|e| StoreError::Other(format!("migration failed: {e}")))?;
    sqlx::query(SQLITE_SETUP).execute(writer).await.map(drop).map_err(map_err)
}

fn map_err(error: sqlx::Error) -> StoreError {
    match &error {
        // A connection that breaks mid-handshake shows up as a protocol error; so does a
        // server that closes it on shutdown. Either way the database is not there.
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(error.to_string()),
        // SQLSTATE class 08 (connection exception), 57P0x (shutdown, crash, cannot connect now),
        // and 40001/40P01 (serialization failure, deadlock: retrying succeeds).
        sqlx::Error::Database(db)
            if db.code().is_some_and(|c| c.starts_with("08") || c.starts_with("57P0") || c.starts_with("40")) =>
        {
            StoreError::Unavailable(error.to_string())
        }
        // SQLite busy or locked (any extended code): the file lock stayed taken past busy_timeout,
        // as the write thread reports it (see `writer::map_err`).
        sqlx::Error::Database(db)
            if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some()
                && db.code().and_then(|c| c.parse::<i32>().ok()).is_some_and(|c| matches!(c & 0xff, 5 | 6)) =>
        {
            StoreError::Unavailable(error.to_string())
        }
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(db.message().to_owned()),
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => StoreError::NotFound(db.message().to_owned()),
        _ => StoreError::Other(error.to_string()),
    }
}

/// A retried batch may already be in (its commit's answer was lost): rows already there are skipped.
/// (`WHERE true` lets SQLite parse the `ON CONFLICT` after a `SELECT`.)
const SQLITE_INSERT_AUDIT: &str = "INSERT INTO audit_events (id, at, kind, outcome, client_id, subject, grant_type, \
     source, detail, count, authenticated) \
     SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'), \
     json_extract(value, '$[3]'), json_extract(value, '$[4]'), json_extract(value, '$[5]'), \
     json_extract(value, '$[6]'), json_extract(value, '$[7]'), json_extract(value, '$[8]'), \
     json_extract(value, '$[9]'), json_extract(value, '$[10]') FROM json_each($1) WHERE true \
     ON CONFLICT (id) DO NOTHING";

const POSTGRES_INSERT_AUDIT: &str = "INSERT INTO audit_events (id, at, kind, outcome, client_id, subject, grant_type, \
     source, detail, count, authenticated) \
     SELECT e->>0, (e->>1)::bigint, e->>2, e->>3, e->>4, e->>5, e->>6, e->>7, e->>8, (e->>9)::bigint, \
     (e->>10)::boolean FROM jsonb_array_elements($1::jsonb) AS e ON CONFLICT (id) DO NOTHING";

const INSERT_REFRESH: &str = "INSERT INTO refresh_tokens (hash, family_id, client_id, subject, user_id, tenants, \
     scopes, audiences, auth_time, created_at, expires_at, used_at, revoked_at, jkt) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)";

/// One attempt slot for a key, taken or refused in one statement, so that however many requests
/// arrive at once (on however many nodes) at most `threshold` slots are taken per window and the
/// check and the count cannot drift apart. `$1` key, `$2` now, `$3` the oldest window start still
/// current, `$4` threshold, `$5` first block, `$6` longest block. In an UPDATE's SET, every column
/// read is the old row's (both backends), so each CASE below decides from the same state:
/// blocked → unchanged; window over → a new window with this slot; slots left → one more;
/// none left → no slot, failures one below the threshold (one try after the block) and a block
/// twice the last. Answers `(blocked_until, window_start)`: blocked when the first is in the future.
const RESERVE_ATTEMPT: &str = "INSERT INTO auth_failures (key, failures, window_start, blocked_until, last_block) \
     VALUES ($1, 1, $2, 0, 0) ON CONFLICT (key) DO UPDATE SET \
     failures = CASE WHEN auth_failures.blocked_until > $2 THEN auth_failures.failures \
         WHEN auth_failures.window_start < $3 THEN 1 \
         WHEN auth_failures.failures < $4 THEN auth_failures.failures + 1 ELSE $4 - 1 END, \
     window_start = CASE WHEN auth_failures.blocked_until <= $2 AND auth_failures.window_start < $3 THEN $2 \
         ELSE auth_failures.window_start END, \
     last_block = CASE WHEN auth_failures.blocked_until > $2 THEN auth_failures.last_block \
         WHEN auth_failures.window_start < $3 THEN 0 \
         WHEN auth_failures.failures < $4 THEN auth_failures.last_block \
         WHEN auth_failures.last_block = 0 THEN $5 \
         WHEN auth_failures.last_block * 2 > $6 THEN $6 ELSE auth_failures.last_block * 2 END, \
     blocked_until = CASE WHEN auth_failures.blocked_until > $2 THEN auth_failures.blocked_until \
         WHEN auth_failures.window_start < $3 THEN 0 \
         WHEN auth_failures.failures < $4 THEN auth_failures.blocked_until \
         WHEN auth_failures.last_block = 0 THEN $2 + $5 \
         WHEN auth_failures.last_block * 2 > $6 THEN $2 + $6 ELSE $2 + auth_failures.last_block * 2 END \
     RETURNING blocked_until, window_start";

/// SQLite-only schema that PostgreSQL does without (its rotation uses a CTE). Idempotent.
/// Rotations (see `rotation`) insert the child with `rotated_from` set; this marks the parent used.
const SQLITE_SETUP: &str = "CREATE TRIGGER IF NOT EXISTS refresh_tokens_mark_rotated \
     AFTER INSERT ON refresh_tokens WHEN NEW.rotated_from IS NOT NULL \
     BEGIN UPDATE refresh_tokens SET used_at = NEW.created_at WHERE hash = NEW.rotated_from; END";

/// `INSERT_REFRESH` with a `RefreshTokenRecord` bound as `$1`..`$14`.
macro_rules! insert_refresh {
    ($token:expr) => {
        sqlx::query(INSERT_REFRESH)
            .bind(&$token.hash)
            .bind(&$token.family_id)
            .bind(&$token.client_id)
            .bind(&$token.subject)
            .bind(&$token.user_id)
            .bind(join(&$token.tenants))
            .bind(join(&$token.scopes))
            .bind(join(&$token.audiences))
            .bind($token.auth_time)
            .bind($token.created_at)
            .bind($token.expires_at)
            .bind($token.used_at)
            .bind($token.revoked_at)
            .bind(&$token.jkt)
    };
}

mod replay;
mod rotation;
mod sqlite_reads;
mod sqlite_writes;
mod writeback;
mod writer;

/// The columns of `users`, as a literal for `concat!`.
macro_rules! user_columns {
    () => {
        "id, tenant_id, username, password_hash, disabled_at, created_at, last_seen_at"
    };
}

/// The columns of `clients`, as a literal for `concat!` (sqlx wants static SQL text).
macro_rules! client_columns {
    () => {
        "id, secret_hash, grants, scopes, audiences, tenants, token_ttl, refresh_policy, \
         ignore_unknown_scopes, locale, created_at, previous_secret_hash, previous_secret_expires_at, \
         refresh_retry_window, token_endpoint_auth_method, disabled_at, jwks, require_dpop, jwks_uri, last_seen_at, \
         tls_client_auth_subject_dn, tls_client_certificate_bound_access_tokens"
    };
}

/// Binds a `Client` to `client_columns!()` as `$1`..`$22`, in that order: one list for every
/// INSERT of a whole client (create, import), so a new column cannot be forgotten in one of them.
macro_rules! bind_client_columns {
    ($query:expr, $client:expr) => {{
        let client: &portero_core::store::Client = $client;
        let grants: Vec<&str> = client.grants.iter().map(|g| g.as_str()).collect();
        $query
            .bind(&client.id)
            .bind(&client.secret_hash)
            .bind(grants.join(" "))
            .bind(join(&client.scopes))
            .bind(join(&client.audiences))
            .bind(join(&client.tenants))
            .bind(client.token_ttl)
            .bind(client.refresh_policy.as_str())
            .bind(client.ignore_unknown_scopes)
            .bind(&client.locale)
            .bind(client.created_at)
            .bind(client.previous_secret.as_ref().map(|p| &p.hash))
            .bind(client.previous_secret.as_ref().map(|p| p.expires_at))
            .bind(client.refresh_retry_window)
            .bind(client.auth_method.map(|m| m.as_str()))
            .bind(client.disabled_at)
            .bind(&client.jwks)
            .bind(client.require_dpop)
            .bind(&client.jwks_uri)
            .bind(client.last_seen_at)
            .bind(&client.tls_subject_dn)
            .bind(client.tls_bound_tokens)
    }};
}

mod migration;

impl TenantStore for Database {
    async fn create_tenant(&self, tenant: &Tenant) -> StoreResult<()> {
        let sql = "INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3)";
        with_writer!(self, |pool| sqlx::query(sql)
            .bind(&tenant.id)
            .bind(&tenant.name)
            .bind(tenant.created_at)
            .execute(pool)
            .await
            .map(|_| ()))
        .map_err(map_err)
    }

    async fn find_tenant(&self, id_or_name: &str) -> StoreResult<Option<Tenant>> {
        let sql = "SELECT id, name, created_at FROM tenants WHERE id = $1 OR name = $1 ORDER BY id = $1 DESC LIMIT 1";
        let row =
            with_pool!(self, |pool| sqlx::query_as::<_, TenantRow>(sql).bind(id_or_name).fetch_optional(pool).await)
                .map_err(map_err)?;
        Ok(row.map(Into::into))
    }

    async fn delete_tenant(&self, id: &str) -> StoreResult<()> {
        self.delete_by_id("DELETE FROM tenants WHERE id = $1", id, "tenant").await
    }

    async fn list_tenants(&self) -> StoreResult<Vec<Tenant>> {
        let sql = "SELECT id, name, created_at FROM tenants ORDER BY name";
        let rows =
            with_pool!(self, |pool| sqlx::query_as::<_, TenantRow>(sql).fetch_all(pool).await).map_err(map_err)?;
        Ok(rows.into_iter().map(Into::into).collect())
    }
}

impl ClientStore for Database {
    async fn create_client(&self, client: &Client) -> StoreResult<()> {
        let sql = concat!(
            "INSERT INTO clients (",
            client_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, \
             $21, $22)"
        );
        with_writer!(self, |pool| bind_client_columns!(sqlx::query(sql), client).execute(pool).await.map(|_| ()))
            .map_err(map_err)
    }

    async fn find_client(&self, id: &str) -> StoreResult<Option<Client>> {
        let sql = concat!("SELECT ", client_columns!(), " FROM clients WHERE id = $1");
        let row = with_pool!(self, |pool| sqlx::query_as::<_, ClientRow>(sql).bind(id).fetch_optional(pool).await)
            .map_err(map_err)?;
        row.map(TryInto::try_into).transpose()
    }

    async fn list_clients(&self) -> StoreResult<Vec<Client>> {
        let sql = concat!("SELECT ", client_columns!(), " FROM clients ORDER BY id");
        let rows =
            with_pool!(self, |pool| sqlx::query_as::<_, ClientRow>(sql).fetch_all(pool).await).map_err(map_err)?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn clients_after(&self, after: &str, limit: u32) -> StoreResult<Vec<Client>> {
        let sql = concat!("SELECT ", client_columns!(), " FROM clients WHERE id > $1 ORDER BY id LIMIT $2");
        let rows = with_pool!(self, |pool| sqlx::query_as::<_, ClientRow>(sql)
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await)
        .map_err(map_err)?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn rotate_client_secret(
        &self,
        id: &str,
        new_hash: &str,
        previous_expires_at: Option<i64>,
    ) -> StoreResult<()> {
        // The outgoing hash moves to `previous_secret_hash` in the same statement, so two
        // concurrent rotations cannot both keep the same old secret alive.
        let sql = "UPDATE clients SET previous_secret_hash = CASE WHEN $3 IS NULL THEN NULL ELSE secret_hash END, \
                   previous_secret_expires_at = $3, secret_hash = $2 WHERE id = $1";
        let updated = with_writer!(self, |pool| sqlx::query(sql)
            .bind(id)
            .bind(new_hash)
            .bind(previous_expires_at)
            .execute(pool)
            .await
            .map(|d| d.rows_affected()))
        .map_err(map_err)?;
        if updated == 0 {
            return Err(StoreError::NotFound(format!("client {id:?}")));
        }
        Ok(())
    }

    async fn update_client(&self, client: &Client) -> StoreResult<()> {
        let sql = "UPDATE clients SET grants = $2, scopes = $3, audiences = $4, tenants = $5, token_ttl = $6, \
                   refresh_policy = $7, ignore_unknown_scopes = $8, locale = $9, refresh_retry_window = $10, \
                   token_endpoint_auth_method = $11, disabled_at = $12, jwks = $13, require_dpop = $14, \
                   jwks_uri = $15, tls_client_auth_subject_dn = $16, tls_client_certificate_bound_access_tokens = $17 \
                   WHERE id = $1";
        let grants: Vec<&str> = client.grants.iter().map(|g| g.as_str()).collect();
        let updated = with_writer!(self, |pool| sqlx::query(sql)
            .bind(&client.id)
            .bind(grants.join(" "))
            .bind(join(&client.scopes))
            .bind(join(&client.audiences))
            .bind(join(&client.tenants))
            .bind(client.token_ttl)
            .bind(client.refresh_policy.as_str())
            .bind(client.ignore_unknown_scopes)
            .bind(&client.locale)
            .bind(client.refresh_retry_window)
            .bind(client.auth_method.map(|m| m.as_str()))
            .bind(client.disabled_at)
            .bind(&client.jwks)
            .bind(client.require_dpop)
            .bind(&client.jwks_uri)
            .bind(&client.tls_subject_dn)
            .bind(client.tls_bound_tokens)
            .execute(pool)
            .await
            .map(|d| d.rows_affected()))
        .map_err(map_err)?;
        found_one(updated, || format!("client {:?}", client.id))
    }

    async fn delete_client(&self, id: &str) -> StoreResult<()> {
        self.delete_by_id("DELETE FROM clients WHERE id = $1", id, "client").await
    }

    async fn max_client_token_ttl(&self) -> StoreResult<Option<i64>> {
        let sql = "SELECT MAX(token_ttl) FROM clients";
        with_pool!(self, |pool| sqlx::query_scalar::<_, Option<i64>>(sql).fetch_one(pool).await).map_err(map_err)
    }
}

impl UserStore for Database {
    async fn create_user(&self, user: &User) -> StoreResult<()> {
        let sql = concat!("INSERT INTO users (", user_columns!(), ") VALUES ($1, $2, $3, $4, $5, $6, $7)");
        with_writer!(self, |pool| sqlx::query(sql)
            .bind(&user.id)
            .bind(&user.tenant_id)
            .bind(&user.username)
            .bind(&user.password_hash)
            .bind(user.disabled_at)
            .bind(user.created_at)
            .bind(user.last_seen_at)
            .execute(pool)
            .await
            .map(|_| ()))
        .map_err(map_err)
    }

    async fn find_users(&self, username: &str, tenant_ids: &[String]) -> StoreResult<Vec<User>> {
        // One row per tenant at most (UNIQUE (tenant_id, username)); the tenant filter is done
        // here rather than with a variable-length IN list.
        let sql = concat!("SELECT ", user_columns!(), " FROM users WHERE username = $1 ORDER BY id");
        let rows = with_pool!(self, |pool| sqlx::query_as::<_, UserRow>(sql).bind(username).fetch_all(pool).await)
            .map_err(map_err)?;
        Ok(rows.into_iter().map(User::from).filter(|u| tenant_ids.contains(&u.tenant_id)).collect())
    }

    async fn find_user(&self, id: &str) -> StoreResult<Option<User>> {
        let sql = concat!("SELECT ", user_columns!(), " FROM users WHERE id = $1");
        let row = with_pool!(self, |pool| sqlx::query_as::<_, UserRow>(sql).bind(id).fetch_optional(pool).await)
            .map_err(map_err)?;
        Ok(row.map(User::from))
    }

    async fn list_users(&self, tenant_id: &str) -> StoreResult<Vec<User>> {
        let sql = concat!("SELECT ", user_columns!(), " FROM users WHERE tenant_id = $1 ORDER BY username");
        let rows = with_pool!(self, |pool| sqlx::query_as::<_, UserRow>(sql).bind(tenant_id).fetch_all(pool).await)
            .map_err(map_err)?;
        Ok(rows.into_iter().map(User::from).collect())
    }

    async fn update_user(&self, user: &User) -> StoreResult<()> {
        let sql = "UPDATE users SET password_hash = $2, disabled_at = $3 WHERE id = $1";
        let updated = with_writer!(self, |pool| sqlx::query(sql)
            .bind(&user.id)
            .bind(&user.password_hash)
            .bind(user.disabled_at)
            .execute(pool)
            .await
            .map(|d| d.rows_affected()))
        .map_err(map_err)?;
        found_one(updated, || format!("user {:?}", user.id))
    }

    async fn delete_user(&self, id: &str) -> StoreResult<()> {
        self.delete_by_id("DELETE FROM users WHERE id = $1", id, "user").await
    }
}

impl RefreshTokenStore for Database {
    async fn insert_refresh_token(&self, token: &RefreshTokenRecord) -> StoreResult<()> {
        match &self.backend {
            Backend::Sqlite(sqlite) => {
                let token = token.clone();
                sqlite.write_thread.run(move |c| sqlite_writes::insert_refresh_token(c, &token)).await
            }
            Backend::Postgres(postgres) => {
                insert_refresh!(token).execute(&postgres.pool).await.map(drop).map_err(map_err)
            }
        }
    }

    async fn find_refresh_token(&self, hash: &str) -> StoreResult<Option<RefreshTokenRecord>> {
        let sql = "SELECT hash, family_id, client_id, subject, user_id, tenants, scopes, audiences, auth_time, \
                   created_at, expires_at, used_at, revoked_at, jkt FROM refresh_tokens WHERE hash = $1";
        if let Backend::Sqlite(sqlite) = &self.backend {
            return sqlite.direct_reads.find_refresh_token(hash);
        }
        let row = with_pool!(self, |pool| sqlx::query_as::<_, RefreshRow>(sql).bind(hash).fetch_optional(pool).await)
            .map_err(map_err)?;
        Ok(row.map(Into::into))
    }

    async fn rotate_refresh_token(&self, old_hash: &str, new: &RefreshTokenRecord) -> StoreResult<Rotation> {
        match &self.backend {
            Backend::Sqlite(sqlite) => {
                let (old_hash, new) = (old_hash.to_owned(), new.clone());
                sqlite.write_thread.run(move |c| sqlite_writes::rotate_refresh_token(c, &old_hash, &new)).await
            }
            Backend::Postgres(postgres) => postgres.rotations.rotate(old_hash, new).await,
        }
    }

    async fn revoke_refresh_tokens_of(&self, owner: TokenOwner<'_>, now: i64) -> StoreResult<u64> {
        let sql = match owner {
            TokenOwner::Client(_) => {
                "UPDATE refresh_tokens SET revoked_at = $1 WHERE client_id = $2 AND revoked_at IS NULL"
            }
            TokenOwner::User(_) => {
                "UPDATE refresh_tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL"
            }
        };
        with_writer!(self, |pool| sqlx::query(sql)
            .bind(now)
            .bind(owner.id())
            .execute(pool)
            .await
            .map(|d| d.rows_affected()))
        .map_err(map_err)
    }

    async fn revoke_refresh_family(&self, family_id: &str, now: i64) -> StoreResult<u64> {
        let sql = "UPDATE refresh_tokens SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL";
        with_writer!(self, |pool| sqlx::query(sql)
            .bind(now)
            .bind(family_id)
            .execute(pool)
            .await
            .map(|d| d.rows_affected()))
        .map_err(map_err)
    }
}

impl RevocationStore for Database {
    async fn revoke_access_token(&self, jti: &str, client_id: &str, expires_at: i64, now: i64) -> StoreResult<()> {
        // Revoking twice is not an error (RFC 7009 §2.2: the answer is the same).
        let sql = "INSERT INTO revoked_access_tokens (jti, client_id, expires_at, revoked_at) VALUES ($1, $2, $3, $4) \
                   ON CONFLICT (jti) DO NOTHING";
        with_writer!(self, |pool| sqlx::query(sql)
            .bind(jti)
            .bind(client_id)
            .bind(expires_at)
            .bind(now)
            .execute(pool)
            .await
            .map(|_| ()))
        .map_err(map_err)
    }

    async fn revoke_issued_before(&self, owner: TokenOwner<'_>, at: i64) -> StoreResult<()> {
        let sql = "INSERT INTO revocation_cutoffs (owner_kind, owner_id, revoked_before) VALUES ($1, $2, $3) \
                   ON CONFLICT (owner_kind, owner_id) DO UPDATE SET revoked_before = \
                   CASE WHEN revocation_cutoffs.revoked_before > $3 THEN revocation_cutoffs.revoked_before ELSE $3 END";
        with_writer!(self, |pool| sqlx::query(sql)
            .bind(owner.kind())
            .bind(owner.id())
            .bind(at)
            .execute(pool)
            .await
            .map(|_| ()))
        .map_err(map_err)
    }

    async fn revoked_before(&self, client_id: &str, user_id: Option<&str>) -> StoreResult<Option<i64>> {
        let sql = "SELECT MAX(revoked_before) FROM revocation_cutoffs \
                   WHERE (owner_kind = 'client' AND owner_id = $1) OR (owner_kind = 'user' AND owner_id = $2)";
        with_pool!(self, |pool| sqlx::query_scalar::<_, Option<i64>>(sql)
            .bind(client_id)
            .bind(user_id)
            .fetch_one(pool)
            .await)
        .map_err(map_err)
    }

    async fn is_access_token_revoked(&self, jti: &str) -> StoreResult<bool> {
        let sql = "SELECT COUNT(*) FROM revoked_access_tokens WHERE jti = $1";
        let count = with_pool!(self, |pool| sqlx::query_scalar::<_, i64>(sql).bind(jti).fetch_one(pool).await)
            .map_err(map_err)?;
        Ok(count > 0)
    }

    async fn purge_expired(&self, now: i64) -> StoreResult<u64> {
        let revocations = "DELETE FROM revoked_access_tokens WHERE expires_at < $1";
        let refresh = "DELETE FROM refresh_tokens WHERE expires_at < $1";
        // A day without failures and no block: the record has no use left.
        let failures = "DELETE FROM auth_failures WHERE window_start < $1 - 86400 AND blocked_until < $1";
        let audit = "DELETE FROM audit_events WHERE at < $1 - 7776000"; // 90 days
        let jtis = "DELETE FROM seen_jtis WHERE expires_at < $1";
        let mut purged = 0;
        for sql in [revocations, refresh, failures, audit, jtis] {
            purged +=
                with_writer!(self, |pool| sqlx::query(sql).bind(now).execute(pool).await.map(|d| d.rows_affected()))
                    .map_err(map_err)?;
        }
        Ok(purged)
    }
}

impl ReplayStore for Database {
    async fn remember_jti(&self, key: &str, expires_at: i64) -> StoreResult<bool> {
        match &self.backend {
            Backend::Sqlite(sqlite) => {
                let key = key.to_owned();
                sqlite.write_thread.run(move |c| sqlite_writes::remember_jti(c, &key, expires_at)).await
            }
            Backend::Postgres(postgres) => postgres.replays.remember(key, expires_at).await,
        }
    }
}

impl ThrottleStore for Database {
    async fn auth_failures(&self, key: &str) -> StoreResult<Option<AuthFailures>> {
        let sql = "SELECT failures, window_start, blocked_until FROM auth_failures WHERE key = $1";
        let row =
            with_pool!(self, |pool| sqlx::query_as::<_, (i64, i64, i64)>(sql).bind(key).fetch_optional(pool).await)
                .map_err(map_err)?;
        Ok(row.map(|(failures, window_start, blocked_until)| AuthFailures { failures, window_start, blocked_until }))
    }

    async fn failing_keys(&self, window_since: i64, now: i64, limit: u32) -> StoreResult<Vec<(String, AuthFailures)>> {
        let sql = "SELECT key, failures, window_start, blocked_until FROM auth_failures \
                   WHERE (failures > 0 AND window_start >= $1) OR blocked_until > $2 ORDER BY key LIMIT $3";
        let rows = with_pool!(self, |pool| sqlx::query_as::<_, (String, i64, i64, i64)>(sql)
            .bind(window_since)
            .bind(now)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await)
        .map_err(map_err)?;
        Ok(rows
            .into_iter()
            .map(|(key, failures, window_start, blocked_until)| {
                (key, AuthFailures { failures, window_start, blocked_until })
            })
            .collect())
    }

    async fn reserve_attempt(&self, key: &str, now: i64, rules: &AttemptRules) -> StoreResult<Reservation> {
        let pool = match &self.backend {
            Backend::Sqlite(sqlite) => {
                let (key, rules) = (key.to_owned(), *rules);
                return sqlite.write_thread.run(move |c| sqlite_writes::reserve_attempt(c, &key, now, &rules)).await;
            }
            Backend::Postgres(postgres) => &postgres.pool,
        };
        let (until, window_start) = sqlx::query_as::<_, (i64, i64)>(RESERVE_ATTEMPT)
            .bind(key)
            .bind(now)
            .bind(now - rules.window)
            .bind(rules.threshold.max(1))
            .bind(rules.base_block.min(rules.max_block).max(1))
            .bind(rules.max_block.max(1))
            .fetch_one(pool)
            .await
            .map_err(map_err)?;
        Ok(if until > now { Reservation::Blocked { until } } else { Reservation::Granted { window_start } })
    }

    async fn release_attempt(&self, key: &str, window_start: i64) -> StoreResult<()> {
        let pool = match &self.backend {
            Backend::Sqlite(sqlite) => {
                let key = key.to_owned();
                return sqlite.write_thread.run(move |c| sqlite_writes::release_attempt(c, &key, window_start)).await;
            }
            Backend::Postgres(postgres) => &postgres.pool,
        };
        let sql =
            "UPDATE auth_failures SET failures = failures - 1 WHERE key = $1 AND window_start = $2 AND failures > 0";
        sqlx::query(sql).bind(key).bind(window_start).execute(pool).await.map(drop).map_err(map_err)
    }
}

impl AuditStore for Database {
    async fn insert_audit_events(&self, events: &[AuditEvent]) -> StoreResult<()> {
        if events.is_empty() {
            return Ok(());
        }
        // The whole batch travels as one JSON parameter: SQLite looks bound parameters up by
        // a linear scan, so thousands of them would make a batch quadratic.
        let rows: Vec<serde_json::Value> = events
            .iter()
            .map(|e| {
                serde_json::json!([
                    e.id,
                    e.at,
                    e.kind,
                    e.outcome,
                    e.client_id,
                    e.subject,
                    e.grant_type,
                    e.source,
                    e.detail,
                    e.count,
                    e.authenticated
                ])
            })
            .collect();
        let rows = serde_json::Value::Array(rows).to_string();
        match &self.backend {
            Backend::Sqlite(sqlite) => {
                sqlite.write_thread.run(move |c| sqlite_writes::insert_audit_rows(c, &rows)).await
            }
            Backend::Postgres(postgres) => {
                sqlx::query(POSTGRES_INSERT_AUDIT).bind(rows).execute(&postgres.audit).await.map(drop).map_err(map_err)
            }
        }
    }

    async fn list_audit_events(&self, query: &AuditQuery) -> StoreResult<Vec<AuditEvent>> {
        let sql = "SELECT id, at, kind, outcome, client_id, subject, grant_type, source, detail, count, authenticated \
                   FROM audit_events \
                   WHERE ($1 IS NULL OR at >= $1) AND ($2 IS NULL OR client_id = $2) AND ($3 IS NULL OR kind = $3) \
                   ORDER BY at DESC, id DESC LIMIT $4";
        let rows = with_pool!(self, |pool| sqlx::query_as::<_, AuditRow>(sql)
            .bind(query.since)
            .bind(&query.client_id)
            .bind(&query.kind)
            .bind(query.limit.clamp(1, 100_000))
            .fetch_all(pool)
            .await)
        .map_err(map_err)?;
        Ok(rows.into_iter().map(Into::into).collect())
    }
}

impl KeyStore for Database {
    async fn insert_key(&self, key: &StoredKey) -> StoreResult<()> {
        let sql = "INSERT INTO signing_keys (kid, alg, sealed_private_key, created_at, activate_at, retired_at) \
                   VALUES ($1, $2, $3, $4, $5, $6)";
        with_writer!(self, |pool| sqlx::query(sql)
            .bind(&key.kid)
            .bind(&key.alg)
            .bind(&key.sealed_private_key)
            .bind(key.created_at)
            .bind(key.activate_at)
            .bind(key.retired_at)
            .execute(pool)
            .await
            .map(|_| ()))
        .map_err(map_err)
    }

    async fn list_keys(&self) -> StoreResult<Vec<StoredKey>> {
        let sql = "SELECT kid, alg, sealed_private_key, created_at, activate_at, retired_at FROM signing_keys \
                   ORDER BY created_at, kid";
        let rows = with_pool!(self, |pool| sqlx::query_as::<_, KeyRow>(sql).fetch_all(pool).await).map_err(map_err)?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn retire_key(&self, kid: &str, now: i64) -> StoreResult<()> {
        let sql = "UPDATE signing_keys SET retired_at = $1 WHERE kid = $2 AND retired_at IS NULL";
        with_writer!(self, |pool| sqlx::query(sql).bind(now).bind(kid).execute(pool).await.map(|_| ())).map_err(map_err)
    }
}

/// The channel nodes on one PostgreSQL database tell each other what changed on.
const CHANGES_CHANNEL: &str = "portero_changes";

/// How often a SQLite server reads the change log, and how long rows stay in it.
const CHANGE_POLL: Duration = Duration::from_secs(1);
const CHANGE_LOG_KEEP_SECONDS: i64 = 3600;

impl ChangeFeed for Database {
    /// PostgreSQL: a NOTIFY every node's listener hears. SQLite: a row in `change_log`, which
    /// the server reads within a second (the CLI is another process on the same file).
    async fn announce(&self, change: &Change) {
        let sent = match &self.backend {
            Backend::Postgres(postgres) => sqlx::query("SELECT pg_notify($1, $2)")
                .bind(CHANGES_CHANNEL)
                .bind(change.encode())
                .execute(&postgres.pool)
                .await
                .map(drop)
                .map_err(map_err),
            Backend::Sqlite(sqlite) => {
                let (change, now) = (change.encode(), unix_now());
                let keep_since = now - CHANGE_LOG_KEEP_SECONDS;
                sqlite.write_thread.run(move |c| sqlite_writes::log_change(c, &change, now, keep_since)).await
            }
        };
        if let Err(error) = sent {
            // The change is made; other nodes see it when their caches expire.
            tracing::warn!(%error, "could not tell the other nodes of a change");
        }
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

impl Database {
    /// The changes other nodes and processes (and this one) announce, as they arrive.
    /// `Change::Everything` comes first once the feed is live (the LISTEN is in place, or the
    /// newest `change_log` row is read), and again after the PostgreSQL listener lost its
    /// connection or a SQLite read failed: what was announced before is unknown, so whatever a
    /// node read before that moment must be read again.
    pub fn changes(&self) -> Option<tokio::sync::mpsc::Receiver<Change>> {
        let (sender, receiver) = tokio::sync::mpsc::channel(1024);
        match &self.backend {
            Backend::Postgres(postgres) => drop(tokio::spawn(listen(postgres.pool.clone(), sender))),
            Backend::Sqlite(sqlite) => drop(tokio::spawn(poll_change_log(sqlite.reader.clone(), sender))),
        }
        Some(receiver)
    }
}

/// Reads `change_log` every [`CHANGE_POLL`], from the newest row at start on.
async fn poll_change_log(reader: SqlitePool, changes: tokio::sync::mpsc::Sender<Change>) {
    let newest = "SELECT COALESCE(MAX(seq), 0) FROM change_log";
    let read = "SELECT seq, change FROM change_log WHERE seq > $1 ORDER BY seq LIMIT 1000";
    let mut seen: Option<i64> = None;
    loop {
        let Some(after) = seen else {
            seen = sqlx::query_scalar(newest).fetch_one(&reader).await.ok();
            if seen.is_some() && changes.send(Change::Everything).await.is_err() {
                return;
            }
            tokio::time::sleep(CHANGE_POLL).await;
            continue;
        };
        tokio::time::sleep(CHANGE_POLL).await;
        match sqlx::query_as::<_, (i64, String)>(read).bind(after).fetch_all(&reader).await {
            Ok(rows) => {
                for (seq, change) in rows {
                    seen = Some(seq);
                    if changes.send(Change::decode(&change)).await.is_err() {
                        return;
                    }
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot read the change log; dropping every cached client");
                seen = None;
            }
        }
    }
}

async fn listen(pool: PgPool, changes: tokio::sync::mpsc::Sender<Change>) {
    loop {
        let mut listener = match sqlx::postgres::PgListener::connect_with(&pool).await {
            Ok(listener) => listener,
            Err(error) => {
                tracing::warn!(%error, "cannot listen for changes; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if let Err(error) = listener.listen(CHANGES_CHANNEL).await {
            tracing::warn!(%error, "cannot listen for changes; retrying");
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        // Live from here on: what anyone read before may already be stale.
        if changes.send(Change::Everything).await.is_err() {
            return;
        }
        loop {
            match listener.try_recv().await {
                Ok(Some(notice)) => {
                    if changes.send(Change::decode(notice.payload())).await.is_err() {
                        return;
                    }
                }
                // The connection was lost, and notices with it. Reconnect here rather than in the
                // listener's next call, so that `Change::Everything` comes once the LISTEN is back
                // in place: a node that re-read its state at the moment of the loss would miss what
                // was announced while it was away.
                Ok(None) => {
                    tracing::warn!("the change feed's connection was lost; reconnecting");
                    break;
                }
                Err(error) => {
                    tracing::warn!(%error, "listening for changes failed; reconnecting");
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sqlite_readers_cannot_write() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let db = Database::connect(&format!("sqlite://{}", dir.path().join("p.db").display())).await.expect("opens");
        let Backend::Sqlite(sqlite) = &db.backend else { unreachable!("a SQLite URL opens SQLite") };
        let write = "INSERT INTO tenants (id, name, created_at) VALUES ('t', 'n', 0)";
        assert!(sqlx::query(write).execute(&sqlite.reader).await.is_err(), "the readers are read-only");
        sqlx::query(write).execute(&sqlite.writer).await.expect("the writer writes");
        let read = "SELECT COUNT(*) FROM tenants";
        assert_eq!(sqlx::query_scalar::<_, i64>(read).fetch_one(&sqlite.reader).await.expect("reads"), 1);
    }

    /// After `close`, SQLite refuses reads and writes as PostgreSQL's closed pool does.
    #[tokio::test]
    async fn sqlite_refuses_work_once_closed() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let db = Database::connect(&format!("sqlite://{}", dir.path().join("p.db").display())).await.expect("opens");
        db.remember_jti("before", i64::MAX).await.expect("writes while open");
        db.close().await;
        assert!(matches!(db.remember_jti("after", i64::MAX).await, Err(StoreError::Unavailable(_))));
        assert!(matches!(db.find_refresh_token("h").await, Err(StoreError::Unavailable(_))));
    }

    /// The write thread opens sqlx's shared in-memory database, not a new empty one.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_in_memory_writes_through_the_write_thread() {
        let db = Database::connect("sqlite::memory:").await.expect("opens");
        let token = RefreshTokenRecord {
            hash: "h".into(),
            family_id: "f".into(),
            client_id: "c".into(),
            subject: "s".into(),
            user_id: None,
            tenants: vec![],
            scopes: vec!["api".into()],
            audiences: vec![],
            auth_time: 1,
            created_at: 1,
            expires_at: i64::MAX,
            used_at: None,
            revoked_at: None,
            jkt: None,
        };
        db.insert_refresh_token(&token).await.expect("the write thread writes");
        let found = db.find_refresh_token("h").await.expect("reads").expect("the reader sees the row");
        assert_eq!(found.scopes, token.scopes);
        // Shared-cache locks are per table: the write thread, sqlx's writer and the readers at
        // once wait them out (unlock_notify in rusqlite and sqlx) instead of failing.
        let tasks: Vec<_> = (0..16)
            .map(|task| {
                let (db, mut token) = (db.clone(), token.clone());
                tokio::spawn(async move {
                    for i in 0..100 {
                        token.hash = format!("h{task}-{i}");
                        db.insert_refresh_token(&token).await?;
                        db.remember_jti(&token.hash, i64::MAX).await?;
                        db.revoke_refresh_family("another family", 1).await?;
                        assert!(db.find_refresh_token(&token.hash).await?.is_some());
                    }
                    Ok::<_, StoreError>(())
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("joins").expect("no lock error");
        }
    }
}
