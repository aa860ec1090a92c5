//! SQLite's write thread: one thread owns the write connection and commits whatever work waits
//! for it in one transaction, so a burst of writes pays for one commit.
//!
//! Why a thread of its own (issue 15's profile): through sqlx, every statement on the SQLite
//! writer went from a tokio task to the connection's worker thread and its rows came back one
//! message at a time, several cross-thread wake-ups per statement on two saturated cores; the
//! refresh grant, which writes on every request, ran at a quarter of the client-credentials rate.
//! Here a caller hands its work over once and is woken once, after the commit.
//!
//! Each piece of work runs in a savepoint of the group's transaction: one that fails is undone
//! alone and answered with its error, the others commit. Every caller is answered only after the
//! COMMIT (or with the error that stopped it), so nobody is told of a write that is then lost.
//! The hot writes go here (rotations, replay records, audit batches, the throttle's slots, the
//! change log, new refresh tokens); rare ones (admin, migrations, import) stay on sqlx's writer
//! connection, and the two take turns on the file lock through `busy_timeout`.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use portero_core::store::{StoreError, StoreResult};
use rusqlite::{Connection, ErrorCode, OpenFlags, ffi};
use tokio::sync::{mpsc, oneshot};

use crate::writeback::Writeback;

/// Most pieces of work committed together.
const MAX_GROUP: usize = 512;
/// Work waiting for its group; more waits in the caller (the channel applies backpressure).
const QUEUE: usize = 8192;
/// A caller waits this long for its commit, then answers `Unavailable`; work whose caller gave
/// up before it ran is skipped, so a stuck disk cannot pile up writes nobody waits for.
const DEADLINE: Duration = Duration::from_secs(4);
/// As long as sqlx's writer may hold the file lock for one admin statement or import batch.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The handle callers send work through; cloning it is cheap. The thread ends (and closes the
/// connection) when the last handle is dropped.
#[derive(Clone, Debug)]
pub(crate) struct WriteThread {
    jobs: mpsc::Sender<Box<dyn Job>>,
    /// Set by `Database::close`: new work is refused, as sqlx's closed pools refuse theirs.
    closed: Arc<AtomicBool>,
}

impl WriteThread {
    /// Opens the write connection on `file` (the same file sqlx opened and migrated) and starts
    /// the thread. `memory` names one of sqlx's shared-cache in-memory databases.
    pub(crate) fn start(file: &Path, memory: bool) -> StoreResult<Self> {
        let connection = open(file, memory).map_err(map_err)?;
        let (sender, jobs) = mpsc::channel(QUEUE);
        let writeback = Writeback::start(file, memory);
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || commit_groups(&connection, jobs, &writeback))
            .map_err(|e| StoreError::Other(format!("starting the SQLite writer thread: {e}")))?;
        Ok(Self { jobs: sender, closed: Arc::new(AtomicBool::new(false)) })
    }

    /// Refuses new work from now on; what is queued still commits and is answered. The thread
    /// ends once the last handle is dropped.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }

    /// Runs `work` on the write connection in the next group and answers once that committed.
    pub(crate) async fn run<T, F>(&self, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let stopped = || StoreError::Unavailable("the SQLite writer has stopped".into());
        if self.closed.load(Ordering::Acquire) {
            return Err(StoreError::Unavailable("the database is closed".into()));
        }
        let (reply, answer) = oneshot::channel();
        let job = Box::new(Pending { work: Some(work), outcome: None, reply });
        // The deadline covers waiting for room in the queue too: a stuck file fails callers in
        // time rather than holding them behind a full queue.
        let sent_and_answered = async {
            self.jobs.send(job).await.map_err(|_| stopped())?;
            answer.await.map_err(|_| stopped())?
        };
        match tokio::time::timeout(DEADLINE, sent_and_answered).await {
            Ok(answer) => answer,
            Err(_) => Err(StoreError::Unavailable("the database did not commit the write in time".into())),
        }
    }
}

/// What to open for `file`, as sqlx opens it: an in-memory database is named by `file` in
/// SQLite's shared cache, so every connection of this process reaches the same one.
pub(crate) fn open_flags_path(file: &Path, memory: bool, access: OpenFlags) -> (String, OpenFlags) {
    let flags = access | OpenFlags::SQLITE_OPEN_URI | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let flags =
        if memory { flags | OpenFlags::SQLITE_OPEN_MEMORY | OpenFlags::SQLITE_OPEN_SHARED_CACHE } else { flags };
    (file.display().to_string(), flags)
}

