//! The audit trail: who got a token, who was refused and why, which refresh families were
//! revoked for reuse, which tokens were revoked, which callers were throttled.
//!
//! Recording an event costs the request a channel send; a background task writes events to the
//! database in batches, so the client-credentials path still does no database write of its own.
//! The channel is bounded: under an overload that outruns the database, events are dropped and
//! counted (`dropped()`), never queued without limit. Events in the channel when the process is
//! killed (at most one batch interval's worth) are lost; a graceful stop flushes them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::store::Store;
use crate::token_endpoint::Context;

/// One audited event. Never holds a secret, password or token value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    pub id: String,
    pub at: i64,
    /// `token_issued`, `token_refused`, `throttled`, `refresh_reuse`, `token_revoked`,
    /// `introspection_refused` or `revocation_refused`.
    pub kind: String,
    /// `issued`, `revoked`, or the RFC error code.
    pub outcome: String,
    /// Set only once the client has authenticated (or for reuse, the token's owner).
    pub client_id: Option<String>,
    pub subject: Option<String>,
    pub grant_type: Option<String>,
    pub source: Option<String>,
    pub detail: Option<String>,
}

impl AuditEvent {
    pub fn new(at: i64, kind: &str, outcome: impl Into<String>) -> Self {
        Self {
            id: uuid::Uuid::now_v7().to_string(),
            at,
            kind: kind.to_owned(),
            outcome: outcome.into(),
            client_id: None,
            subject: None,
            grant_type: None,
            source: None,
            detail: None,
        }
    }
}

/// What `portero audit` asks for.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub since: Option<i64>,
    pub client_id: Option<String>,
    pub kind: Option<String>,
    pub limit: i64,
}

const QUEUE: usize = 20_000;
const BATCH: usize = 500;
const FLUSH_EVERY: Duration = Duration::from_millis(200);

/// The sending side, held by the request pipeline.
pub struct AuditLog {
    queue: mpsc::Sender<AuditEvent>,
    dropped: AtomicU64,
    stop: watch::Sender<bool>,
    writer: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl AuditLog {
    /// Starts the background writer on `store`.
    pub fn start<S: Store + Clone + Send + Sync + 'static>(store: S) -> Arc<Self> {
        let (queue, events) = mpsc::channel(QUEUE);
        let (stop, stopping) = watch::channel(false);
        let writer = tokio::spawn(write_batches(store, events, stopping));
        Arc::new(Self { queue, dropped: AtomicU64::new(0), stop, writer: std::sync::Mutex::new(Some(writer)) })
    }

    pub fn record(&self, event: AuditEvent) {
        if self.queue.try_send(event).is_err() {
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if dropped.is_power_of_two() {
                tracing::warn!(dropped, "audit queue full: events dropped");
            }
        }
    }

    /// Events dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Writes what is queued and stops the writer (graceful shutdown).
    pub async fn flush_and_stop(&self) {
        self.stop.send_replace(true);
        let writer = self.writer.lock().ok().and_then(|mut w| w.take());
        if let Some(writer) = writer {
            let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
        }
    }
}

async fn write_batches<S: Store>(
    store: S,
    mut events: mpsc::Receiver<AuditEvent>,
    mut stopping: watch::Receiver<bool>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        let stop = tokio::select! {
            received = events.recv_many(&mut batch, BATCH) => received == 0,
            _ = stopping.wait_for(|stop| *stop) => true,
        };
        while batch.len() < BATCH
            && let Ok(event) = events.try_recv()
        {
            batch.push(event);
        }
        if !batch.is_empty() {
            write(&store, &mut batch).await;
        }
        if stop {
            while let Ok(event) = events.try_recv() {
                batch.push(event);
                if batch.len() == BATCH {
                    write(&store, &mut batch).await;
                }
            }
            write(&store, &mut batch).await;
            return;
        }
        tokio::time::sleep(FLUSH_EVERY).await;
    }
}

/// Writes `batch`, retrying a few times while the database is away, then gives up on it (the
/// queue behind it is bounded, so waiting forever would only drop newer events instead).
async fn write<S: Store>(store: &S, batch: &mut Vec<AuditEvent>) {
    if batch.is_empty() {
        return;
    }
    for attempt in 0..5u32 {
        match store.insert_audit_events(batch).await {
            Ok(()) => {
                batch.clear();
                return;
            }
            Err(error) => {
                tracing::warn!(%error, attempt, events = batch.len(), "audit write failed; retrying");
                tokio::time::sleep(Duration::from_millis(200) * 2u32.pow(attempt)).await;
            }
        }
    }
    tracing::error!(events = batch.len(), "audit events lost: the database did not take them");
    batch.clear();
}

/// A refresh-token family revoked because a used token came back.
pub fn family_revoked<S>(ctx: &Context<S>, client_id: &str, subject: &str, family_id: &str, revoked: u64, now: i64) {
    let mut event = AuditEvent::new(now, "refresh_reuse", "family_revoked");
    event.client_id = Some(client_id.to_owned());
    event.subject = Some(subject.to_owned());
    event.grant_type = Some("refresh_token".to_owned());
    event.detail = Some(format!("family {family_id}: {revoked} live tokens revoked"));
    ctx.audit.record(event);
}
