//! One run of a piece of work for every caller that asks for the same key at the same time:
//! the first caller runs it, the others wait for its answer. Used so that a burst of identical
//! requests (a legitimate client starting cold, or an attacker repeating one guess) costs one
//! secret check and one throttle slot, not one per request.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;

use tokio::sync::oneshot;

pub type FlightKey = [u8; 32];

/// Identifies one attempt by its parts (a throttle key and what was presented) without keeping
/// any of them: SHA-256 over each part, length-prefixed.
pub fn flight_key(parts: &[&str]) -> FlightKey {
    let mut digest = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for part in parts {
        digest.update(&(part.len() as u64).to_be_bytes());
        digest.update(part.as_bytes());
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.finish().as_ref());
    out
}

pub struct SingleFlight<V> {
    waiting: Mutex<HashMap<FlightKey, Vec<oneshot::Sender<V>>>>,
}

impl<V> Default for SingleFlight<V> {
    fn default() -> Self {
        Self { waiting: Mutex::default() }
    }
}

/// Ends a leader's flight even when its future is dropped (a request deadline): waiters then see
/// their sender dropped and run the work themselves.
struct Leader<'a, V> {
    flights: &'a SingleFlight<V>,
    key: FlightKey,
}

impl<V> Drop for Leader<'_, V> {
    fn drop(&mut self) {
        if let Ok(mut waiting) = self.flights.waiting.lock() {
            waiting.remove(&self.key);
        }
    }
}

impl<V: Clone> SingleFlight<V> {
    /// Runs `work` unless a run for `key` is under way, in which case its answer is shared.
    pub async fn run<F: Future<Output = V>>(&self, key: FlightKey, work: F) -> V {
        let waiter = {
            let Ok(mut waiting) = self.waiting.lock() else { return work.await };
            match waiting.get_mut(&key) {
                Some(waiters) => {
                    let (sender, receiver) = oneshot::channel();
                    waiters.push(sender);
                    Some(receiver)
                }
                None => {
                    waiting.insert(key, Vec::new());
                    None
                }
            }
        };
        if let Some(receiver) = waiter {
            if let Ok(value) = receiver.await {
                return value;
            }
            return work.await;
        }
        let leader = Leader { flights: self, key };
        let value = work.await;
        let waiters = leader.flights.waiting.lock().ok().and_then(|mut waiting| waiting.remove(&key));
        drop(leader);
        for waiter in waiters.into_iter().flatten() {
            let _ = waiter.send(value.clone());
        }
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn concurrent_callers_of_one_key_share_one_run() {
        let flights = Arc::new(SingleFlight::<usize>::default());
        let runs = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let (flights, runs) = (flights.clone(), runs.clone());
            tasks.push(tokio::spawn(async move {
                flights
                    .run([1; 32], async {
                        runs.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        7
                    })
                    .await
            }));
        }
        for task in tasks {
            assert_eq!(task.await.unwrap(), 7);
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        // Once answered, the next call runs again.
        assert_eq!(flights.run([1; 32], async { 8 }).await, 8);
    }

    #[tokio::test]
    async fn a_cancelled_leader_lets_waiters_run_themselves() {
        let flights = Arc::new(SingleFlight::<u8>::default());
        let leader = {
            let flights = flights.clone();
            tokio::spawn(async move { flights.run([2; 32], std::future::pending::<u8>()).await })
        };
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        let waiter = {
            let flights = flights.clone();
            tokio::spawn(async move { flights.run([2; 32], async { 3 }).await })
        };
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        leader.abort();
        assert_eq!(waiter.await.unwrap(), 3);
    }
}
