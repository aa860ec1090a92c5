//! The lifecycle commands through the real binary, against a running server on SQLite.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::cli::{ok, run_with_stdin};
use super::nodes::BIN;

fn portero(dir: &Path, args: &[&str], stdin: Option<&str>) -> std::process::Output {
    let mut command = Command::new(BIN);
    command.args(["--config", "portero.toml"]).args(args).current_dir(dir).env_remove("PORTERO_DATABASE_URL");
    command.env("PORTERO_MASTER_KEY", "b3BlcmF0b3ItdGVzdC1tYXN0ZXIta2V5LTMyLWJ5dGU=");
    run_with_stdin(command, stdin)
}

fn refused(output: std::process::Output) -> String {
    assert!(!output.status.success(), "should have failed: {}", String::from_utf8_lossy(&output.stdout));
    String::from_utf8_lossy(&output.stderr).into_owned()
}

async fn token(http: &reqwest::Client, base: &str, client: (&str, &str), form: &[(&str, &str)]) -> (u16, Value) {
    let response =
        http.post(format!("{base}/oauth2/token")).basic_auth(client.0, Some(client.1)).form(form).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_lifecycle_command_through_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // No client cache: a CLI change on SQLite is seen on the server's next request.
    std::fs::write(d.join("portero.toml"), "database_url = \"sqlite://portero.db\"\nclient_cache_seconds = 0\n")
        .unwrap();
    ok(portero(d, &["--create", "tenant", "create", "acme"], None));
    ok(portero(d, &["tenant", "create", "empty"], None));
    let grants = ["client", "create", "--id", "app", "--secret", "app-secret", "--grants", "password,refresh_token"];
    ok(portero(d, &[&grants[..], &["--tenant", "acme", "--scopes", "sale cancel"]].concat(), None));
    ok(portero(d, &["user", "create", "--tenant", "acme", "--username", "ana"], Some("ana-password\n")));

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let listen = format!("127.0.0.1:{port}");
    let mut server = Command::new(BIN)
        .args(["--config", "portero.toml", "serve", "--listen", &listen])
        .current_dir(d)
        .env("PORTERO_MASTER_KEY", "b3BlcmF0b3ItdGVzdC1tYXN0ZXIta2V5LTMyLWJ5dGU=")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while std::net::TcpStream::connect(&listen).is_err() {
        assert!(started.elapsed() < Duration::from_secs(30), "portero serve did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (http, base) = (reqwest::Client::new(), format!("http://{listen}"));
    let app = ("app", "app-secret");
    let login = [("grant_type", "password"), ("username", "ana"), ("password", "ana-password")];

    // client update / show
    ok(portero(d, &["client", "update", "--id", "app", "--scopes", "sale", "--token-ttl", "90"], None));
    let shown: Value = serde_json::from_str(&ok(portero(d, &["client", "show", "--id", "app"], None))).unwrap();
    assert_eq!((shown["scopes"].as_str(), shown["token_ttl"].as_i64()), (Some("sale"), Some(90)));
    let (status, tokens) = token(&http, &base, app, &login).await;
    assert_eq!((status, tokens["expires_in"].as_i64()), (200, Some(90)), "{tokens}");
    refused(portero(d, &["client", "update", "--id", "app", "--ignore-unknown-scopes", "maybe"], None));

    // client disable / enable
    ok(portero(d, &["client", "disable", "--id", "app"], None));
    assert_eq!(token(&http, &base, app, &login).await.0, 401);
    ok(portero(d, &["client", "enable", "--id", "app"], None));
    assert_eq!(token(&http, &base, app, &login).await.0, 200);

    // user list / set-password / disable / enable
    let listed = ok(portero(d, &["user", "list", "--tenant", "acme"], None));
    assert!(listed.contains("\tana\tenabled"), "{listed}");
    ok(portero(d, &["user", "set-password", "--tenant", "acme", "--username", "ana"], Some("new-password\n")));
    assert_eq!(token(&http, &base, app, &login).await.0, 400, "the old password is gone");
    let relogin = [("grant_type", "password"), ("username", "ana"), ("password", "new-password")];
    let (status, tokens) = token(&http, &base, app, &relogin).await;
    assert_eq!(status, 200);
    ok(portero(d, &["user", "disable", "--tenant", "acme", "--username", "ana"], None));
    assert_eq!(token(&http, &base, app, &relogin).await.0, 400);
    let refresh = [("grant_type", "refresh_token"), ("refresh_token", tokens["refresh_token"].as_str().unwrap())];
    assert_eq!(token(&http, &base, app, &refresh).await.0, 400, "a disabled user's refresh tokens stop");
    ok(portero(d, &["user", "enable", "--tenant", "acme", "--username", "ana"], None));
    let (status, tokens) = token(&http, &base, app, &relogin).await;
    assert_eq!(status, 200);

    // tokens revoke
    ok(portero(d, &["tokens", "revoke", "--client", "app"], None));
    let refresh = [("grant_type", "refresh_token"), ("refresh_token", tokens["refresh_token"].as_str().unwrap())];
    assert_eq!(token(&http, &base, app, &refresh).await.0, 400);
    ok(portero(d, &["tokens", "revoke", "--tenant", "acme", "--username", "ana"], None));
    refused(portero(d, &["tokens", "revoke", "--tenant", "acme"], None));

    // tenant delete: refused while something belongs to it
    let why = refused(portero(d, &["tenant", "delete", "acme"], None));
    assert!(why.contains("app") && why.contains("ana"), "{why}");
    ok(portero(d, &["tenant", "delete", "empty"], None));

    // keys revoke: the signing key goes, a new one signs
    let keys = ok(portero(d, &["keys", "list"], None));
    let kid = keys.split('\t').next().unwrap().to_owned();
    ok(portero(d, &["keys", "revoke", "--kid", &kid], None));
    let keys = ok(portero(d, &["keys", "list"], None));
    assert!(keys.lines().any(|l| l.starts_with(&kid) && l.contains("retired")), "{keys}");
    refused(portero(d, &["keys", "revoke", "--kid", &kid], None));

    // user delete, client delete
    ok(portero(d, &["user", "delete", "--tenant", "acme", "--username", "ana"], None));
    ok(portero(d, &["client", "delete", "--id", "app"], None));
    assert_eq!(token(&http, &base, app, &relogin).await.0, 401);
    refused(portero(d, &["client", "show", "--id", "app"], None));
    ok(portero(d, &["tenant", "delete", "acme"], None));
    let _ = server.kill();
    let _ = server.wait();
}
