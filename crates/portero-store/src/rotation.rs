//! Group commit for refresh-token rotations on PostgreSQL (SQLite's go through its write thread,
//! see `writer` and `sqlite_writes`, which groups every kind of write).
//!
//! Every child is still inserted only while its parent is live, and the parent is marked used by
//! the same statement, but the rotations that arrive while one group is committing are committed
//! together and pay for one commit (one WAL flush). A caller is answered only after its group
//! committed. The group is one statement (a conditional UPDATE of the parents feeding the INSERT
//! of the children); across nodes the row lock of the parent decides. A group never holds two
//! redemptions of the same parent: the second waits for the next group, where it finds the parent
//! used. A deadlock or serialization failure between two nodes' groups fails the group with
//! `Unavailable` (503), and the callers retry.

use std::time::Duration;

use portero_core::store::{RefreshTokenRecord, Rotation, StoreError, StoreResult};
use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};

use super::{join, map_err};

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

pub(crate) fn start(pool: PgPool) -> Queue {
    let (sender, jobs) = mpsc::channel(QUEUE);
    tokio::spawn(commit_groups(pool, jobs));
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

async fn commit_groups(pool: PgPool, mut jobs: mpsc::Receiver<Job>) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    let mut next = Vec::new();
    while next_group(&mut jobs, &mut group, &mut next).await {
        let outcome = match tokio::time::timeout(GROUP_DEADLINE, rotate_group(&pool, &group)).await {
            Ok(Ok(rotated)) => Ok(rotated),
            Ok(Err(error)) => Err(map_err(error)),
            Err(_) => Err(StoreError::Unavailable("the database did not commit the rotations in time".into())),
        };
        answer(&mut group, outcome);
    }
}

/// Fills `group` with what waits (the jobs carried over in `next` first), in parent-hash order,
/// with at most one job per parent; later redemptions of a parent move to `next`. False once the
/// queue is closed and nothing is left.
async fn next_group(jobs: &mut mpsc::Receiver<Job>, group: &mut Vec<Job>, next: &mut Vec<Job>) -> bool {
    group.append(next);
    if group.is_empty() {
        if jobs.recv_many(group, MAX_GROUP).await == 0 {
            return false;
        }
    } else {
        while group.len() < MAX_GROUP
            && let Ok(job) = jobs.try_recv()
        {
            group.push(job);
        }
    }
    group.sort_by(|a, b| a.old_hash.cmp(&b.old_hash));
    let mut index = 1;
    while index < group.len() {
        if group[index].old_hash == group[index - 1].old_hash {
            next.push(group.remove(index));
        } else {
            index += 1;
        }
    }
    true
}

fn answer(group: &mut Vec<Job>, outcome: StoreResult<Vec<bool>>) {
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

/// PostgreSQL: mark each live parent used and insert the children of those marked, in one
/// statement. Returns the parents that were rotated.
const POSTGRES_ROTATE_GROUP: &str = "WITH child AS (SELECT * FROM jsonb_to_recordset($1::jsonb) AS c(hash text, \
     family_id text, client_id text, subject text, user_id text, tenants text, scopes text, audiences text, \
     auth_time bigint, created_at bigint, expires_at bigint, rotated_from text, jkt text)), \
     parent AS (UPDATE refresh_tokens AS r SET used_at = child.created_at FROM child \
     WHERE r.hash = child.rotated_from AND r.used_at IS NULL AND r.revoked_at IS NULL RETURNING r.hash) \
     INSERT INTO refresh_tokens (hash, family_id, client_id, subject, user_id, tenants, scopes, audiences, \
     auth_time, created_at, expires_at, used_at, revoked_at, rotated_from, jkt) \
     SELECT child.hash, child.family_id, child.client_id, child.subject, child.user_id, child.tenants, child.scopes, \
     child.audiences, child.auth_time, child.created_at, child.expires_at, NULL, NULL, child.rotated_from, \
     child.jkt \
     FROM child JOIN parent ON parent.hash = child.rotated_from RETURNING rotated_from";

fn as_json_object(job: &Job) -> serde_json::Value {
    let t = &job.new;
    serde_json::json!({
        "hash": t.hash, "family_id": t.family_id, "client_id": t.client_id, "subject": t.subject,
        "user_id": t.user_id, "tenants": join(&t.tenants), "scopes": join(&t.scopes),
        "audiences": join(&t.audiences), "auth_time": t.auth_time, "created_at": t.created_at,
        "expires_at": t.expires_at, "rotated_from": job.old_hash, "jkt": t.jkt,
    })
}

/// Commits every rotation of `group` (one statement); which of them found their parent live.
async fn rotate_group(pool: &PgPool, group: &[Job]) -> Result<Vec<bool>, sqlx::Error> {
    let rows: Vec<serde_json::Value> = group.iter().map(as_json_object).collect();
    let rotated_parents: Vec<String> = sqlx::query_scalar(POSTGRES_ROTATE_GROUP)
        .bind(serde_json::Value::Array(rows).to_string())
        .fetch_all(pool)
        .await?;
    let rotated_parents: std::collections::HashSet<String> = rotated_parents.into_iter().collect();
    Ok(group.iter().map(|job| rotated_parents.contains(&job.old_hash)).collect())
}
