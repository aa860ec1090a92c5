//! Two `portero serve` processes on one PostgreSQL database behave as one service.
//! Runs when `PORTERO_TEST_POSTGRES_URL` is set (`.ci/run` sets it); says SKIPPED otherwise.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation, decode, decode_header};
use serde_json::{Value, json};

pub(super) const BIN: &str = env!("CARGO_BIN_EXE_portero");
const ISSUER: &str = "https://auth.portero.test";
pub(super) const ADMIN: &str = "nodes-test-admin-token-0123456789";

pub(super) struct Node {
    pub(super) child: Child,
    pub(super) base: String,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(super) struct Database {
    admin_url: String,
    name: String,
    pub(super) url: String,
}

impl Database {
    pub(super) async fn create(admin_url: &str, prefix: &str) -> Self {
        let name = format!("portero_{prefix}_{}", std::process::id());
        let pool = sqlx::PgPool::connect(admin_url).await.unwrap();
        let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
        sqlx::query(sqlx::AssertSqlSafe(drop)).execute(&pool).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&pool).await.unwrap();
        let url = format!("{}/{name}", admin_url.rsplit_once('/').unwrap().0);
        Self { admin_url: admin_url.to_owned(), name, url }
    }

    pub(super) async fn drop_it(&self) {
        let pool = sqlx::PgPool::connect(&self.admin_url).await.unwrap();
        let drop = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        sqlx::query(sqlx::AssertSqlSafe(drop)).execute(&pool).await.unwrap();
    }
}

