//! Credentials moved in from another provider (issue 14): the conditional rehash, first sight,
//! and the bulk import, written in one transaction.
//!
//! Users travel to the database as JSON, up to [`USERS_PER_STATEMENT`] per statement (as the
//! audit writer does it): SQLite looks bound parameters up by a linear scan, and one statement
//! per user would make 100,000 users 100,000 round trips.

use std::collections::HashMap;

use portero_core::store::{
    ExistingUser, ImportBatch, ImportedClient, MigrationCount, MigrationStore, Origin, StoreError, StoreResult,
    TokenOwner,
};

use super::{Backend, Database, join, map_err};

/// Users per INSERT of an import.
const USERS_PER_STATEMENT: usize = 5_000;

/// Imported users (`$1`: a JSON array of `[id, tenant_id, username, password_hash, created_at,
/// digest]`, `$2`: the import's time). A user that exists (`--update`) keeps its id, creation time
/// and disabled mark; a new one that clashes with a user written meanwhile fails the import.
const SQLITE_IMPORT_USERS: &str = "INSERT INTO users (id, tenant_id, username, password_hash, created_at, origin, \
     import_digest, imported_at) \
     SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'), \
     json_extract(value, '$[3]'), json_extract(value, '$[4]'), 'import', json_extract(value, '$[5]'), $2 \
     FROM json_each($1) WHERE true \
     ON CONFLICT (id) DO UPDATE SET password_hash = excluded.password_hash, origin = 'import', \
     import_digest = excluded.import_digest, imported_at = excluded.imported_at, migrated_at = NULL, \
     last_seen_at = NULL";

const POSTGRES_IMPORT_USERS: &str = "INSERT INTO users (id, tenant_id, username, password_hash, created_at, origin, \
     import_digest, imported_at) \
     SELECT e->>0, e->>1, e->>2, e->>3, (e->>4)::bigint, 'import', e->>5, $2 \
     FROM jsonb_array_elements($1::jsonb) AS e \
     ON CONFLICT (id) DO UPDATE SET password_hash = excluded.password_hash, origin = 'import', \
     import_digest = excluded.import_digest, imported_at = excluded.imported_at, migrated_at = NULL, \
     last_seen_at = NULL";

const INSERT_CLIENT: &str = concat!(
    "INSERT INTO clients (",
    client_columns!(),
    ", origin, import_digest, imported_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, \
     $15, $16, $17, $18, $19, $20, $21, $22, 'import', $23, $24)"
);

/// An imported client replacing the stored one (`--update`): its settings and secret hash; a
/// rotation's previous secret ends.
const REPLACE_CLIENT: &str = "UPDATE clients SET secret_hash = $2, grants = $3, scopes = $4, audiences = $5, \
     tenants = $6, token_ttl = $7, refresh_policy = $8, ignore_unknown_scopes = $9, locale = $10, \
     refresh_retry_window = $11, token_endpoint_auth_method = $12, previous_secret_hash = NULL, \
     previous_secret_expires_at = NULL, origin = 'import', import_digest = $13, imported_at = $14, \
     migrated_at = NULL, last_seen_at = NULL WHERE id = $1";

/// `[hash is not Portero's own, rehashed, seen]` as 0/1 columns, for the status counts.
macro_rules! state_columns {
    ($hash:literal) => {
        concat!(
            "CAST(CASE WHEN ",
            $hash,
            " LIKE '$s256$%' OR ",
            $hash,
            " LIKE '$argon2id$v=19$%' THEN 0 ELSE 1 END AS BIGINT), \
             CAST(CASE WHEN migrated_at IS NULL THEN 0 ELSE 1 END AS BIGINT), \
             CAST(CASE WHEN last_seen_at IS NULL THEN 0 ELSE 1 END AS BIGINT), COUNT(*)"
        )
    };
}

