//! The argon2id verification rate of Portero's password hashing, on THREADS threads for
//! SECONDS seconds: the ceiling for the password grant. Used by `bench/run`.
//!
//! `cargo run --release -p portero-core --example argon2_rate -- THREADS SECONDS`

use std::time::{Duration, Instant};

fn main() {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<u64>().expect("numbers: THREADS SECONDS"));
    let threads = args.next().unwrap_or(2);
    let seconds = args.next().unwrap_or(5);
    let stored = portero_core::secret::hash_password("bench-password");
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let stored = stored.clone();
            std::thread::spawn(move || {
                let mut done = 0u64;
                while Instant::now() < deadline {
                    assert!(portero_core::secret::verify_blocking("bench-password", &stored));
                    done += 1;
                }
                done
            })
        })
        .collect();
    let total: u64 = handles.into_iter().map(|h| h.join().expect("worker")).sum();
    println!("{:.1}", total as f64 / started.elapsed().as_secs_f64());
}
