//! The audit trail: who got a token, who was refused and why, which refresh families were
//! revoked for reuse, which tokens were revoked, which callers were throttled.
//!
//! Events travel in two lanes to one background writer:
//!
//! - *Kept* events ([`KEPT`]: tokens issued, refresh reuse, revocations, admin actions) are never
//!   dropped while the database accepts writes. Their lane is a bounded channel with
//!   back-pressure: the token endpoint takes a slot ([`AuditLog::reserve`]) before it does any
//!   work, so a request that would issue a token waits for room instead of minting a token and then
//!   losing its record; without room in time it is answered 503 and issues nothing. Other kept
//!   events wait for room in [`AuditLog::keep`].
//! - *Counted* events (refusals, throttling) arrive at the rate of whoever floods us. They are
//!   aggregated per (kind, outcome, client id, authenticated, source, grant, minute) in a bounded
//!   table, written about every second as one row with a `count`; what does not fit in the table
//!   is counted in one overflow row per kind and minute. Nothing is lost silently: an event is
//!   either its own row or part of a count.
//!
//! The writer writes batches of up to [`MAX_BATCH`] rows in one statement and does not sleep while
//! more is waiting; while the database is away it retries, and the kept lane fills and pushes back.
//! Events not yet written when the process is killed are lost; a graceful stop flushes them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};

pub use crate::audit_event::{AuditEvent, AuditQuery, COUNTED, KEPT};
use crate::store::{Store, StoreError};

/// Kept events waiting for the writer (slots taken by requests in progress included).
const KEPT_QUEUE: usize = 50_000;
/// Most rows in one statement.
pub const MAX_BATCH: usize = 5_000;
/// Distinct counted keys held between flushes; the rest go to the overflow rows.
const COUNT_KEYS: usize = 4_096;
/// How often counts are written.
const FLUSH_COUNTS_EVERY: Duration = Duration::from_secs(1);
/// How long a kept event outside the token endpoint waits for room before it is dropped (and
/// counted in `dropped()`): only a database that takes no writes for this long gets there.
const KEEP_WAIT: Duration = Duration::from_secs(10);
/// Attempts at a batch the database refuses for a reason other than being away.
const ATTEMPTS_ON_ERROR: u32 = 5;

/// A slot in the kept lane, taken before the work whose event will fill it.
pub struct AuditPermit(mpsc::OwnedPermit<AuditEvent>);

impl AuditPermit {
    /// Queues `event` in the slot (never waits, never fails).
    pub fn record(self, event: AuditEvent) {
        self.0.send(event);
    }
}

#[derive(Hash, PartialEq, Eq)]
struct CountKey {
    kind: String,
    outcome: String,
    client_id: Option<String>,
    authenticated: bool,
    source: Option<String>,
    grant_type: Option<String>,
    minute: i64,
}

/// A count and what the first event of it said (its id too, so a count sorts where its first
/// event would have).
struct Tally {
    id: String,
    count: i64,
    at: i64,
    detail: Option<String>,
}

#[derive(Default)]
struct Counts {
    keys: HashMap<CountKey, Tally>,
    /// Per (kind, minute): events that found the key table full.
    overflow: HashMap<(String, i64), Tally>,
    /// Events in `keys` and `overflow`.
    events: u64,
}

impl Counts {
    fn add(&mut self, event: AuditEvent) {
        let key = CountKey {
            minute: event.at.div_euclid(60) * 60,
            kind: event.kind,
            outcome: event.outcome,
            client_id: event.client_id,
            authenticated: event.authenticated,
            source: event.source,
            grant_type: event.grant_type,
        };
        self.events += event.count.max(0) as u64;
        if let Some(tally) = self.keys.get_mut(&key) {
            tally.count += event.count;
        } else if self.keys.len() < COUNT_KEYS {
            self.keys.insert(key, Tally { id: event.id, count: event.count, at: event.at, detail: event.detail });
        } else {
            let tally = self.overflow.entry((key.kind, key.minute)).or_insert(Tally {
                id: event.id,
                count: 0,
                at: event.at,
                detail: Some(format!("aggregated: more than {COUNT_KEYS} distinct keys in one flush")),
            });
            tally.count += event.count;
        }
    }