const CLIENT_COUNTS: &str = concat!(
    "SELECT tenants, origin, ",
    state_columns!("secret_hash"),
    " FROM clients WHERE origin IS NOT NULL GROUP BY 1, 2, 3, 4, 5"
);
const USER_COUNTS: &str = concat!(
    "SELECT tenant_id, origin, ",
    state_columns!("password_hash"),
    " FROM users WHERE origin IS NOT NULL GROUP BY 1, 2, 3, 4, 5"
);

/// The users of a batch as JSON arrays, in statements of at most [`USERS_PER_STATEMENT`].
fn user_chunks(batch: &ImportBatch) -> Vec<String> {
    batch
        .users
        .chunks(USERS_PER_STATEMENT)
        .map(|chunk| {
            let rows: Vec<serde_json::Value> = chunk
                .iter()
                .map(|u| {
                    serde_json::json!([
                        u.user.id,
                        u.user.tenant_id,
                        u.user.username,
                        u.user.password_hash,
                        u.user.created_at,
                        u.digest
                    ])
                })
                .collect();
            serde_json::Value::Array(rows).to_string()
        })
        .collect()
}

/// The whole batch inside the transaction `$tx`, users with `$users_sql`; `Err` rolls back.
macro_rules! write_batch {
    ($tx:expr, $batch:expr, $users_sql:expr) => {{
        let batch: &ImportBatch = $batch;
        for tenant in &batch.tenants {
            sqlx::query("INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3)")
                .bind(&tenant.id)
                .bind(&tenant.name)
                .bind(tenant.created_at)
                .execute(&mut *$tx)
                .await
                .map_err(map_err)?;
        }
        for imported in &batch.clients {
            let ImportedClient { client, digest, replaces } = imported;
            let grants: Vec<&str> = client.grants.iter().map(|g| g.as_str()).collect();
            let written = if *replaces {
                sqlx::query(REPLACE_CLIENT)
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
                    .bind(client.refresh_retry_window)
                    .bind(client.auth_method.map(|m| m.as_str()))
                    .bind(digest)
                    .bind(batch.at)
                    .execute(&mut *$tx)
                    .await
            } else {
                bind_client_columns!(sqlx::query(INSERT_CLIENT), client)
                    .bind(digest)
                    .bind(batch.at)
                    .execute(&mut *$tx)
                    .await
            };
            if written.map_err(map_err)?.rows_affected() != 1 {
                return Err(StoreError::Conflict(format!("client {:?} changed during the import", client.id)));
            }
        }
        for rows in user_chunks(batch) {
            sqlx::query($users_sql).bind(rows).bind(batch.at).execute(&mut *$tx).await.map_err(map_err)?;
        }
        Ok::<(), StoreError>(())
    }};
}

type CountRow = (String, Option<String>, i64, i64, i64, i64);

fn counts(kind: &'static str, rows: Vec<CountRow>) -> impl Iterator<Item = MigrationCount> {
    rows.into_iter().filter_map(move |(tenants, origin, legacy, rehashed, seen, count)| {
        Some(MigrationCount {
            kind,
            tenants: tenants.split(' ').filter(|t| !t.is_empty()).map(str::to_owned).collect(),
            origin: Origin::parse(origin.as_deref()?)?,
            legacy: legacy == 1,
            rehashed: rehashed == 1,
            seen: seen == 1,
            count,
        })
    })
}

impl MigrationStore for Database {
    async fn upgrade_hash(&self, owner: TokenOwner<'_>, old: &str, new: &str, now: i64) -> StoreResult<bool> {
        let sql = match owner {
            TokenOwner::Client(_) => {
                "UPDATE clients SET secret_hash = $3, migrated_at = $4, last_seen_at = COALESCE(last_seen_at, $4) \
                 WHERE id = $1 AND secret_hash = $2"
            }
            TokenOwner::User(_) => {
                "UPDATE users SET password_hash = $3, migrated_at = $4, last_seen_at = COALESCE(last_seen_at, $4) \
                 WHERE id = $1 AND password_hash = $2"
            }
        };
        let updated = with_writer!(self, |pool| sqlx::query(sql)
            .bind(owner.id())
            .bind(old)
            .bind(new)
            .bind(now)
            .execute(pool)
            .await
            .map(|d| d.rows_affected()))
        .map_err(map_err)?;
        Ok(updated == 1)
    }

