//! Group commit for replay records (`seen_jtis`: client assertions and DPoP proofs) on
//! PostgreSQL (SQLite's go through its write thread, see `writer` and `sqlite_writes`).
//!
//! Every request authenticated by an assertion, and every DPoP proof, records a `jti` before it
//! is answered, so these writes come at the token rate. The records that arrive while one group
//! is committing are written together, in one statement that inserts each key unless it is
//! there (`ON CONFLICT DO NOTHING ... RETURNING key`): one commit per group, and the caller whose
//! key the statement returned is the one first use. A group holds each key once; a second
//! request with the same key in the same group is a replay by construction (the first one in
//! the group wins), and across groups and nodes the primary key decides.

use std::collections::HashSet;
use std::time::Duration;

use portero_core::store::{StoreError, StoreResult};
use tokio::sync::{mpsc, oneshot};

use sqlx::PgPool;

use super::map_err;

/// Most records committed together.
const MAX_GROUP: usize = 512;
/// Records waiting for their group; more wait in the caller (the channel applies backpressure).
const QUEUE: usize = 8192;
/// A group that does not commit within this is abandoned: its callers get `Unavailable`.
const GROUP_DEADLINE: Duration = Duration::from_secs(4);

const POSTGRES_REMEMBER: &str = "INSERT INTO seen_jtis (key, expires_at) \
     SELECT e->>0, (e->>1)::bigint FROM jsonb_array_elements($1::jsonb) AS e \
     ON CONFLICT (key) DO NOTHING RETURNING key";

struct Job {
    key: String,
    expires_at: i64,
    reply: oneshot::Sender<StoreResult<bool>>,
}

#[derive(Clone, Debug)]
pub(crate) struct Queue(mpsc::Sender<Job>);

pub(crate) fn start(pool: PgPool) -> Queue {
    let (sender, jobs) = mpsc::channel(QUEUE);
    tokio::spawn(commit_groups(pool, jobs));
    Queue(sender)
}

impl Queue {
    /// `true` the first time `key` is recorded (until it is purged after `expires_at`).
    pub(crate) async fn remember(&self, key: &str, expires_at: i64) -> StoreResult<bool> {
        let stopped = || StoreError::Unavailable("the replay writer has stopped".into());
        let (reply, answer) = oneshot::channel();
        self.0.send(Job { key: key.to_owned(), expires_at, reply }).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

async fn commit_groups(pool: PgPool, mut jobs: mpsc::Receiver<Job>) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    while jobs.recv_many(&mut group, MAX_GROUP).await > 0 {
        let mut keys = HashSet::with_capacity(group.len());
        // The first job of each key goes in the statement; a repeat in the same group is a replay.
        let (first, repeats): (Vec<Job>, Vec<Job>) = group.drain(..).partition(|job| keys.insert(job.key.clone()));
        for job in repeats {
            let _ = job.reply.send(Ok(false));
        }
        let outcome = match tokio::time::timeout(GROUP_DEADLINE, remember_group(&pool, &first)).await {
            Ok(Ok(inserted)) => Ok(inserted),
            Ok(Err(error)) => Err(map_err(error)),
            Err(_) => Err(StoreError::Unavailable("the database did not record the jtis in time".into())),
        };
        for job in first {
            let answer = outcome.as_ref().map(|inserted| inserted.contains(&job.key)).map_err(Clone::clone);
            let _ = job.reply.send(answer);
        }
    }
}

/// Inserts the group's keys in one statement; the keys that were not there before.
async fn remember_group(pool: &PgPool, group: &[Job]) -> Result<HashSet<String>, sqlx::Error> {
    let rows: Vec<serde_json::Value> = group.iter().map(|job| serde_json::json!([job.key, job.expires_at])).collect();
    let rows = serde_json::Value::Array(rows).to_string();
    let inserted: Vec<String> = sqlx::query_scalar(POSTGRES_REMEMBER).bind(rows).fetch_all(pool).await?;
    Ok(inserted.into_iter().collect())
}