    fn take_rows(&mut self) -> Vec<AuditEvent> {
        let keys = std::mem::take(&mut self.keys);
        let overflow = std::mem::take(&mut self.overflow);
        self.events = 0;
        let mut rows = Vec::with_capacity(keys.len() + overflow.len());
        for (key, tally) in keys {
            let mut row = AuditEvent::new(tally.at, &key.kind, key.outcome);
            row.id = tally.id;
            row.client_id = key.client_id;
            row.authenticated = key.authenticated;
            row.source = key.source;
            row.grant_type = key.grant_type;
            row.detail = tally.detail;
            row.count = tally.count;
            rows.push(row);
        }
        for ((kind, _), tally) in overflow {
            let mut row = AuditEvent::new(tally.at, &kind, "overflow");
            row.id = tally.id;
            row.detail = tally.detail;
            row.count = tally.count;
            rows.push(row);
        }
        rows
    }
}

/// What the sending side and the writer share.
#[derive(Default)]
struct Shared {
    counts: Mutex<Counts>,
    dropped: AtomicU64,
    /// Events the writer holds and has not written yet.
    writing: AtomicU64,
}

impl Shared {
    fn take_counts(&self) -> Vec<AuditEvent> {
        self.counts.lock().map(|mut counts| counts.take_rows()).unwrap_or_default()
    }
}

/// The sending side, held by the request pipeline.
pub struct AuditLog {
    kept: mpsc::Sender<AuditEvent>,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    writer: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl AuditLog {
    /// Starts the background writer on `store`.
    pub fn start<S: Store + Clone + Send + Sync + 'static>(store: S) -> Arc<Self> {
        Self::with_capacity(store, KEPT_QUEUE)
    }

    /// As [`AuditLog::start`], with room for `capacity` kept events (tests use a small one).
    pub fn with_capacity<S: Store + Clone + Send + Sync + 'static>(store: S, capacity: usize) -> Arc<Self> {
        let (kept, events) = mpsc::channel(capacity);
        let (stop, stopping) = watch::channel(false);
        let shared = Arc::new(Shared::default());
        let writer = tokio::spawn(write_events(store, events, shared.clone(), stopping));
        Arc::new(Self { kept, shared, stop, writer: Mutex::new(Some(writer)) })
    }

    /// A slot for one kept event, waiting up to `within` for room. `None`: the writer is that far
    /// behind (or stopped); the caller must not do the work the event would record.
    pub async fn reserve(&self, within: Duration) -> Option<AuditPermit> {
        match tokio::time::timeout(within, self.kept.clone().reserve_owned()).await {
            Ok(Ok(permit)) => Some(AuditPermit(permit)),
            _ => None,
        }
    }

    /// Records a kept event, waiting for room (back-pressure) while the writer is behind.
    pub async fn keep(&self, event: AuditEvent) {
        if !event.is_kept() {
            return self.record(event);
        }
        match tokio::time::timeout(KEEP_WAIT, self.kept.send(event)).await {
            Ok(Ok(())) => {}
            _ => self.dropped_one("audit writer stalled: kept event dropped"),
        }
    }

    /// Records an event without waiting: a counted one is added to its count; a kept one is
    /// queued if there is room, else dropped and counted in `dropped()` (use [`AuditLog::keep`]
    /// or [`AuditLog::reserve`] for kept events).
    pub fn record(&self, event: AuditEvent) {
        if event.is_kept() {
            if self.kept.try_send(event).is_err() {
                self.dropped_one("audit queue full: kept event dropped");
            }
        } else if let Ok(mut counts) = self.shared.counts.lock() {
            counts.add(event);
        }
    }

    fn dropped_one(&self, message: &'static str) {
        let dropped = self.shared.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        if dropped.is_power_of_two() {
            tracing::error!(dropped, "{message}");
        }
    }

    /// Events dropped: kept events that found no room (the database took no writes for long), or
    /// batches the database refused outright.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Events waiting to be written: kept events queued or reserved, counted events not yet
    /// flushed, and the batch being written.
    pub fn backlog(&self) -> u64 {
        let queued = (self.kept.max_capacity() - self.kept.capacity()) as u64;
        let counted = self.shared.counts.lock().map(|c| c.events).unwrap_or(0);
        queued + counted + self.shared.writing.load(Ordering::Relaxed)
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

async fn write_events<S: Store>(
    store: S,
    mut kept: mpsc::Receiver<AuditEvent>,
    shared: Arc<Shared>,
    mut stopping: watch::Receiver<bool>,
) {
    let mut flush = tokio::time::interval(FLUSH_COUNTS_EVERY);
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        let (stop, counts_due) = tokio::select! {
            received = kept.recv_many(&mut batch, MAX_BATCH) => (received == 0, false),
            _ = flush.tick() => (false, true),
            _ = stopping.wait_for(|stop| *stop) => (true, true),
        };
        while batch.len() < MAX_BATCH
            && let Ok(event) = kept.try_recv()
        {
            batch.push(event);
        }
        if counts_due {
            batch.extend(shared.take_counts());
        }
        write(&store, &mut batch, &shared).await;
        if stop {
            kept.close();
            while let Some(event) = kept.recv().await {
                batch.push(event);
                if batch.len() == MAX_BATCH {
                    write(&store, &mut batch, &shared).await;
                }
            }
            batch.extend(shared.take_counts());
            write(&store, &mut batch, &shared).await;
            return;
        }
    }
}

