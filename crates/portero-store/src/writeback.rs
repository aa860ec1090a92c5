//! Starts the kernel's writeback of the WAL soon after each commit, so SQLite's checkpoints do not
//! wait for it.
//!
//! Why (issue 15, BENCHMARKS.md "Goal 3: WAL writeback"): under `synchronous = NORMAL` a commit
//! only appends to the WAL in the page cache; every 1,000 pages the committing writer checkpoints,
//! which first syncs the WAL. Under refresh load that sync found about 4 MB of dirty WAL each
//! time and held the write thread (and every caller waiting on it) for 4-7 ms, 30-45 times a
//! second. Asking the kernel to start writing the WAL out right after a commit
//! (`sync_file_range(SYNC_FILE_RANGE_WRITE)`, which returns without waiting) leaves the
//! checkpoint's sync little to wait for. It changes no durability promise: what is synced, and
//! when, is still SQLite's; this only makes the disk start earlier.
//!
//! Linux only (the call is Linux's); elsewhere, and for in-memory databases, nothing starts.

use std::path::Path;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::time::Duration;

/// At most one writeback request per this long: enough to keep the disk busy between
/// checkpoints, few enough calls to cost nothing.
const EVERY: Duration = Duration::from_millis(2);

/// The write thread's side: `committed` after each commit. Nothing when writeback is off.
pub(crate) struct Writeback(Option<SyncSender<()>>);

impl Writeback {
    /// Starts the writeback thread for the WAL of `file` (nothing for in-memory databases or
    /// off Linux). The thread ends when this is dropped.
    pub(crate) fn start(file: &Path, memory: bool) -> Self {
        if memory || !cfg!(target_os = "linux") {
            return Self(None);
        }
        let wal = {
            let mut name = file.as_os_str().to_owned();
            name.push("-wal");
            std::path::PathBuf::from(name)
        };
        let (sender, commits) = mpsc::sync_channel(1);
        let started = std::thread::Builder::new().name("sqlite-writeback".into()).spawn(move || run(&wal, &commits));
        match started {
            Ok(_) => Self(Some(sender)),
            Err(error) => {
                tracing::warn!(%error, "no WAL writeback thread: checkpoints will wait for the disk");
                Self(None)
            }
        }
    }

    /// Notes a commit; never blocks (a request already pending covers this one).
    pub(crate) fn committed(&self) {
        if let Some(sender) = &self.0
            && let Err(TrySendError::Disconnected(())) = sender.try_send(())
        {
            tracing::debug!("the WAL writeback thread has stopped");
        }
    }
}

fn run(wal: &Path, commits: &Receiver<()>) {
    let mut file = None;
    while commits.recv().is_ok() {
        // Opened on first use: SQLite creates the WAL with the first write. The file then stays
        // while the write connection is open (SQLite resets it in place, never replaces it).
        if file.is_none() {
            file = std::fs::File::open(wal).ok();
        }
        if let Some(file) = &file {
            start_writeback(file);
        }
        std::thread::sleep(EVERY);
    }
}

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn start_writeback(file: &std::fs::File) {
    use std::os::fd::AsRawFd;
    // SAFETY: `sync_file_range` takes a file descriptor and three integers and touches no memory
    // of ours; the descriptor is valid while `file` is borrowed. Offset 0 and length 0 mean the
    // whole file; SYNC_FILE_RANGE_WRITE starts writeback of dirty pages without waiting for it.
    let status = unsafe { libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
    if status != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "WAL writeback request failed");
    }
}

#[cfg(not(target_os = "linux"))]
fn start_writeback(_file: &std::fs::File) {}

#[cfg(test)]
mod tests {
    use super::*;

    /// A commit only notes that there is something to write back: thousands in a row return at
    /// once whether the thread is asleep, has no WAL to open yet, or is writing one back (a
    /// blocking `committed` would hang this test).
    #[test]
    fn commits_never_wait_for_the_writeback() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let file = dir.path().join("w.db");
        let writeback = Writeback::start(&file, false);
        assert_eq!(writeback.0.is_some(), cfg!(target_os = "linux"));
        for _ in 0..10_000 {
            writeback.committed();
        }
        let connection = rusqlite::Connection::open(&file).expect("opens");
        connection
            .execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (x); INSERT INTO t VALUES (1);")
            .expect("writes");
        for _ in 0..10_000 {
            writeback.committed();
        }
        drop(writeback);
        let count: i64 = connection.query_row("SELECT COUNT(*) FROM t", [], |row| row.get(0)).expect("reads");
        assert_eq!(count, 1);
    }

    #[test]
    fn in_memory_databases_start_no_thread() {
        assert!(Writeback::start(Path::new("portero-memory"), true).0.is_none());
    }
}
