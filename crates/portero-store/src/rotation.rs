//! Group commit for refresh-token rotations.
//!
//! Each rotation is still its own guarded statement (the child is inserted only while its parent
//! is live, and the parent is marked used by the same statement), but the rotations that arrive
//! while one group is committing are run together in one transaction and pay for one commit: one
//! WAL append on SQLite, one WAL flush on PostgreSQL. A caller is answered only after its group
//! committed. Within a group the statements run one after another, so two redemptions of the
//! same parent still have exactly one winner; across nodes the row lock of the parent decides.
//! Parents are taken in hash order, so two nodes' groups cannot deadlock on each other.

use std::time::Duration;

use portero_core::store::{RefreshTokenRecord, Rotation, StoreError, StoreResult};
use tokio::sync::{mpsc, oneshot};

use super::{Backend, POSTGRES_ROTATE, SQLITE_ROTATE, join, map_err};

/// Most rotations committed together.
const MAX_GROUP: usize = 256;
/// Rotations waiting for their group; more wait in the caller (the channel applies backpressure).
const QUEUE: usize = 4096;
/// A group that does not commit within this is abandoned: its callers get `Unavailable`, and a
/// hung connection cannot hold every later rotation behind it.
const GROUP_DEADLINE: Duration = Duration::from_secs(4);

struct Job {
    old_hash: String,
    new: RefreshTokenRecord,
    reply: oneshot::Sender<StoreResult<Rotation>>,
}

#[derive(Clone, Debug)]
pub(crate) struct Queue(mpsc::Sender<Job>);

pub(crate) fn start(backend: Backend) -> Queue {
    let (sender, jobs) = mpsc::channel(QUEUE);
    tokio::spawn(commit_groups(backend, jobs));
    Queue(sender)
}

impl Queue {
    pub(crate) async fn rotate(&self, old_hash: &str, new: &RefreshTokenRecord) -> StoreResult<Rotation> {
        let stopped = || StoreError::Unavailable("the rotation writer has stopped".into());
        let (reply, answer) = oneshot::channel();
        let job = Job { old_hash: old_hash.to_owned(), new: new.clone(), reply };
        self.0.send(job).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

async fn commit_groups(backend: Backend, mut jobs: mpsc::Receiver<Job>) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    while jobs.recv_many(&mut group, MAX_GROUP).await > 0 {
        group.sort_by(|a, b| a.old_hash.cmp(&b.old_hash));
        let outcome = match tokio::time::timeout(GROUP_DEADLINE, rotate_group(&backend, &group)).await {
            Ok(Ok(rotated)) => Ok(rotated),
            Ok(Err(error)) => Err(map_err(error)),
            Err(_) => Err(StoreError::Unavailable("the database did not commit the rotations in time".into())),
        };
        match outcome {
            Ok(rotated) => {
                for (job, rotated) in group.drain(..).zip(rotated) {
                    let _ = job.reply.send(Ok(if rotated { Rotation::Rotated } else { Rotation::AlreadyUsed }));
                }
            }
            Err(error) => {
                tracing::warn!(%error, rotations = group.len(), "refresh-token rotation group failed");
                for job in group.drain(..) {
                    let _ = job.reply.send(Err(error.clone()));
                }
            }
        }
    }
}

/// Runs every rotation of `group` in one transaction (none for a group of one); which of them
/// found their parent live.
async fn rotate_group(backend: &Backend, group: &[Job]) -> Result<Vec<bool>, sqlx::Error> {
    let mut rotated = Vec::with_capacity(group.len());
    match (backend, group) {
        (Backend::Sqlite(sqlite), [job]) => {
            let done = insert_refresh!(SQLITE_ROTATE, job.new).bind(&job.old_hash).execute(&sqlite.writer).await?;
            rotated.push(done.rows_affected() == 1);
        }
        (Backend::Postgres(pool), [job]) => {
            let done = insert_refresh!(POSTGRES_ROTATE, job.new).bind(&job.old_hash).execute(pool).await?;
            rotated.push(done.rows_affected() == 1);
        }
        (Backend::Sqlite(sqlite), _) => {
            let mut tx = sqlite.writer.begin().await?;
            for job in group {
                let done = insert_refresh!(SQLITE_ROTATE, job.new).bind(&job.old_hash).execute(&mut *tx).await?;
                rotated.push(done.rows_affected() == 1);
            }
            tx.commit().await?;
        }
        (Backend::Postgres(pool), _) => {
            let mut tx = pool.begin().await?;
            for job in group {
                let done = insert_refresh!(POSTGRES_ROTATE, job.new).bind(&job.old_hash).execute(&mut *tx).await?;
                rotated.push(done.rows_affected() == 1);
            }
            tx.commit().await?;
        }
    }
    Ok(rotated)
}