fn open(file: &Path, memory: bool) -> rusqlite::Result<Connection> {
    let (path, flags) = open_flags_path(file, memory, OpenFlags::SQLITE_OPEN_READ_WRITE);
    let connection = Connection::open_with_flags(path, flags)?;
    connection.busy_timeout(BUSY_TIMEOUT)?;
    // The same settings as sqlx's connections (see `Database::connect`).
    connection.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")?;
    connection.set_prepared_statement_cache_capacity(64);
    // Checkpoints stay SQLite's own, in the commit that crosses 1,000 WAL pages. A thread of their
    // own was measured (BENCHMARKS.md, issue 15): unbounded, the WAL grew without end under load;
    // bounded (a backstop, or a restart once long), p99 rose about fourfold. What the checkpoint
    // waited for, the disk writing the WAL out, is started early instead (see `writeback`).
    Ok(connection)
}

/// One caller's work as the thread sees it: run it inside the transaction, then answer.
trait Job: Send {
    /// Runs the work (unless its caller gave up); false when it failed and must be undone.
    fn run(&mut self, connection: &Connection) -> bool;
    /// Answers the caller: its own outcome, or `failure` when the group did not commit.
    fn answer(self: Box<Self>, failure: Option<&StoreError>);
}

struct Pending<T, F> {
    work: Option<F>,
    outcome: Option<rusqlite::Result<T>>,
    reply: oneshot::Sender<StoreResult<T>>,
}

impl<T, F> Job for Pending<T, F>
where
    T: Send,
    F: FnOnce(&Connection) -> rusqlite::Result<T> + Send,
{
    fn run(&mut self, connection: &Connection) -> bool {
        let Some(work) = self.work.take().filter(|_| !self.reply.is_closed()) else { return true };
        let outcome = work(connection);
        let ok = outcome.is_ok();
        self.outcome = Some(outcome);
        ok
    }

    fn answer(self: Box<Self>, failure: Option<&StoreError>) {
        let answer = match (failure, self.outcome) {
            (Some(failure), _) => Err(failure.clone()),
            (None, Some(outcome)) => outcome.map_err(map_err),
            (None, None) => return,
        };
        let _ = self.reply.send(answer);
    }
}

fn commit_groups(connection: &Connection, mut jobs: mpsc::Receiver<Box<dyn Job>>, writeback: &Writeback) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    while let Some(first) = jobs.blocking_recv() {
        group.push(first);
        while group.len() < MAX_GROUP
            && let Ok(job) = jobs.try_recv()
        {
            group.push(job);
        }
        let failure = commit_group(connection, &mut group).err();
        if failure.is_none() {
            writeback.committed();
        }
        if let Some(error) = &failure {
            tracing::warn!(%error, writes = group.len(), "a group of SQLite writes did not commit");
            if !connection.is_autocommit() {
                let _ = connection.execute_batch("ROLLBACK");
            }
        }
        for job in group.drain(..) {
            job.answer(failure.as_ref());
        }
    }
}

/// Runs every job of `group` in one transaction, each in a savepoint, and commits.
fn commit_group(connection: &Connection, group: &mut [Box<dyn Job>]) -> StoreResult<()> {
    let statement = |sql: &str| connection.prepare_cached(sql).and_then(|mut s| s.execute([])).map_err(map_err);
    statement("BEGIN IMMEDIATE")?;
    for job in group.iter_mut() {
        statement("SAVEPOINT job")?;
        // A job that panics fails alone (its caller hears the writer stopped), not the thread.
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job.run(connection)));
        if ran.unwrap_or(false) {
            statement("RELEASE job")?;
        } else if connection.is_autocommit() {
            // Some errors (a full disk, an I/O error) roll the whole transaction back: what ran
            // before this job is gone too, so the group fails as one.
            return Err(StoreError::Unavailable("SQLite rolled back a group of writes".into()));
        } else {
            statement("ROLLBACK TO job")?;
            statement("RELEASE job")?;
        }
    }
    statement("COMMIT").map(drop)
}

