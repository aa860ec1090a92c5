//! Rotations whose answer never reached the client.
//!
//! A rotation is one atomic statement, but the database can commit it and then become
//! unreachable before it confirms (a dropped connection, a stalled network, the request
//! deadline). The node then answers 503 and the client, holding only the parent token, retries
//! with it, which would look like reuse and revoke the family: the client would lose a token
//! that was never delivered to anyone. So each rotation is noted here before it is attempted and
//! forgotten once it is answered; a rotation that failed or was abandoned (its request dropped
//! at the deadline) leaves its note marked undelivered, and a parent that comes back then may
//! redeem the successor that was never delivered. A rotation still in flight is not
//! undelivered: a concurrent redemption of its parent is reuse, as it must be. A successor that
//! was delivered is never noted, so presenting its parent again is still reuse.
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
    notes: Mutex<HashMap<String, Note>>,
}

struct Note {
    successor: String,
    at: Instant,
    /// False while the rotation is in flight; true once it failed or was abandoned.
    undelivered: bool,
}

/// A rotation in flight. `settle` it once answered; dropped unsettled (an error, or the request
/// abandoned at its deadline), it leaves the successor owed to the parent's retry.
pub struct InFlight<'a> {
    pending: &'a PendingRotations,
    parent: String,
    settled: bool,
}

impl InFlight<'_> {
    /// The rotation was answered (either way): nothing is owed.
    pub fn settle(mut self) {
        self.settled = true;
        if let Ok(mut notes) = self.pending.notes.lock() {
            notes.remove(&self.parent);
        }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        if let Ok(mut notes) = self.pending.notes.lock()
            && let Some(note) = notes.get_mut(&self.parent)
        {
            note.undelivered = true;
        }
    }
}

impl PendingRotations {
    /// Notes that `parent` is about to be rotated into `successor`.
    pub fn begin(&self, parent: &str, successor: &str) -> InFlight<'_> {
        if let Ok(mut notes) = self.notes.lock() {
            if notes.len() >= MAX_NOTES {
                notes.retain(|_, note| note.at.elapsed() < KEEP_FOR / 2);
            }
            let note = Note { successor: successor.to_owned(), at: Instant::now(), undelivered: false };
            notes.insert(parent.to_owned(), note);
        }
        InFlight { pending: self, parent: parent.to_owned(), settled: false }
    }

    /// The successor of `parent` if its rotation failed or was abandoned (not merely in flight);
    /// removes the note, so it is handed out at most once.
    pub fn take_undelivered(&self, parent: &str) -> Option<String> {
        let mut notes = self.notes.lock().ok()?;
        if !notes.get(parent).is_some_and(|note| note.undelivered) {
            return None;
        }
        let note = notes.remove(parent)?;
        (note.at.elapsed() < KEEP_FOR).then_some(note.successor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answered_rotation_owes_nothing() {
        let pending = PendingRotations::default();
        pending.begin("parent", "child").settle();
        assert_eq!(pending.take_undelivered("parent"), None);
    }

    #[test]
    fn a_rotation_in_flight_is_not_undelivered() {
        let pending = PendingRotations::default();
        let in_flight = pending.begin("parent", "child");
        assert_eq!(pending.take_undelivered("parent"), None, "a concurrent redemption is reuse");
        in_flight.settle();
        assert_eq!(pending.take_undelivered("parent"), None);
    }

    #[test]
    fn an_abandoned_rotation_hands_its_successor_out_once() {
        let pending = PendingRotations::default();
        drop(pending.begin("parent", "child"));
        assert_eq!(pending.take_undelivered("parent").as_deref(), Some("child"));
        assert_eq!(pending.take_undelivered("parent"), None);
    }
}
