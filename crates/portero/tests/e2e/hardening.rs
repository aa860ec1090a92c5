//! The binary's defences from issue 10: file modes, logs without query values, the Pay-me
//! version header from `portero token`, and where `/metrics` is served.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_portero");

/// A `portero serve` whose stderr goes to a file (to read its log).
struct Running {
    child: Child,
    base: String,
    log: PathBuf,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Running {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap()
    }
}

fn free_address() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    format!("127.0.0.1:{port}")
}

fn wait_for(address: &str) {
    let started = Instant::now();
    while std::net::TcpStream::connect(address).is_err() {
        assert!(started.elapsed() < Duration::from_secs(30), "nothing listens on {address}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `portero ARGS` under `sh` with the given umask, so file modes do not depend on the test's.
fn under_umask(umask: &str, dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> Command {
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(format!("umask {umask} && exec \"$0\" \"$@\""))
        .arg(BIN)
        .args(args)
        .current_dir(dir)
        .env_remove("PORTERO_MASTER_KEY")
        .env_remove("PORTERO_DATABASE_URL")
        .env_remove("PORTERO_METRICS_LISTEN")
        .env_remove("PORTERO_METRICS_TOKEN")
        .env_remove("RUST_LOG");
    for (name, value) in envs {
        command.env(name, value);
    }
    command
}

fn serve(dir: &Path, extra: &[&str], envs: &[(&str, &str)]) -> Running {
    let listen = free_address();
    let mut args = vec!["serve", "--listen", &listen];
    args.extend_from_slice(extra);
    let log = dir.join(format!("serve-{}.log", listen.replace([':', '.'], "-")));
    let child = under_umask("022", dir, &args, envs)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    wait_for(&listen);
    Running { child, base: format!("http://{listen}"), log }
}

use crate::cli::ok;

fn portero(dir: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    crate::cli::run_with_stdin(under_umask("022", dir, args, &[]), stdin)
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o777
}

/// The SQLite file and its `-wal`/`-shm` hold password hashes: owner-only, whatever the umask.
#[cfg(unix)]
#[test]
fn the_sqlite_files_are_created_owner_only() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = serve(d, &[], &[]);
    // A write, so the WAL exists with content while the server holds the database open.
    let created = ok(portero(d, &["client", "create", "--id", "svc", "--grants", "client_credentials"], None));
    assert!(!created.is_empty());
    for name in ["portero.db", "portero.db-wal", "portero.db-shm"] {
        assert_eq!(mode(&d.join(name)), 0o600, "{name} under umask 022");
    }
    drop(server);

    // An admin command on a fresh path, under the most permissive umask.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let output =
        under_umask("000", d, &["--create", "--database-url", "sqlite://admin.db", "tenant", "create", "acme"], &[])
            .output()
            .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(mode(&d.join("admin.db")), 0o600, "admin.db under umask 000");
    for name in ["admin.db-wal", "admin.db-shm"] {
        if d.join(name).exists() {
            assert_eq!(mode(&d.join(name)), 0o600, "{name} under umask 000");
        }
    }
}

/// The Pay-me document makes `ALG-API-VERSION: 1618440906` required: `portero token --dialect
/// json` sends it unasked, and `--header` overrides or drops it.
#[test]
fn portero_token_speaks_pay_me_against_a_server_that_requires_the_version_header() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(portero(d, &["--create", "tenant", "create", "acme"], None));
    let client = [
        "client",
        "create",
        "--id",
        "payme",
        "--secret",
        "pay-me secret",
        "--grants",
        "password,refresh_token",
        "--scopes",
        "post:charges offline_access",
        "--audience",
        "https://api.dev.alignet.io",
        "--tenant",
        "acme",
    ];
    ok(portero(d, &client, None));
    ok(portero(d, &["user", "create", "--tenant", "acme", "--username", "commerce@email.com"], Some("123456\n")));
    let server = serve(d, &["--api-version-header", "ALG-API-VERSION=1618440906"], &[]);
    let url = server.url("/oauth2/token");
    let token = |headers: &[&str]| {
        let mut args = vec!["token", "--url", &url, "--client-id", "payme", "--client-secret", "pay-me secret"];
        args.extend(["--dialect", "pay-me", "--grant", "password", "--username", "commerce@email.com"]);
        args.extend(["--scope", "post:charges", "--audience", "https://api.dev.alignet.io", "--json"]);
        for header in headers {
            args.extend(["--header", header]);
        }
        portero(d, &args, Some("123456\n"))
    };

    let answer: serde_json::Value = serde_json::from_str(&ok(token(&[]))).unwrap();
    assert_eq!((answer["action"].as_str(), answer["success"].as_bool()), (Some("authorize"), Some(true)), "{answer}");
    assert_eq!(answer["authorization"]["meta"]["status"]["code"], "00");
    assert!(answer["access_token"].is_string());

    let ours = ok(token(&["X-Request-Id: abc-123", "ALG-API-VERSION: 1618440906"]));
    assert!(ours.contains("\"success\":true"), "{ours}");
    for headers in [&["ALG-API-VERSION: 1500000000"][..], &["ALG-API-VERSION:"][..]] {
        let refused = token(headers);
        assert!(!refused.status.success(), "{headers:?}");
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(stderr.contains("invalid_request") && stderr.contains("ALG-API-VERSION"), "{headers:?}: {stderr}");
    }
    let bad = token(&["Bad Name: x"]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("invalid name or value"), "{bad:?}");
}

/// Query strings may carry credentials (clients do send them, and are refused): no log line, at
/// any level and in either format, may show their values. The names may appear.
#[test]
fn no_log_line_carries_a_query_strings_values() {
    const ADMIN: &str = "logs-test-admin-token-0123456789";
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let secret =
        ok(portero(d, &["--create", "client", "create", "--id", "svc", "--grants", "client_credentials"], None));
    for format in ["text", "json"] {
        let server = serve(
            d,
            &["--log-format", format],
            &[("RUST_LOG", "trace"), ("PORTERO_ADMIN_TOKEN", ADMIN), ("PORTERO_METRICS_TOKEN", ADMIN)],
        );
        let values: Vec<String> = (0..9).map(|i| format!("QueryValue{i}x{format}Z")).collect();
        let v = |i: usize| values[i].as_str();
        let query = |i: usize| {
            format!(
                "client_secret={}&password={}&refresh_token={}&token={}&grant_type=client_credentials",
                v(i),
                v(i),
                v(i),
                v(i)
            )
        };
        let basic = format!("svc:{secret}");
        let admin = format!("Authorization: Bearer {ADMIN}");
        let wrong_admin = format!("Authorization: Bearer {}", v(8));
        let requests: Vec<Vec<String>> = vec![
            vec![
                "-u".into(),
                basic.clone(),
                "-d".into(),
                "grant_type=client_credentials".into(),
                server.url(&format!("/oauth2/token?{}", query(0))),
            ],
            vec![
                "-u".into(),
                basic.clone(),
                "-d".into(),
                "".into(),
                server.url(&format!("/oauth-service/oauth/token?{}", query(1))),
            ],
            vec![
                "-u".into(),
                basic.clone(),
                "-d".into(),
                "token=abc".into(),
                server.url(&format!("/oauth2/introspect?{}", query(2))),
            ],
            vec![
                "-u".into(),
                basic.clone(),
                "-d".into(),
                "token=abc".into(),
                server.url(&format!("/oauth2/revoke?{}", query(3))),
            ],
            vec!["-H".into(), admin.clone(), server.url(&format!("/admin/clients?{}", query(4)))],
            vec![
                "-H".into(),
                admin.clone(),
                "-d".into(),
                "{\"name\":\"x\"".into(),
                server.url(&format!("/admin/tenants?{}", query(5))),
            ],
            vec![server.url(&format!("/oauth2/token?{}", query(6)))],
            vec!["-H".into(), admin, server.url(&format!("/metrics?{}", query(7)))],
            vec!["-H".into(), wrong_admin, server.url("/admin/keys")],
        ];
        for args in &requests {
            let output = Command::new("curl")
                .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}"])
                .args(args)
                .output()
                .unwrap();
            let status = String::from_utf8_lossy(&output.stdout).to_string();
            assert!(status.starts_with('2') || status.starts_with('4'), "{args:?}: {status}");
        }
        std::thread::sleep(Duration::from_millis(300));
        let log_file = server.log.clone();
        drop(server);
        let log = std::fs::read_to_string(log_file).unwrap();
        assert!(log.contains("/oauth2/introspect") && log.contains("/admin/clients"), "the paths are logged:\n{log}");
        assert!(log.contains("token request rejected"), "the rejection is logged:\n{log}");
        assert!(log.contains("client_secret,password,refresh_token,token,grant_type"), "names are logged:\n{log}");
        for value in &values {
            assert!(
                !log.contains(value.as_str()),
                "{format} log shows {value}:\n{}",
                log.lines().filter(|l| l.contains(value.as_str())).collect::<Vec<_>>().join("\n")
            );
        }
        assert!(!log.contains(&secret));
    }
}

/// `curl URL` with extra arguments: (status, body).
fn curl(url: &str, extra: &[&str]) -> (u16, String) {
    let output = Command::new("curl")
        .args(["-sS", "--max-time", "10", "-w", "\n%{http_code}"])
        .args(extra)
        .arg(url)
        .output()
        .unwrap();
    let text = String::from_utf8(output.stdout).unwrap();
    let (body, status) = text.rsplit_once('\n').unwrap();
    (status.parse().unwrap(), body.to_owned())
}

/// `/metrics` labels series by client id: not served unless asked for, then on its own address
/// (`--metrics-listen`, `PORTERO_METRICS_LISTEN`, `metrics_listen`) and/or behind a bearer token
/// (`--metrics-token`, `PORTERO_METRICS_TOKEN`, `metrics_token`).
#[test]
fn metrics_are_private_unless_configured() {
    const TOKEN: &str = "metrics-test-token-0123456789abcdef";
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let secret =
        ok(portero(d, &["--create", "client", "create", "--id", "svc", "--grants", "client_credentials"], None));
    let basic = format!("svc:{secret}");
    let get_token = |server: &Running| {
        let (status, _) = curl(&server.url("/oauth2/token"), &["-u", &basic, "-d", "grant_type=client_credentials"]);
        assert_eq!(status, 200);
    };
    let bearer = format!("Authorization: Bearer {TOKEN}");

    // The default: no /metrics anywhere.
    let server = serve(d, &[], &[]);
    get_token(&server);
    assert_eq!(curl(&server.url("/metrics"), &[]).0, 404);
    assert_eq!(curl(&server.url("/metrics"), &["-H", &bearer]).0, 404);
    assert!(server.log_text().contains("/metrics is off"), "{}", server.log_text());
    drop(server);

    // A token alone: on the main address, behind the token.
    let server = serve(d, &["--metrics-token", TOKEN], &[]);
    get_token(&server);
    assert_eq!(curl(&server.url("/metrics"), &[]).0, 401);
    assert_eq!(
        curl(&server.url("/metrics"), &["-H", "Authorization: Bearer metrics-test-token-0123456789abcdeX"]).0,
        401
    );
    let (status, body) = curl(&server.url("/metrics"), &["-H", &bearer]);
    assert_eq!(status, 200);
    assert!(body.contains("portero_token_requests_total{") && body.contains("svc"), "{body}");
    drop(server);

    // Its own address (from the environment): there and only there, with no token.
    let metrics = free_address();
    let server = serve(d, &[], &[("PORTERO_METRICS_LISTEN", &metrics)]);
    wait_for(&metrics);
    get_token(&server);
    assert_eq!(curl(&server.url("/metrics"), &[]).0, 404);
    let (status, body) = curl(&format!("http://{metrics}/metrics"), &[]);
    assert_eq!(status, 200);
    assert!(body.contains("portero_token_requests_total{"), "{body}");
    assert_eq!(curl(&format!("http://{metrics}/oauth2/token"), &["-d", "grant_type=client_credentials"]).0, 404);
    drop(server);

    // Its own address from the configuration file, and a token from the environment.
    let metrics = free_address();
    std::fs::write(d.join("portero.toml"), format!("metrics_listen = \"{metrics}\"\n")).unwrap();
    let server = serve(d, &["--config", "portero.toml"], &[("PORTERO_METRICS_TOKEN", TOKEN)]);
    wait_for(&metrics);
    assert_eq!(curl(&server.url("/metrics"), &["-H", &bearer]).0, 404);
    assert_eq!(curl(&format!("http://{metrics}/metrics"), &[]).0, 401);
    assert_eq!(curl(&format!("http://{metrics}/metrics"), &["-H", &bearer]).0, 200);
    drop(server);

    let short = portero(d, &["serve", "--listen", &free_address(), "--metrics-token", "short"], None);
    assert!(!short.status.success());
    assert!(String::from_utf8_lossy(&short.stderr).contains("at least 24 characters"));
}

/// Admin API calls show in `portero audit --kind admin_action`, refused ones included.
#[test]
fn admin_actions_are_listed_by_portero_audit() {
    const ADMIN: &str = "audit-test-admin-token-0123456789";
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = serve(d, &[], &[("PORTERO_ADMIN_TOKEN", ADMIN)]);
    let bearer = format!("Authorization: Bearer {ADMIN}");
    let tenants = server.url("/admin/tenants");
    let body = ["-H", "Content-Type: application/json", "-d", "{\"name\":\"shop\"}"];
    assert_eq!(curl(&tenants, &[&["-H", &bearer][..], &body].concat()).0, 201);
    assert_eq!(curl(&tenants, &[&["-H", "Authorization: Bearer wrong-token-value"][..], &body].concat()).0, 401);
    let started = Instant::now();
    let listing = loop {
        let listing = ok(portero(d, &["audit", "--kind", "admin_action"], None));
        if listing.lines().count() >= 2 || started.elapsed() > Duration::from_secs(10) {
            break listing;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let lines: Vec<&str> = listing.lines().collect();
    assert_eq!(lines.len(), 2, "{listing}");
    assert!(lines[0].contains("\tadmin_action\t401\t") && lines[0].ends_with("\tcreate_tenant"), "{listing}");
    assert!(lines[1].contains("\tadmin_action\tok\t") && lines[1].contains("create_tenant tenant shop ("), "{listing}");
    assert!(lines.iter().all(|l| l.contains("from=127.0.0.1")), "{listing}");
    assert!(!listing.contains(ADMIN) && !listing.contains("wrong-token-value"));
}