pub(super) fn start_node(dir: &std::path::Path, database_url: &str, master_key: &str) -> Node {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let listen = format!("127.0.0.1:{port}");
    let child = Command::new(BIN)
        .args(["serve", "--listen", &listen, "--issuer", ISSUER, "--config", "portero.toml"])
        .current_dir(dir)
        .env("PORTERO_DATABASE_URL", database_url)
        .env("PORTERO_MASTER_KEY", master_key)
        .env("PORTERO_ADMIN_TOKEN", ADMIN)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let node = Node { child, base: format!("http://{listen}") };
    let started = Instant::now();
    while std::net::TcpStream::connect(&listen).is_err() {
        assert!(started.elapsed() < Duration::from_secs(30), "node did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    node
}

pub(super) async fn json_of(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

pub(super) async fn token(
    http: &reqwest::Client,
    node: &Node,
    client: (&str, &str),
    form: &[(&str, &str)],
) -> (u16, Value) {
    json_of(http.post(format!("{}/oauth2/token", node.base)).basic_auth(client.0, Some(client.1)).form(form)).await
}

pub(super) async fn introspect(http: &reqwest::Client, node: &Node, client: (&str, &str), token: &str) -> Value {
    let url = format!("{}/oauth2/introspect", node.base);
    json_of(http.post(url).basic_auth(client.0, Some(client.1)).form(&[("token", token)])).await.1
}

/// Verifies with jsonwebtoken against the node's JWKS: an implementation other than ours.
async fn verify(http: &reqwest::Client, node: &Node, token: &str) -> Value {
    let jwks: JwkSet =
        http.get(format!("{}/.well-known/jwks.json", node.base)).send().await.unwrap().json().await.unwrap();
    let header = decode_header(token).unwrap();
    let jwk = jwks.find(header.kid.as_deref().unwrap()).expect("kid published");
    let mut validation = Validation::new(header.alg);
    validation.set_issuer(&[ISSUER]);
    validation.set_audience(&[ISSUER]);
    decode::<Value>(token, &DecodingKey::from_jwk(jwk).unwrap(), &validation).unwrap().claims
}

fn kid(token: &str) -> String {
    decode_header(token).unwrap().kid.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_on_one_postgres_are_one_service() {
    let Ok(admin_url) = std::env::var("PORTERO_TEST_POSTGRES_URL") else {
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), "SKIPPED: two-node test (set PORTERO_TEST_POSTGRES_URL to run it)");
        return;
    };
    let db = Database::create(&admin_url, "nodes").await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("portero.toml"), "key_reload_seconds = 1\n").unwrap();
    let master_key = "ZmFrZS1idXQtMzItYnl0ZXMtbWFzdGVyLWtleS0xMjM=";
    let a = start_node(dir.path(), &db.url, master_key);
    let b = start_node(dir.path(), &db.url, master_key);
    let http = reqwest::Client::new();

    // Provision through A's admin API.
    let admin = |path: &str, body: Value| http.post(format!("{}{path}", a.base)).bearer_auth(ADMIN).json(&body);
    let (status, _) = json_of(admin("/admin/tenants", json!({ "name": "acme" }))).await;
    assert_eq!(status, 201);
    let (_, svc) =
        json_of(admin("/admin/clients", json!({ "id": "svc", "grants": ["client_credentials"], "tenants": ["acme"] })))
            .await;
    let svc_secret = svc["client_secret"].as_str().unwrap().to_owned();
    let app =
        json!({ "id": "app", "secret": "app-secret", "grants": ["password", "refresh_token"], "tenants": ["acme"] });
    assert_eq!(json_of(admin("/admin/clients", app)).await.0, 201);
    let user = json!({ "tenant": "acme", "username": "alice", "password": "alice-pw" });
    assert_eq!(json_of(admin("/admin/users", user)).await.0, 201);
    let svc = ("svc", svc_secret.as_str());
    let app = ("app", "app-secret");
    let cc = [("grant_type", "client_credentials")];

    // A token minted on A introspects active on B, and verifies independently on both JWKS.
    let (_, minted) = token(&http, &a, svc, &cc).await;
    let access = minted["access_token"].as_str().unwrap().to_owned();
    assert_eq!(introspect(&http, &b, svc, &access).await["active"], true);
    verify(&http, &b, &access).await;

    // A refresh token issued on A rotates on B.
    let login = [("grant_type", "password"), ("username", "alice"), ("password", "alice-pw")];
    let (_, first) = token(&http, &a, app, &login).await;
    let rt = first["refresh_token"].as_str().unwrap().to_owned();
    let (status, rotated) = token(&http, &b, app, &[("grant_type", "refresh_token"), ("refresh_token", &rt)]).await;
    assert_eq!(status, 200, "{rotated}");

    // 20 concurrent redemptions of one refresh token, split across A and B: one success.
    let (_, fresh) = token(&http, &a, app, &login).await;
    let contested = Arc::new(fresh["refresh_token"].as_str().unwrap().to_owned());
    let nodes = Arc::new([a.base.clone(), b.base.clone()]);
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let (http, contested, nodes) = (http.clone(), contested.clone(), nodes.clone());
            tokio::spawn(async move {
                let url = format!("{}/oauth2/token", nodes[i % 2]);
                let form = [("grant_type", "refresh_token"), ("refresh_token", contested.as_str())];
                http.post(url).basic_auth("app", Some("app-secret")).form(&form).send().await.unwrap().status().as_u16()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "{statuses:?}");
    assert!(statuses.iter().all(|s| *s == 200 || *s == 400), "{statuses:?}");

    // A revocation on A is seen on B immediately.
    let revoke =
        http.post(format!("{}/oauth2/revoke", a.base)).basic_auth("svc", Some(&svc_secret)).form(&[("token", &access)]);
    assert_eq!(revoke.send().await.unwrap().status(), 200);
    assert_eq!(introspect(&http, &b, svc, &access).await, json!({ "active": false }));

    // Failed logins on A count on B: ten wrong passwords on A (the default threshold), and B
    // refuses even the right one.
    let wrong = [("grant_type", "password"), ("username", "alice"), ("password", "wrong")];
    for _ in 0..10 {
        assert_eq!(token(&http, &a, app, &wrong).await.0, 400);
    }
    let (status, throttled) = token(&http, &b, app, &login).await;
    assert_eq!((status, throttled["error"].as_str()), (429, Some("slow_down")));

    // 240 different wrong passwords for another user at once, split across A and B: the attempt
    // slots live in PostgreSQL, so together the nodes check at most the threshold (10) of them.
    let bob = json!({ "tenant": "acme", "username": "bob", "password": "bob-pw" });
    assert_eq!(json_of(admin("/admin/users", bob)).await.0, 201);
    let tasks: Vec<_> = (0..240)
        .map(|i| {
            let (http, nodes) = (http.clone(), nodes.clone());
            tokio::spawn(async move {
                let url = format!("{}/oauth2/token", nodes[i % 2]);
                let guess = format!("guess-{i}");
                let form = [("grant_type", "password"), ("username", "bob"), ("password", guess.as_str())];
                http.post(url).basic_auth("app", Some("app-secret")).form(&form).send().await.unwrap().status().as_u16()
            })
        })
        .collect();
    let mut checked = 0;
    for task in tasks {
        match task.await.unwrap() {
            400 => checked += 1,
            429 => {}
            other => panic!("burst answer {other}"),
        }
    }
    assert!((1..=10).contains(&checked), "wrong passwords checked across two nodes: {checked}");
    let bob_login = [("grant_type", "password"), ("username", "bob"), ("password", "bob-pw")];
    assert_eq!(token(&http, &a, app, &bob_login).await.0, 429, "the right password waits out the block");

    // A key rotated through A: in B's JWKS at once, used by both after the delay.
    let old_kid = kid(token(&http, &b, svc, &cc).await.1["access_token"].as_str().unwrap());
    let (status, rotated_key) = json_of(admin("/admin/keys", json!({ "alg": "ES256", "publish_delay": 3 }))).await;
    assert_eq!(status, 201);
    let new_kid = rotated_key["kid"].as_str().unwrap().to_owned();
    let jwks_b: Value =
        http.get(format!("{}/.well-known/jwks.json", b.base)).send().await.unwrap().json().await.unwrap();
    let published: Vec<&str> = jwks_b["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap()).collect();
    assert!(published.contains(&new_kid.as_str()) && published.contains(&old_kid.as_str()), "{published:?}");
    for node in [&a, &b] {
        let before = token(&http, node, svc, &cc).await.1["access_token"].as_str().unwrap().to_owned();
        assert_eq!(kid(&before), old_kid, "not signing with the new key before its delay");
        verify(&http, node, &before).await;
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    for node in [&a, &b] {
        let after = token(&http, node, svc, &cc).await.1["access_token"].as_str().unwrap().to_owned();
        assert_eq!(kid(&after), new_kid, "both nodes sign with the new key after the delay");
        let other = if std::ptr::eq(node, &a) { &b } else { &a };
        verify(&http, other, &after).await;
    }
    drop((a, b));
    db.drop_it().await;
}

/// A change made through one node (or the CLI) applies on the other on its next request, well
/// within the client cache's lifetime: PostgreSQL NOTIFY tells every node.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_disable_on_one_node_is_refused_on_the_other_at_once() {
    let Ok(admin_url) = std::env::var("PORTERO_TEST_POSTGRES_URL") else {
        use std::io::Write as _;
        let _ =
            writeln!(std::io::stderr(), "SKIPPED: two-node lifecycle test (set PORTERO_TEST_POSTGRES_URL to run it)");
        return;
    };
    let db = Database::create(&admin_url, "notify").await;
    let dir = tempfile::tempdir().unwrap();
    // A long client cache and key reload: only the announcement can explain a prompt refusal.
    std::fs::write(dir.path().join("portero.toml"), "client_cache_seconds = 300\nkey_reload_seconds = 300\n").unwrap();
    let master_key = "bm90aWZ5LXRlc3QtbWFzdGVyLWtleS0zMi1ieXRlcyE=";
    let a = start_node(dir.path(), &db.url, master_key);
    let b = start_node(dir.path(), &db.url, master_key);
    let http = reqwest::Client::new();
    let admin =
        |method: reqwest::Method, path: &str| http.request(method, format!("{}{path}", a.base)).bearer_auth(ADMIN);
    let (_, svc) = json_of(
        admin(reqwest::Method::POST, "/admin/clients").json(&json!({ "id": "svc", "grants": ["client_credentials"] })),
    )
    .await;
    let secret = svc["client_secret"].as_str().unwrap().to_owned();
    let cc = [("grant_type", "client_credentials")];
    let (status, _) = token(&http, &b, ("svc", &secret), &cc).await;
    assert_eq!(status, 200, "B has read and cached the client");

    let started = Instant::now();
    let (status, _) = json_of(admin(reqwest::Method::POST, "/admin/clients/svc/disable")).await;
    assert_eq!(status, 200);
    let mut refused_after = None;
    while started.elapsed() < Duration::from_secs(3) {
        if token(&http, &b, ("svc", &secret), &cc).await.0 == 401 {
            refused_after = Some(started.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let refused_after = refused_after.expect("B refused the disabled client");
    eprintln!("disabled on A, refused on B after {refused_after:?}");

    // The CLI is a third process on the same database: its change reaches B the same way.
    let (status, _) = json_of(admin(reqwest::Method::POST, "/admin/clients/svc/enable")).await;
    assert_eq!(status, 200);
    let started = Instant::now();
    while token(&http, &b, ("svc", &secret), &cc).await.0 != 200 {
        assert!(started.elapsed() < Duration::from_secs(3), "B still refuses a client A enabled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let cli = std::process::Command::new(BIN)
        .args(["client", "disable", "--id", "svc"])
        .env("PORTERO_DATABASE_URL", &db.url)
        .env("PORTERO_MASTER_KEY", master_key)
        .output()
        .unwrap();
    assert!(cli.status.success(), "{}", String::from_utf8_lossy(&cli.stderr));
    let started = Instant::now();
    while token(&http, &b, ("svc", &secret), &cc).await.0 != 401 {
        assert!(started.elapsed() < Duration::from_secs(3), "B still accepts a client the CLI disabled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A key revoked through A leaves B's JWKS at once.
    let (_, keys) = json_of(admin(reqwest::Method::GET, "/admin/keys")).await;
    let kid = keys[0]["kid"].as_str().unwrap().to_owned();
    let (status, revoked) = json_of(admin(reqwest::Method::DELETE, &format!("/admin/keys/{kid}"))).await;
    assert_eq!(status, 200, "{revoked}");
    let started = Instant::now();
    loop {
        let jwks: Value =
            http.get(format!("{}/.well-known/jwks.json", b.base)).send().await.unwrap().json().await.unwrap();
        if !jwks.to_string().contains(&kid) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(3), "B still publishes the revoked key");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop((a, b));
    db.drop_it().await;
}

/// A client blocked on one node is refused on the other within the change feed's delay, though
/// the other had seen it clean and, following the feed, no longer reads its failures per request.
async fn block_on_one_node_refused_on_the_other(database_url: &str, dir: &std::path::Path) {
    let master_key = "YmxvY2stdGVzdC1tYXN0ZXIta2V5LTMyLWJ5dGVzISE=";
    let a = start_node(dir, database_url, master_key);
    let b = start_node(dir, database_url, master_key);
    let http = reqwest::Client::new();
    let create = http
        .post(format!("{}/admin/clients", a.base))
        .bearer_auth(ADMIN)
        .json(&json!({ "id": "svc", "grants": ["client_credentials"] }));
    let (status, svc) = json_of(create).await;
    assert_eq!(status, 201, "{svc}");
    let secret = svc["client_secret"].as_str().unwrap().to_owned();
    let cc = [("grant_type", "client_credentials")];
    for _ in 0..3 {
        assert_eq!(token(&http, &b, ("svc", &secret), &cc).await.0, 200, "B has seen the client clean");
    }
    // The default threshold: ten wrong secrets on A, then A refuses even the right one (its
    // check is the attempt that finds the slots spent, and blocks the client).
    let wrong = 10;
    for _ in 0..wrong {
        assert_eq!(token(&http, &a, ("svc", "guess"), &cc).await.0, 401);
    }
    assert_eq!(token(&http, &a, ("svc", &secret), &cc).await.0, 429, "A refuses the right secret after the failures");
    let started = Instant::now();
    loop {
        let (status, body) = token(&http, &b, ("svc", &secret), &cc).await;
        if status == 429 {
            break;
        }
        assert_eq!(status, 200, "{body}");
        assert!(started.elapsed() < Duration::from_secs(3), "B still serves a client A blocked");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("blocked on A after {wrong} wrong secrets, refused on B after {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_block_on_one_node_is_refused_on_the_other_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("portero.toml"), "").unwrap();
    let url = format!("sqlite://{}", dir.path().join("portero.db").display());
    block_on_one_node_refused_on_the_other(&url, dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_block_on_one_node_is_refused_on_the_other_postgres() {
    let Ok(admin_url) = std::env::var("PORTERO_TEST_POSTGRES_URL") else {
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), "SKIPPED: two-node block test (set PORTERO_TEST_POSTGRES_URL to run it)");
        return;
    };
    let db = Database::create(&admin_url, "block").await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("portero.toml"), "").unwrap();
    block_on_one_node_refused_on_the_other(&db.url, dir.path()).await;
    db.drop_it().await;
}