    async fn mark_seen(&self, owner: TokenOwner<'_>, now: i64) -> StoreResult<()> {
        let sql = match owner {
            TokenOwner::Client(_) => "UPDATE clients SET last_seen_at = $2 WHERE id = $1 AND last_seen_at IS NULL",
            TokenOwner::User(_) => "UPDATE users SET last_seen_at = $2 WHERE id = $1 AND last_seen_at IS NULL",
        };
        with_writer!(self, |pool| sqlx::query(sql).bind(owner.id()).bind(now).execute(pool).await.map(drop))
            .map_err(map_err)
    }

    async fn client_import_digests(&self) -> StoreResult<HashMap<String, String>> {
        let sql = "SELECT id, import_digest FROM clients WHERE origin = 'import' AND import_digest IS NOT NULL";
        let rows = with_pool!(self, |pool| sqlx::query_as::<_, (String, String)>(sql).fetch_all(pool).await)
            .map_err(map_err)?;
        Ok(rows.into_iter().collect())
    }

    async fn users_for_import(&self, tenant_ids: &[String]) -> StoreResult<Vec<ExistingUser>> {
        let sql = "SELECT id, tenant_id, username, password_hash, created_at, \
                   CASE WHEN origin = 'import' THEN import_digest END FROM users WHERE tenant_id = $1";
        type Row = (String, String, String, String, i64, Option<String>);
        let mut users = Vec::new();
        for tenant in tenant_ids {
            let rows = with_pool!(self, |pool| sqlx::query_as::<_, Row>(sql).bind(tenant).fetch_all(pool).await)
                .map_err(map_err)?;
            users.extend(rows.into_iter().map(|(id, tenant_id, username, password_hash, created_at, digest)| {
                ExistingUser { id, tenant_id, username, password_hash, created_at, digest }
            }));
        }
        Ok(users)
    }

    async fn write_import(&self, batch: &ImportBatch) -> StoreResult<()> {
        match &self.backend {
            Backend::Sqlite(sqlite) => {
                let mut tx = sqlite.writer.begin().await.map_err(map_err)?;
                write_batch!(tx, batch, SQLITE_IMPORT_USERS)?;
                tx.commit().await.map_err(map_err)
            }
            Backend::Postgres(postgres) => {
                let mut tx = postgres.pool.begin().await.map_err(map_err)?;
                write_batch!(tx, batch, POSTGRES_IMPORT_USERS)?;
                tx.commit().await.map_err(map_err)
            }
        }
    }

    async fn record_upstream(&self, owner: TokenOwner<'_>, now: i64) -> StoreResult<()> {
        let sql = match owner {
            TokenOwner::Client(_) => {
                "UPDATE clients SET origin = 'upstream', imported_at = $2, last_seen_at = $2 WHERE id = $1"
            }
            TokenOwner::User(_) => {
                "UPDATE users SET origin = 'upstream', imported_at = $2, last_seen_at = $2 WHERE id = $1"
            }
        };
        with_writer!(self, |pool| sqlx::query(sql).bind(owner.id()).bind(now).execute(pool).await.map(drop))
            .map_err(map_err)
    }

    async fn migration_counts(&self) -> StoreResult<Vec<MigrationCount>> {
        let clients = with_pool!(self, |pool| sqlx::query_as::<_, CountRow>(CLIENT_COUNTS).fetch_all(pool).await)
            .map_err(map_err)?;
        let users = with_pool!(self, |pool| sqlx::query_as::<_, CountRow>(USER_COUNTS).fetch_all(pool).await)
            .map_err(map_err)?;
        Ok(counts("client", clients).chain(counts("user", users)).collect())
    }
}