/// The store's reading of a SQLite error, as `map_err` in `lib.rs` reads sqlx's.
pub(crate) fn map_err(error: rusqlite::Error) -> StoreError {
    let message = error.to_string();
    match error.sqlite_error() {
        Some(e) if matches!(e.code, ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            StoreError::Unavailable(message)
        }
        Some(e) if matches!(e.extended_code, ffi::SQLITE_CONSTRAINT_PRIMARYKEY | ffi::SQLITE_CONSTRAINT_UNIQUE) => {
            StoreError::Conflict(message)
        }
        Some(e) if e.extended_code == ffi::SQLITE_CONSTRAINT_FOREIGNKEY => StoreError::NotFound(message),
        Some(e) if matches!(e.code, ErrorCode::DiskFull | ErrorCode::SystemIoFailure | ErrorCode::CannotOpen) => {
            StoreError::Unavailable(message)
        }
        _ => StoreError::Other(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A new file with one table `t`, and a write thread on it (the folder lives as long as the
    /// first element).
    fn fresh() -> (tempfile::TempDir, std::path::PathBuf, WriteThread) {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let file = dir.path().join("w.db");
        let connection = Connection::open(&file).expect("opens");
        connection.execute_batch("CREATE TABLE t (id TEXT PRIMARY KEY)").expect("creates");
        let thread = WriteThread::start(&file, false).expect("starts");
        (dir, file, thread)
    }

    fn count(file: &Path) -> i64 {
        let connection = Connection::open(file).expect("opens");
        connection.query_row("SELECT COUNT(*) FROM t", [], |row| row.get(0)).expect("counts")
    }

    /// Hundreds of callers at once, so groups hold many jobs: a job that fails is undone alone
    /// (its first insert too), and every other job of its group commits.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_job_is_undone_alone_and_its_group_commits() {
        let (_dir, file, thread) = fresh();
        let calls = (0..400).map(|i| {
            let thread = thread.clone();
            tokio::spawn(async move {
                thread
                    .run(move |c| {
                        c.execute("INSERT INTO t (id) VALUES (?1)", [format!("row-{i}")])?;
                        if i % 2 == 1 {
                            // The same key again: the constraint fails this job only.
                            c.execute("INSERT INTO t (id) VALUES (?1)", [format!("row-{i}")])?;
                        }
                        Ok(i)
                    })
                    .await
            })
        });
        let answers: Vec<_> = futures_join(calls).await;
        for (i, answer) in answers.into_iter().enumerate() {
            match answer {
                Ok(n) => assert!(i % 2 == 0 && n == i, "job {i} answered Ok({n})"),
                Err(StoreError::Conflict(_)) => assert!(i % 2 == 1, "job {i} failed"),
                Err(other) => panic!("job {i}: {other:?}"),
            }
        }
        assert_eq!(count(&file), 200, "the 200 jobs that succeeded, and nothing of the 200 that failed");
    }

    #[tokio::test]
    async fn a_caller_that_gave_up_before_its_job_ran_writes_nothing() {
        let (_dir, file, thread) = fresh();
        // The first job holds the thread while the second caller gives up.
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let first = tokio::spawn({
            let thread = thread.clone();
            async move { thread.run(move |_| wait.recv().map_err(|_| rusqlite::Error::InvalidQuery)).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let second = thread.run(|c| c.execute("INSERT INTO t (id) VALUES ('late')", []));
        assert!(tokio::time::timeout(Duration::from_millis(50), second).await.is_err(), "still waiting");
        release.send(()).expect("the first job waits");
        first.await.expect("joins").expect("the first job commits");
        thread.run(|_| Ok(())).await.expect("a later job runs");
        assert_eq!(count(&file), 0, "the abandoned insert never ran");
    }

    #[tokio::test]
    async fn a_job_that_panics_fails_alone_and_the_thread_goes_on() {
        let (_dir, file, thread) = fresh();
        let panicked = thread.run(|c| -> rusqlite::Result<()> {
            c.execute("INSERT INTO t (id) VALUES ('undone')", [])?;
            panic!("a bug in a job")
        });
        assert!(matches!(panicked.await, Err(StoreError::Unavailable(_))));
        thread.run(|c| c.execute("INSERT INTO t (id) VALUES ('next')", [])).await.expect("the thread still writes");
        assert_eq!(count(&file), 1, "only the later job's row; the panicked job's insert was undone");
    }

    async fn futures_join<T>(handles: impl Iterator<Item = tokio::task::JoinHandle<T>>) -> Vec<T> {
        let mut answers = Vec::new();
        for handle in handles.collect::<Vec<_>>() {
            answers.push(handle.await.expect("joins"));
        }
        answers
    }
}
