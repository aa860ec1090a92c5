//! Crash safety: SIGKILL the server under load, restart it on the same database, and every
//! answer it gave with 200 still holds: refresh tokens redeem exactly once, revocations stay.
//! On SQLite always; on PostgreSQL when `PORTERO_TEST_POSTGRES_URL` is set.

use std::time::Duration;

use serde_json::{Value, json};

use super::nodes::{ADMIN, Database, Node, introspect, json_of, start_node, token};

const MASTER_KEY: &str = "Y3Jhc2gtdGVzdC0zMi1ieXRlcy1tYXN0ZXIta2V5LTE=";
const CHAINS: usize = 8;

pub(super) async fn provision(http: &reqwest::Client, node: &Node) -> String {
    let admin = |path: &str, body: Value| http.post(format!("{}{path}", node.base)).bearer_auth(ADMIN).json(&body);
    assert_eq!(json_of(admin("/admin/tenants", json!({ "name": "acme" }))).await.0, 201);
    let app = json!({ "id": "app", "secret": "app-secret", "grants": ["password", "refresh_token", "client_credentials"],
                      "tenants": ["acme"] });
    assert_eq!(json_of(admin("/admin/clients", app)).await.0, 201);
    let user = json!({ "tenant": "acme", "username": "alice", "password": "alice-pw" });
    assert_eq!(json_of(admin("/admin/users", user)).await.0, 201);
    "app-secret".to_owned()
}

async fn kill_and_restart_keeps_acknowledged_state(dir: &std::path::Path, database_url: &str) {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let mut node = start_node(dir, database_url, MASTER_KEY);
    let app = ("app", provision(&http, &node).await);
    let app = (app.0, app.1.as_str());
    let login = [("grant_type", "password"), ("username", "alice"), ("password", "alice-pw")];
    let cc = [("grant_type", "client_credentials")];

    // Refresh chains, each rotated several times; keep the last token answered with 200.
    let mut latest = Vec::new();
    for _ in 0..CHAINS {
        let (status, answer) = token(&http, &node, app, &login).await;
        assert_eq!(status, 200);
        let mut rt = answer["refresh_token"].as_str().unwrap().to_owned();
        for _ in 0..3 {
            let (status, answer) =
                token(&http, &node, app, &[("grant_type", "refresh_token"), ("refresh_token", &rt)]).await;
            assert_eq!(status, 200, "{answer}");
            rt = answer["refresh_token"].as_str().unwrap().to_owned();
        }
        latest.push(rt);
    }
    // Access tokens revoked with a 200.
    let mut revoked = Vec::new();
    for _ in 0..4 {
        let access = token(&http, &node, app, &cc).await.1["access_token"].as_str().unwrap().to_owned();
        let revoke = http
            .post(format!("{}/oauth2/revoke", node.base))
            .basic_auth(app.0, Some(app.1))
            .form(&[("token", &access)]);
        assert_eq!(revoke.send().await.unwrap().status(), 200);
        revoked.push(access);
    }

    // Load in flight, then SIGKILL.
    let base = node.base.clone();
    let load: Vec<_> = (0..8)
        .map(|_| {
            let (http, base) = (http.clone(), base.clone());
            tokio::spawn(async move {
                let mut answered = 0;
                while let Ok(response) = http
                    .post(format!("{base}/oauth2/token"))
                    .basic_auth("app", Some("app-secret"))
                    .form(&[("grant_type", "client_credentials")])
                    .send()
                    .await
                {
                    if response.status() == 200 {
                        answered += 1;
                    }
                }
                answered
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(700)).await;
    node.child.kill().unwrap();
    node.child.wait().unwrap();
    let mut answered = 0;
    for task in load {
        answered += task.await.unwrap();
    }
    assert!(answered > 0, "the load reached the server before the kill");
    drop(node);

    // Restart on the same database.
    let node = start_node(dir, database_url, MASTER_KEY);
    for rt in &latest {
        let refresh = [("grant_type", "refresh_token"), ("refresh_token", rt.as_str())];
        let (status, answer) = token(&http, &node, app, &refresh).await;
        assert_eq!(status, 200, "an acknowledged refresh token survives the crash: {answer}");
        assert_eq!(token(&http, &node, app, &refresh).await.0, 400, "and still redeems only once");
    }
    for access in &revoked {
        assert_eq!(introspect(&http, &node, app, access).await, json!({ "active": false }), "revocations hold");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_under_load_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("portero.toml"), "key_reload_seconds = 1\n").unwrap();
    let url = format!("sqlite://{}", dir.path().join("crash.db").display());
    kill_and_restart_keeps_acknowledged_state(dir.path(), &url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_under_load_on_postgres() {
    let Ok(admin_url) = std::env::var("PORTERO_TEST_POSTGRES_URL") else {
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), "SKIPPED: crash test on PostgreSQL (set PORTERO_TEST_POSTGRES_URL)");
        return;
    };
    let db = Database::create(&admin_url, "crash").await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("portero.toml"), "key_reload_seconds = 1\n").unwrap();
    kill_and_restart_keeps_acknowledged_state(dir.path(), &db.url).await;
    db.drop_it().await;
}
