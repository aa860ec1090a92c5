//! The hot SQLite writes, as work for the write thread (see `writer`): each function runs on the
//! write connection inside a group's transaction. PostgreSQL runs the same logic as single
//! statements (see `rotation`, `replay` and `lib.rs`).

use portero_core::store::{AttemptRules, RefreshTokenRecord, Reservation, Rotation};
use rusqlite::{Connection, named_params, params};

use super::join;

/// The columns a refresh-token row is written with, in the order `insert_refresh_row` binds them.
macro_rules! refresh_columns {
    () => {
        "hash, family_id, client_id, subject, user_id, tenants, scopes, audiences, auth_time, created_at, \
         expires_at, used_at, revoked_at, rotated_from, jkt"
    };
}

const INSERT_REFRESH: &str = concat!(
    "INSERT INTO refresh_tokens (",
    refresh_columns!(),
    ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"
);

/// `?14` is `rotated_from`: the child goes in only while that parent is live.
const ROTATE_REFRESH: &str = concat!(
    "INSERT INTO refresh_tokens (",
    refresh_columns!(),
    ") SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15 WHERE EXISTS \
     (SELECT 1 FROM refresh_tokens WHERE hash = ?14 AND used_at IS NULL AND revoked_at IS NULL)"
);

/// Inserts a refresh token (`rotated_from` NULL: the first of its family).
pub(crate) fn insert_refresh_token(connection: &Connection, token: &RefreshTokenRecord) -> rusqlite::Result<()> {
    insert_refresh_row(connection, INSERT_REFRESH, token, None).map(drop)
}

/// Inserts the child only while its parent is live; the `refresh_tokens_mark_rotated` trigger
/// marks the parent used in the same statement. Two redemptions of one parent in one group run
/// one after the other on this connection, so the second finds the parent used.
pub(crate) fn rotate_refresh_token(
    connection: &Connection,
    old_hash: &str,
    new: &RefreshTokenRecord,
) -> rusqlite::Result<Rotation> {
    let inserted = insert_refresh_row(connection, ROTATE_REFRESH, new, Some(old_hash))?;
    Ok(if inserted == 1 { Rotation::Rotated } else { Rotation::AlreadyUsed })
}

/// Runs `sql` (cached by its text) with `token` bound in `REFRESH_COLUMNS` order; rows inserted.
fn insert_refresh_row(
    connection: &Connection,
    sql: &str,
    token: &RefreshTokenRecord,
    rotated_from: Option<&str>,
) -> rusqlite::Result<usize> {
    connection.prepare_cached(sql)?.execute(params![
        token.hash,
        token.family_id,
        token.client_id,
        token.subject,
        token.user_id,
        join(&token.tenants),
        join(&token.scopes),
        join(&token.audiences),
        token.auth_time,
        token.created_at,
        token.expires_at,
        token.used_at,
        token.revoked_at,
        rotated_from,
        token.jkt,
    ])
}

/// Records a replay key; true the first time (the primary key decides, across processes too).
pub(crate) fn remember_jti(connection: &Connection, key: &str, expires_at: i64) -> rusqlite::Result<bool> {
    let sql = "INSERT INTO seen_jtis (key, expires_at) VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING";
    Ok(connection.prepare_cached(sql)?.execute(params![key, expires_at])? == 1)
}

/// One batch of audit rows, as the JSON array `SQLITE_INSERT_AUDIT` reads.
pub(crate) fn insert_audit_rows(connection: &Connection, rows: &str) -> rusqlite::Result<()> {
    connection.prepare_cached(super::SQLITE_INSERT_AUDIT)?.execute([rows]).map(drop)
}

/// `RESERVE_ATTEMPT` (shared with PostgreSQL, so its parameters are `$1`..`$6`, bound by name).
pub(crate) fn reserve_attempt(
    connection: &Connection,
    key: &str,
    now: i64,
    rules: &AttemptRules,
) -> rusqlite::Result<Reservation> {
    let (until, window_start): (i64, i64) = connection.prepare_cached(super::RESERVE_ATTEMPT)?.query_row(
        named_params! {
            "$1": key,
            "$2": now,
            "$3": now - rules.window,
            "$4": rules.threshold.max(1),
            "$5": rules.base_block.min(rules.max_block).max(1),
            "$6": rules.max_block.max(1),
        },
        |row| Ok((row.get(0)?, row.get(1)?)),
    )?;
    Ok(if until > now { Reservation::Blocked { until } } else { Reservation::Granted { window_start } })
}

pub(crate) fn release_attempt(connection: &Connection, key: &str, window_start: i64) -> rusqlite::Result<()> {
    let sql = "UPDATE auth_failures SET failures = failures - 1 WHERE key = ?1 AND window_start = ?2 AND failures > 0";
    connection.prepare_cached(sql)?.execute(params![key, window_start]).map(drop)
}

/// Appends `change` (encoded) to `change_log`, dropping rows older than `keep_since`.
pub(crate) fn log_change(connection: &Connection, change: &str, now: i64, keep_since: i64) -> rusqlite::Result<()> {
    connection.prepare_cached("DELETE FROM change_log WHERE at < ?1")?.execute([keep_since])?;
    let insert = "INSERT INTO change_log (seq, change, at) SELECT COALESCE(MAX(seq), 0) + 1, ?1, ?2 FROM change_log";
    connection.prepare_cached(insert)?.execute(params![change, now]).map(drop)
}
