//! Rotations whose answer never reached the client.
//!
//! A rotation is one atomic statement, but the database can commit it and then become
//! unreachable before it confirms (a dropped connection, a stalled network, the request
//! deadline). The node then answers 503 and the client, holding only the parent token, retries
//! with it, which would look like reuse and revoke the family: the client would lose a token
//! that was never delivered to anyone. So each rotation is noted here before it is attempted and
//! forgotten once it is answered; a parent that comes back while its note is still here may
//! redeem the successor that was never delivered. A successor that was delivered is never
//! noted, so presenting its parent again is still reuse.
//!
//! The notes are per node and in memory: a retry that lands on another node after such a
//! failure still counts as reuse.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A note older than this is dropped: the client has long given up on that answer.
const KEEP_FOR: Duration = Duration::from_secs(3600);
/// Bound on notes held; past it the oldest half is dropped.
const MAX_NOTES: usize = 10_000;

#[derive(Default)]
pub struct PendingRotations {
    notes: Mutex<HashMap<String, (String, Instant)>>,
}

impl PendingRotations {
    /// Notes that `parent` is about to be rotated into `successor`.
    pub fn begin(&self, parent: &str, successor: &str) {
        let Ok(mut notes) = self.notes.lock() else { return };
        if notes.len() >= MAX_NOTES {
            notes.retain(|_, (_, at)| at.elapsed() < KEEP_FOR / 2);
        }
        notes.insert(parent.to_owned(), (successor.to_owned(), Instant::now()));
    }

    /// The rotation of `parent` was answered (either way): nothing is owed.
    pub fn settle(&self, parent: &str) {
        if let Ok(mut notes) = self.notes.lock() {
            notes.remove(parent);
        }
    }

    /// The successor of `parent` if its rotation was never answered; removes the note, so it
    /// is handed out at most once.
    pub fn take_undelivered(&self, parent: &str) -> Option<String> {
        let mut notes = self.notes.lock().ok()?;
        let (successor, at) = notes.remove(parent)?;
        (at.elapsed() < KEEP_FOR).then_some(successor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answered_rotation_owes_nothing() {
        let pending = PendingRotations::default();
        pending.begin("parent", "child");
        pending.settle("parent");
        assert_eq!(pending.take_undelivered("parent"), None);
    }

    #[test]
    fn an_unanswered_rotation_hands_its_successor_out_once() {
        let pending = PendingRotations::default();
        pending.begin("parent", "child");
        assert_eq!(pending.take_undelivered("parent").as_deref(), Some("child"));
        assert_eq!(pending.take_undelivered("parent"), None);
    }
}
