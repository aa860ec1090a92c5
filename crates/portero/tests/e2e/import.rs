//! `portero import` and `portero import status` through the binary (issue 14): a file with a
//! bcrypt hash made by Python's `bcrypt`, a dry run, the import, a re-import that changes
//! nothing, a bad file refused with its line numbers, then a login through `portero serve` and
//! the status showing the hash replaced.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::cli::{ok, run_with_stdin};
use super::nodes::BIN;

const MASTER_KEY: &str = "aW1wb3J0LXRlc3QtbWFzdGVyLWtleS0zMi1ieXRlcyE=";

fn portero(dir: &Path, url: &str, args: &[&str]) -> std::process::Output {
    let mut command = Command::new(BIN);
    command.args(["--database-url", url]).args(args).current_dir(dir);
    command.env_remove("PORTERO_DATABASE_URL").env("PORTERO_MASTER_KEY", MASTER_KEY);
    run_with_stdin(command, None)
}

/// A bcrypt hash of `password` made by Python, or `None` (said loudly) without it.
fn bcrypt(password: &str) -> Option<String> {
    let script = "import bcrypt, sys; print(bcrypt.hashpw(sys.argv[1].encode(), bcrypt.gensalt(6)).decode())";
    let output = Command::new("python3").args(["-c", script, password]).output().ok().filter(|o| o.status.success());
    if output.is_none() {
        let _ = writeln!(std::io::stderr(), "SKIPPED: import through the binary: python3 with bcrypt is needed");
    }
    Some(String::from_utf8(output?.stdout).ok()?.trim().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_and_status_through_the_binary_sqlite() {
    import_and_status("sqlite://portero.db").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_and_status_through_the_binary_postgres() {
    let Ok(admin_url) = std::env::var("PORTERO_TEST_POSTGRES_URL") else {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: import through the binary on PostgreSQL (set PORTERO_TEST_POSTGRES_URL)"
        );
        return;
    };
    let db = super::nodes::Database::create(&admin_url, "e2e_import").await;
    import_and_status(&db.url).await;
    db.drop_it().await;
}

async fn import_and_status(url: &str) {
    let (Some(app_hash), Some(ana_hash)) = (bcrypt("app-secret"), bcrypt("ana-password")) else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let portero = |d: &Path, args: &[&str]| portero(d, url, args);
    let rows = [
        json!({"kind": "tenant", "name": "acme"}),
        json!({"kind": "client", "id": "app", "grants": ["password"], "tenants": ["acme"], "secret_hash": format!("{{bcrypt}}{app_hash}")}),
        json!({"kind": "user", "tenant": "acme", "username": "ana", "password_hash": ana_hash}),
    ];
    let text: String = rows.iter().map(|r| format!("{r}\n")).collect();
    std::fs::write(d.join("merchants.jsonl"), &text).unwrap();
    std::fs::write(d.join("bad.jsonl"), format!("{text}{{\"kind\":\"user\"}}\n\n{{\"kind\":\"robot\"}}\n")).unwrap();

    // A bad file: exit 1, each bad line named, nothing written (not even the database's rows).
    let bad = portero(d, &["--create", "import", "bad.jsonl"]);
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains("line 4: ") && stderr.contains("line 6: "), "{stderr}");
    assert!(stderr.contains("nothing was written"), "{stderr}");
    assert!(ok(portero(d, &["tenant", "list"])).is_empty());

    let dry = ok(portero(d, &["import", "merchants.jsonl", "--dry-run"]));
    assert!(dry.contains("would be created: 1 tenant(s), 1 client(s), 1 user(s)") && dry.contains("dry run"), "{dry}");
    assert!(ok(portero(d, &["tenant", "list"])).is_empty());
    let done = ok(portero(d, &["import", "merchants.jsonl"]));
    assert!(done.contains("created: 1 tenant(s), 1 client(s), 1 user(s)"), "{done}");
    let again: Value = serde_json::from_str(&ok(portero(d, &["import", "merchants.jsonl", "--json"]))).unwrap();
    assert_eq!(
        (again["written"].as_bool(), &again["unchanged"]),
        (Some(false), &json!({"tenants": 1, "clients": 1, "users": 1}))
    );
    let status = ok(portero(d, &["import", "status"]));
    let users = status.lines().find(|l| l.starts_with("acme") && l.contains("users")).unwrap_or_default().to_owned();
    assert_eq!(users.split_whitespace().collect::<Vec<_>>(), ["acme", "users", "1", "0", "1", "0", "1"], "{status}");

    // The old credentials log in through `portero serve`; then nothing is left on bcrypt.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let listen = format!("127.0.0.1:{port}");
    let mut server = Command::new(BIN)
        .args(["--database-url", url, "serve", "--listen", &listen])
        .current_dir(d)
        .env("PORTERO_MASTER_KEY", MASTER_KEY)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while std::net::TcpStream::connect(&listen).is_err() {
        assert!(started.elapsed() < Duration::from_secs(30), "portero serve did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let response = reqwest::Client::new()
        .post(format!("http://{listen}/oauth-service/oauth/token"))
        .basic_auth("app", Some("app-secret"))
        .form(&[("grant_type", "password"), ("username", "ana"), ("password", "ana-password")])
        .send()
        .await
        .unwrap();
    let status_code = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(status_code, 200, "{body}");
    let status: Value = serde_json::from_str(&ok(portero(d, &["import", "status", "--json"]))).unwrap();
    assert_eq!(status[0]["tenant"], "acme");
    assert_eq!(
        status[0]["users"],
        json!({"imported": 1, "migrated_lazily": 0, "legacy_hash": 0, "rehashed": 1, "never_seen": 0})
    );
    assert_eq!(status[0]["clients"]["legacy_hash"], 0);
}
