//! The process's argon2 workers. Every argon2 computation runs here: the token endpoint's secret
//! and password checks, and every hash the admin API, the CLI, the import and lazy migration
//! make. One thread per core, so a burst of logins or of admin writes cannot starve the async
//! threads, and memory is bounded by the worker count, not by how many requests arrive.
//!
//! Each computation needs 19 MiB. A worker keeps its buffer between jobs (a burst allocates it
//! once), and every buffer is handed back after [`IDLE`] without work, so an idle server does
//! not hold 19 MiB per core for good. Blocking callers (admin, CLI, import) run one computation
//! at a time between them (see [`run_blocking`]).

use std::sync::mpsc::{self, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use argon2::Block;
use tokio::sync::oneshot;

use crate::password_hash;

/// How long the workers may sit without a job before their memory is handed back.
const IDLE: Duration = Duration::from_secs(5);

/// Jobs waiting per worker: 64 at ~25 ms a check is about 1.6 s of queue, well within the
/// request deadline (5 s). A longer queue would only hold requests that miss their deadline
/// anyway; past it, a check is refused at once (503, Retry-After) and counts as no failure.
const QUEUE_PER_WORKER: usize = 64;

/// What a worker is asked to compute.
pub(crate) enum Work {
    /// Does `presented` match `stored` (any scheme `secret` reads)?
    Check { presented: String, stored: String },
    /// A new argon2id hash of `password`.
    Hash { password: String },
}

/// What a worker answers.
pub(crate) enum Done {
    /// Whether it matched, and for a legacy hash that matched, its argon2id replacement.
    Checked(bool, Option<String>),
    Hashed(String),
}

/// Where the answer goes: an async caller's oneshot, or a blocked thread's channel.
enum Reply {
    Async(oneshot::Sender<Done>),
    Blocking(SyncSender<Done>),
}

struct Job {
    work: Work,
    reply: Reply,
}

struct Pool {
    jobs: SyncSender<Job>,
    /// A hash nobody's password matches (checked for unknown users and clients; a match on it never counts).
    dummy: String,
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| {
        // Made before any worker runs, so no worker ever waits for it.
        let dummy = password_hash::hash_with_memory(&unguessable_password(), &mut Vec::new());
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        Pool { jobs: spawn_workers(workers, dummy.clone()), dummy }
    })
}

/// 24 random bytes, hex: a password nobody presents.
fn unguessable_password() -> String {
    let mut bytes = [0u8; 24];
    // Even a fill that failed (all zeros) is harmless: a match on the dummy never counts.
    let _ = aws_lc_rs::rand::fill(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The hash unknown users and clients are checked against.
pub(crate) fn dummy_hash() -> &'static str {
    &pool().dummy
}

/// Runs `work` on a worker; `None` when the queue is full (the caller answers 503) or the
/// workers are gone.
pub(crate) async fn run(work: Work) -> Option<Done> {
    let (reply, answer) = oneshot::channel();
    pool().jobs.try_send(Job { work, reply: Reply::Async(reply) }).ok()?;
    answer.await.ok()
}

/// Runs `work` on a worker from a thread that may block, waiting for a queue slot rather than
/// refusing (admin writes, the CLI, the import: throughput matters there, not latency).
///
/// These callers take turns, one computation at a time: a burst of admin-created clients or an
/// import of plain secrets then holds one 19 MiB buffer, not one per worker, and leaves the
/// other workers to the token endpoint's checks. The price is half the hashing rate on two
/// cores for those bulk writes, where generated (`$s256$`) secrets need no argon2 at all.
pub(crate) fn run_blocking(work: Work) -> Option<Done> {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let (reply, answer) = mpsc::sync_channel(1);
    pool().jobs.send(Job { work, reply: Reply::Blocking(reply) }).ok()?;
    answer.recv().ok()
}

/// 19 MiB buffers not in use, shared by the workers so that whichever of them notices the idle
/// time can hand them all back.
type Buffers = Arc<Mutex<Vec<Vec<Block>>>>;

fn spawn_workers(count: usize, dummy: String) -> SyncSender<Job> {
    let (sender, receiver) = mpsc::sync_channel::<Job>(QUEUE_PER_WORKER * count);
    let receiver = Arc::new(Mutex::new(receiver));
    let buffers = Buffers::default();
    for index in 0..count {
        let (receiver, buffers, dummy) = (receiver.clone(), buffers.clone(), dummy.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("argon2-{index}"))
            .spawn(move || work_until_closed(&receiver, &buffers, &dummy));
        if let Err(error) = spawned {
            tracing::error!(%error, "could not start an argon2 worker");
        }
    }
    sender
}

fn work_until_closed(receiver: &Mutex<mpsc::Receiver<Job>>, buffers: &Mutex<Vec<Vec<Block>>>, dummy: &str) {
    loop {
        let next = match receiver.lock() {
            Ok(queue) => queue.recv_timeout(IDLE),
            Err(_) => return,
        };
        let job = match next {
            Ok(job) => job,
            Err(RecvTimeoutError::Timeout) => {
                if let Ok(mut free) = buffers.lock() {
                    free.clear();
                }
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => return,
        };
        // A request that gave up (deadline) no longer waits: skip its work.
        if let Reply::Async(answer) = &job.reply
            && answer.is_closed()
        {
            continue;
        }
        let mut memory = buffers.lock().ok().and_then(|mut free| free.pop()).unwrap_or_default();
        let done = match job.work {
            Work::Check { presented, stored } => {
                let (matched, upgrade) = password_hash::check_with_memory(&presented, &stored, dummy, &mut memory);
                Done::Checked(matched, upgrade)
            }
            Work::Hash { password } => Done::Hashed(password_hash::hash_with_memory(&password, &mut memory)),
        };
        if let Ok(mut free) = buffers.lock() {
            free.push(memory);
        }
        match job.reply {
            Reply::Async(answer) => drop(answer.send(done)),
            Reply::Blocking(answer) => drop(answer.send(done)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocking_hash_and_check_round_trip() {
        let Some(Done::Hashed(stored)) = run_blocking(Work::Hash { password: "s3cret".into() }) else {
            panic!("the workers hash");
        };
        assert!(stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        let check =
            |presented: &str| match run_blocking(Work::Check { presented: presented.into(), stored: stored.clone() }) {
                Some(Done::Checked(matched, None)) => matched,
                _ => panic!("the workers check"),
            };
        assert!(check("s3cret"));
        assert!(!check("s3creT"));
    }

    #[test]
    fn idle_workers_hand_their_memory_back() {
        let buffers = Buffers::default();
        buffers.lock().unwrap().push(vec![Block::default(); 4]);
        let (sender, receiver) = mpsc::sync_channel::<Job>(1);
        let receiver = Mutex::new(receiver);
        let worker = {
            let buffers = buffers.clone();
            std::thread::spawn(move || work_until_closed(&receiver, &buffers, "unused"))
        };
        std::thread::sleep(IDLE + Duration::from_millis(500));
        assert!(buffers.lock().unwrap().is_empty(), "the buffer was handed back");
        drop(sender);
        worker.join().unwrap();
    }
}
