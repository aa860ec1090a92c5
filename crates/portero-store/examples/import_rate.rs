//! Import rate (issue 14): rows/s of `portero_core::import::import` for a file of one tenant and
//! N users with bcrypt hashes (well-formed, random: the import parses hashes, it never runs
//! them), on SQLite (a fresh temporary file) and, when PORTERO_TEST_POSTGRES_URL is set, on a
//! fresh PostgreSQL database it creates and drops. Also times the re-import of the same file
//! (everything unchanged) and a dry run.
//!
//! ```sh
//! cargo run --release -p portero-store --example import_rate -- 100000
//! PORTERO_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres \
//!     cargo run --release -p portero-store --example import_rate -- 100000
//! ```

use std::time::Instant;

use portero_core::import::{Options, import};
use portero_core::secret::random_token;
use portero_store::Database;

const BCRYPT_ALPHABET: &[u8] = b"./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// `$2b$10$` + 53 characters of bcrypt base64 (the last of the salt and of the hash chosen so
/// that no stray bits are set).
fn bcrypt_like(seed: &[u8]) -> String {
    let mut text: Vec<u8> = seed.iter().cycle().take(53).map(|b| BCRYPT_ALPHABET[usize::from(*b) % 64]).collect();
    text[21] = b'.';
    text[52] = b'.';
    format!("$2b$10${}", String::from_utf8_lossy(&text))
}

fn file(users: usize) -> String {
    let mut text = String::with_capacity(users * 130);
    text.push_str("{\"kind\":\"tenant\",\"name\":\"bench\"}\n");
    for i in 0..users {
        let seed = random_token(40);
        text.push_str(&format!(
            "{{\"kind\":\"user\",\"tenant\":\"bench\",\"username\":\"merchant{i:07}\",\"password_hash\":\"{}\"}}\n",
            bcrypt_like(seed.as_bytes())
        ));
    }
    text
}

async fn measure(label: &str, url: &str, text: &str, users: usize) {
    let db = Database::connect(url).await.expect("the database opens");
    let rows = users + 1;
    let timed = |started: Instant| started.elapsed().as_secs_f64();
    let started = Instant::now();
    let report = import(&db, text, Options { dry_run: true, update: false }, 1).await.expect("dry run");
    let dry = timed(started);
    assert!(!report.has_errors(), "{:?}", report.errors.first());
    let started = Instant::now();
    let report = import(&db, text, Options::default(), 1).await.expect("import");
    let first = timed(started);
    assert!(report.written && report.created.users == users as u64, "{report:?}");
    let started = Instant::now();
    let report = import(&db, text, Options::default(), 2).await.expect("re-import");
    let again = timed(started);
    assert!(!report.written && report.unchanged.users == users as u64);
    println!(
        "{label:<10} {rows} rows: import {first:.2} s ({:.0} rows/s); re-import, all unchanged {again:.2} s ({:.0} rows/s); \
         dry run {dry:.2} s",
        rows as f64 / first,
        rows as f64 / again
    );
    db.close().await;
}

#[tokio::main]
async fn main() {
    let users: usize = std::env::args().nth(1).and_then(|n| n.parse().ok()).unwrap_or(100_000);
    let text = file(users);
    println!("{users} users with bcrypt hashes, {:.1} MiB of JSON Lines", text.len() as f64 / 1048576.0);
    let dir = tempfile::tempdir().expect("a temporary folder");
    measure("SQLite", &format!("sqlite://{}", dir.path().join("bench.db").display()), &text, users).await;
    let Ok(base) = std::env::var("PORTERO_TEST_POSTGRES_URL") else {
        println!("PostgreSQL: skipped (set PORTERO_TEST_POSTGRES_URL)");
        return;
    };
    let name = format!("portero_bench_import_{}", random_token(6).to_ascii_lowercase().replace(['-', '_'], "x"));
    let admin = sqlx::PgPool::connect(&base).await.expect("PostgreSQL");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&admin).await.expect("create");
    let (prefix, _) = base.rsplit_once('/').expect("the URL names a database");
    measure("PostgreSQL", &format!("{prefix}/{name}"), &text, users).await;
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE {name} WITH (FORCE)"))).execute(&admin).await.expect("drop");
}