/// Writes `batch` (in statements of at most `MAX_BATCH` rows). While the database is away it
/// retries without end: the kept lane behind it fills and pushes back on the token endpoint,
/// and counts keep accumulating in their bounded table. A batch the database refuses for another
/// reason is retried a few times, then dropped and counted.
async fn write<S: Store>(store: &S, batch: &mut Vec<AuditEvent>, shared: &Shared) {
    shared.writing.store(batch.len() as u64, Ordering::Relaxed);
    for chunk in batch.chunks(MAX_BATCH) {
        let mut failures = 0u32;
        let mut pause = Duration::from_millis(50);
        loop {
            match store.insert_audit_events(chunk).await {
                Ok(()) => break,
                Err(StoreError::Unavailable(error)) => {
                    tracing::warn!(%error, events = chunk.len(), "audit write failed: the database is away; retrying");
                }
                Err(error) => {
                    failures += 1;
                    if failures >= ATTEMPTS_ON_ERROR {
                        let events: i64 = chunk.iter().map(|e| e.count).sum();
                        shared.dropped.fetch_add(events as u64, Ordering::Relaxed);
                        tracing::error!(%error, events, "audit events lost: the database refused them");
                        break;
                    }
                    tracing::warn!(%error, events = chunk.len(), "audit write failed; retrying");
                }
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(2));
        }
    }
    batch.clear();
    shared.writing.store(0, Ordering::Relaxed);
}

/// A refresh-token family revoked because a used token came back.
pub async fn family_revoked(
    audit: &AuditLog,
    client_id: &str,
    subject: &str,
    family_id: &str,
    revoked: u64,
    source: Option<std::net::IpAddr>,
    now: i64,
) {
    let mut event = AuditEvent::new(now, "refresh_reuse", "family_revoked");
    event.client_id = Some(client_id.to_owned());
    event.subject = Some(subject.to_owned());
    event.grant_type = Some("refresh_token".to_owned());
    event.source = source.map(|ip| ip.to_string());
    event.detail = Some(format!("family {family_id}: {revoked} live tokens revoked"));
    audit.keep(event).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(client: &str, at: i64) -> AuditEvent {
        let mut event = AuditEvent::new(at, "token_refused", "invalid_client");
        event.client_id = Some(client.to_owned());
        event.authenticated = false;
        event
    }

    #[test]
    fn counts_aggregate_per_key_and_minute_and_overflow_keeps_the_rest() {
        let mut counts = Counts::default();
        for _ in 0..3 {
            counts.add(refused("a", 120));
        }
        counts.add(refused("a", 185)); // next minute
        for i in 0..COUNT_KEYS + 10 {
            counts.add(refused(&format!("c{i}"), 130));
        }
        assert_eq!(counts.events, (4 + COUNT_KEYS + 10) as u64);
        let rows = counts.take_rows();
        assert_eq!(rows.iter().map(|r| r.count).sum::<i64>(), (4 + COUNT_KEYS + 10) as i64);
        let a: Vec<_> = rows.iter().filter(|r| r.client_id.as_deref() == Some("a")).map(|r| r.count).collect();
        assert_eq!(a.len(), 2);
        assert!(a.contains(&3) && a.contains(&1));
        assert!(rows.iter().all(|r| r.kind == "token_refused"));
        // Both "a" minutes took keys, so 12 events of the last distinct ids did not fit.
        let overflow: Vec<_> = rows.iter().filter(|r| r.outcome == "overflow").collect();
        assert_eq!(overflow.len(), 1);
        assert_eq!(overflow[0].count, 12);
        assert_eq!(counts.events, 0);
        assert!(counts.take_rows().is_empty());
    }

    #[test]
    fn kinds_are_kept_unless_listed_as_counted() {
        for kind in KEPT {
            assert!(AuditEvent::new(0, kind, "x").is_kept());
        }
        for kind in COUNTED {
            assert!(!AuditEvent::new(0, kind, "x").is_kept());
        }
        assert!(AuditEvent::new(0, "something_new", "x").is_kept());
    }
}
