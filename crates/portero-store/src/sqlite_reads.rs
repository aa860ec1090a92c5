//! The refresh grant's one read on SQLite, run with rusqlite on the calling thread.
//!
//! A lookup by primary key in pages the OS has cached takes a few microseconds: less than
//! handing it to one of sqlx's connection threads and waking the task again when the row comes
//! back, which is what the refresh grant's profile was made of (issue 15). The connections are
//! read-only and kept for reuse; a caller that finds none idle opens one, so no caller waits for
//! another. Under WAL a reader never waits for the writer; `BUSY_TIMEOUT` bounds the rare wait
//! (a WAL recovery) so a stuck file cannot hold a runtime thread for long.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use portero_core::store::{RefreshTokenRecord, StoreError, StoreResult};
use rusqlite::{Connection, OpenFlags, OptionalExtension};

use super::rows::RefreshRow;
use super::writer::{map_err, open_flags_path};

/// Idle connections kept; more are opened under a burst and closed after it.
const MAX_IDLE: usize = 16;
const BUSY_TIMEOUT: Duration = Duration::from_millis(500);

const FIND_REFRESH: &str = "SELECT hash, family_id, client_id, subject, user_id, tenants, scopes, audiences, \
     auth_time, created_at, expires_at, used_at, revoked_at, jkt FROM refresh_tokens WHERE hash = ?1";

#[derive(Debug)]
pub(crate) struct Readers {
    file: PathBuf,
    memory: bool,
    /// `None` once closed (`Database::close`): reads are refused and the connections closed.
    idle: Mutex<Option<Vec<Connection>>>,
}

impl Readers {
    pub(crate) fn new(file: &Path, memory: bool) -> Self {
        Self { file: file.to_owned(), memory, idle: Mutex::new(Some(Vec::new())) }
    }

    pub(crate) fn find_refresh_token(&self, hash: &str) -> StoreResult<Option<RefreshTokenRecord>> {
        self.with(|c| c.prepare_cached(FIND_REFRESH)?.query_row([hash], RefreshRow::from_rusqlite).optional())
            .map(|row| row.map(Into::into))
    }

    /// Closes the idle connections and refuses reads from now on.
    pub(crate) fn close(&self) {
        self.idle().take();
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, Option<Vec<Connection>>> {
        self.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn with<T>(&self, read: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> StoreResult<T> {
        let idle = match self.idle().as_mut() {
            Some(idle) => idle.pop(),
            None => return Err(StoreError::Unavailable("the database is closed".into())),
        };
        let connection = match idle {
            Some(connection) => connection,
            None => self.open().map_err(map_err)?,
        };
        let answer = read(&connection).map_err(map_err);
        if let Some(idle) = self.idle().as_mut()
            && idle.len() < MAX_IDLE
        {
            idle.push(connection);
        }
        answer
    }

    fn open(&self) -> rusqlite::Result<Connection> {
        let (path, flags) = open_flags_path(&self.file, self.memory, OpenFlags::SQLITE_OPEN_READ_ONLY);
        let connection = Connection::open_with_flags(path, flags)?;
        connection.busy_timeout(BUSY_TIMEOUT)?;
        Ok(connection)
    }
}
