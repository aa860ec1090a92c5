//! Installing and running Portero as a new user would: the sample configuration, a missing
//! database, each command's own variables, what the logs and `/metrics` say, the Dockerfile and
//! the systemd unit, and a PostgreSQL that is down when `serve` starts.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::cli::{ok, run_with_stdin};

const BIN: &str = env!("CARGO_BIN_EXE_portero");
const REPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
const METRICS_TOKEN: &str = "install-test-metrics-token-0123456789";

/// `portero ARGS` in `dir`, with none of the test runner's PORTERO_* variables.
fn portero(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = bare(dir);
    command.args(args).envs(env.iter().copied());
    run_with_stdin(command, None)
}

fn bare(dir: &Path) -> Command {
    let mut command = Command::new(BIN);
    command.current_dir(dir);
    for (name, _) in std::env::vars() {
        if name.starts_with("PORTERO_") && name != "PORTERO_TEST_POSTGRES_URL" {
            command.env_remove(name);
        }
    }
    command
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn free_address() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    format!("127.0.0.1:{port}")
}

/// A `portero serve` whose stderr goes to a file (as under systemd or docker logs).
struct Served {
    child: Child,
    log: std::path::PathBuf,
}

impl Served {
    fn start(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        let log = dir.join("serve.log");
        let mut command = bare(dir);
        command.arg("serve").args(args).envs(env.iter().copied());
        command.stdout(Stdio::null()).stderr(std::fs::File::create(&log).unwrap());
        Self { child: command.spawn().unwrap(), log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log has `needle`, failing with the log after `within`.
    fn wait_for_log(&self, needle: &str, within: Duration) -> String {
        let started = Instant::now();
        loop {
            let log = self.log();
            if log.contains(needle) {
                return log;
            }
            assert!(started.elapsed() < within, "no {needle:?} in the log within {within:?}:\n{log}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn curl(args: &[&str]) -> String {
    let output = Command::new("curl").args(["-sS", "--max-time", "10"]).args(args).output().unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The README's first step, `tenant create`, needs `--create` on a fresh directory; without it
/// no command but `serve` makes an empty database, and the error names the file.
#[test]
fn a_missing_database_file_is_refused_unless_created() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let absolute = std::fs::canonicalize(d).unwrap().join("portero.db");
    for args in
        [&["tenant", "list"][..], &["client", "list"], &["keys", "list"], &["audit"], &["tenant", "create", "a"]]
    {
        let output = portero(d, args, &[]);
        assert!(!output.status.success(), "{args:?} succeeded on a missing database");
        let message = stderr(&output);
        assert!(message.contains(&format!("{} does not exist", absolute.display())), "{args:?}: {message}");
        assert!(message.contains("--create"), "{message}");
        assert!(!d.join("portero.db").exists(), "{args:?} created the file");
    }
    let id =
        ok(portero(d, &["tenant", "create", "acme", "--id", "0f8fad5b-d9cb-469f-a165-70867728950e", "--create"], &[]));
    assert_eq!(id, "0f8fad5b-d9cb-469f-a165-70867728950e");
    assert!(ok(portero(d, &["tenant", "list"], &[])).contains("acme"), "the file exists now: no --create needed");
    // --create is global: before the command works too, and on an existing file it changes nothing.
    ok(portero(d, &["--create", "tenant", "list"], &[]));
    // A named file that is missing is refused the same way.
    let other = portero(d, &["--database-url", "sqlite://elsewhere/p.db", "tenant", "list"], &[]);
    assert!(stderr(&other).contains("elsewhere/p.db does not exist"), "{}", stderr(&other));
}

/// Errors from the database say which one: the SQLite file, or the PostgreSQL host without the
/// password.
#[test]
fn database_errors_name_the_file_or_host_but_never_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let output = portero(d, &["--create", "--database-url", "sqlite://no-such-dir/p.db", "tenant", "list"], &[]);
    assert!(!output.status.success());
    let message = stderr(&output);
    let absolute = std::fs::canonicalize(d).unwrap().join("no-such-dir/p.db");
    assert!(message.contains(&absolute.display().to_string()), "{message}");

    // Nothing listens on port 9 of loopback.
    let url = "postgres://portero:hunter2-secret@127.0.0.1:9/portero?sslmode=disable";
    let started = Instant::now();
    let output = portero(d, &["--database-url", url, "tenant", "list"], &[]);
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(message.contains("postgres://portero@127.0.0.1:9/portero"), "{message}");
    assert!(!message.contains("hunter2"), "the password is in the error: {message}");
    assert!(started.elapsed() < Duration::from_secs(20), "took {:?}", started.elapsed());
}

/// `PORTERO_CLIENT_SECRET` belongs to `portero token`: `client create` ignores it and generates a
/// secret; its own variable is `PORTERO_CLIENT_CREATE_SECRET`.
#[test]
fn client_create_and_token_read_their_own_secret_variables() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(portero(d, &["--create", "tenant", "create", "acme"], &[]));
    let token_secret = [("PORTERO_CLIENT_SECRET", "meant-for-portero-token")];
    let create = ["client", "create", "--id", "generated", "--grants", "client_credentials"];
    let generated = ok(portero(d, &create, &token_secret));
    assert_eq!(generated.len(), 43, "a generated secret is printed, not the token command's: {generated:?}");
    let create = ["client", "create", "--id", "chosen", "--grants", "client_credentials"];
    let chosen = portero(d, &create, &[("PORTERO_CLIENT_CREATE_SECRET", "the-chosen-secret-0123")]);
    assert_eq!(ok(chosen), "", "a chosen secret is not printed");

    let address = free_address();
    let _server = Served::start(d, &["--listen", &address], &[]);
    wait_until_listening(&address);
    let url = format!("http://{address}/oauth2/token");
    let args = ["token", "--url", &url, "--client-id", "chosen"];
    let token = ok(portero(d, &args, &[("PORTERO_CLIENT_SECRET", "the-chosen-secret-0123")]));
    assert_eq!(token.split('.').count(), 3, "{token}");
}

fn wait_until_listening(address: &str) {
    let started = Instant::now();
    while std::net::TcpStream::connect(address).is_err() {
        assert!(started.elapsed() < Duration::from_secs(30), "portero serve did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `./portero.toml` is read without `--config`, by `serve` and by the admin commands; the log,
/// written to a file, has the version and no colour codes; `/metrics` has the build info; key
/// times are RFC 3339.
#[test]
fn portero_toml_in_the_working_directory_version_in_log_and_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let address = free_address();
    let config = format!(
        "listen = \"{address}\"\ndatabase_url = \"sqlite://from-file.db\"\nmetrics_token = \"{METRICS_TOKEN}\"\n"
    );
    std::fs::write(d.join("portero.toml"), config).unwrap();
    ok(portero(d, &["--create", "tenant", "create", "acme"], &[]));
    assert!(d.join("from-file.db").exists() && !d.join("portero.db").exists(), "database_url from ./portero.toml");

    let server = Served::start(d, &[], &[]);
    let log = server.wait_for_log("portero is serving", Duration::from_secs(30));
    wait_until_listening(&address);
    let version = env!("CARGO_PKG_VERSION");
    let line = log.lines().find(|l| l.contains("portero is serving")).unwrap();
    assert!(line.contains(&format!("version={version}")) || line.contains(&format!("version=\"{version}\"")), "{line}");
    assert!(line.contains(&address), "listen from ./portero.toml: {line}");
    assert!(!log.contains('\u{1b}'), "colour codes in a log file: {log:?}");

    let metrics =
        curl(&["-H", &format!("Authorization: Bearer {METRICS_TOKEN}"), &format!("http://{address}/metrics")]);
    assert!(metrics.contains(&format!("portero_build_info{{version=\"{version}\"}} 1")), "{metrics}");

    let keys = ok(portero(d, &["keys", "list"], &[]));
    let created = keys.split("created=").nth(1).unwrap().split('\t').next().unwrap();
    assert!(is_rfc3339(created), "keys list: {keys}");
    let rotated = portero(d, &["keys", "rotate", "--publish-delay", "60"], &[]);
    assert!(rotated.status.success());
    let said = stderr(&rotated);
    let from = said.split("signs from ").nth(1).unwrap().split(' ').next().unwrap();
    assert!(is_rfc3339(from), "{said}");
    assert!(!said.contains('\u{1b}'), "{said:?}");

    // With JSON logs too, and an explicit --config still wins over ./portero.toml.
    drop(server);
    let elsewhere = free_address();
    std::fs::write(
        d.join("other.toml"),
        format!("listen = \"{elsewhere}\"\ndatabase_url = \"sqlite://from-file.db\"\n"),
    )
    .unwrap();
    let server = Served::start(d, &["--config", "other.toml", "--log-format", "json"], &[]);
    let log = server.wait_for_log("portero is serving", Duration::from_secs(30));
    let line: serde_json::Value =
        serde_json::from_str(log.lines().find(|l| l.contains("portero is serving")).unwrap()).unwrap();
    assert_eq!(line["fields"]["version"], version, "{line}");
    assert_eq!(line["fields"]["address"], elsewhere.as_str(), "{line}");
}

fn is_rfc3339(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'Z'
        && text.starts_with("20")
}

/// The sample configuration, copied to `./portero.toml` as the README says, starts the server.
#[test]
fn the_sample_configuration_starts_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::copy(Path::new(REPO).join("deploy/portero.toml"), d.join("portero.toml")).unwrap();
    let address = free_address();
    let server = Served::start(d, &[], &[("PORTERO_LISTEN", &address)]);
    server.wait_for_log("portero is serving", Duration::from_secs(30));
    wait_until_listening(&address);
    assert_eq!(curl(&[&format!("http://{address}/readyz")]), "ready");
    assert!(d.join("portero.db").exists());
}

/// `--help` names the variables no flag stands for.
#[test]
fn help_names_the_master_key_and_admin_token() {
    let dir = tempfile::tempdir().unwrap();
    for args in [&["--help"][..], &["serve", "--help"]] {
        let help = ok(portero(dir.path(), args, &[]));
        assert!(help.contains("PORTERO_MASTER_KEY ") && help.contains("PORTERO_ADMIN_TOKEN"), "{help}");
        assert!(help.contains("./portero.toml"), "{help}");
    }
}

/// The unit file passes `systemd-analyze verify` (ExecStart pointed at an existing binary).
#[test]
fn the_systemd_unit_verifies() {
    let Ok(version) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("SKIPPED: systemd-analyze is not installed; deploy/portero.service was not verified");
        return;
    };
    assert!(version.status.success());
    let unit = std::fs::read_to_string(Path::new(REPO).join("deploy/portero.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/local/bin/portero serve"));
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("portero.service");
    std::fs::write(&copy, unit.replace("/usr/local/bin/portero", BIN)).unwrap();
    let output = Command::new("systemd-analyze").arg("verify").arg(&copy).output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&output.stdout), stderr(&output));
    assert!(output.status.success() && said.trim().is_empty(), "systemd-analyze verify: {said}");
}

/// The Dockerfile's promises, read from it; and a real build when podman and the base images are
/// here (no registry is reachable from this test machine, so it says SKIPPED otherwise).
#[test]
fn the_dockerfile_builds_a_non_root_image_serving_on_8080() {
    let dockerfile = std::fs::read_to_string(Path::new(REPO).join("Dockerfile")).unwrap();
    for needle in [
        "AS build",
        "USER 65532:65532",
        "PORTERO_LISTEN=0.0.0.0:8080",
        "PORTERO_DATABASE_URL=sqlite:///data/portero.db",
        "VOLUME [\"/data\"]",
        "EXPOSE 8080",
        "ENTRYPOINT [\"/usr/local/bin/portero\"]",
        "CMD [\"serve\"]",
    ] {
        assert!(dockerfile.contains(needle), "the Dockerfile lacks {needle:?}");
    }
    let bases: Vec<&str> =
        dockerfile.lines().filter_map(|l| l.strip_prefix("FROM ")).map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(bases.len(), 2, "two stages");
    let podman_has = |image: &str| {
        Command::new("podman").args(["image", "exists", image]).status().is_ok_and(|status| status.success())
    };
    if !bases.iter().all(|image| podman_has(image)) {
        eprintln!(
            "SKIPPED: building the Dockerfile needs podman and the base images {bases:?} locally; not built here"
        );
        return;
    }
    let tag = format!("localhost/portero-test:{}", std::process::id());
    let built = Command::new("podman").args(["build", "--pull=never", "-t", &tag, REPO]).status().unwrap();
    assert!(built.success(), "podman build failed");
    let user =
        Command::new("podman").args(["image", "inspect", "--format", "{{.Config.User}}", &tag]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&user.stdout).trim(), "65532:65532");
    let _ = Command::new("podman").args(["rmi", "-f", &tag]).status();
}

/// PostgreSQL is down when `serve` starts: it answers `/healthz`, gives 503 on `/readyz` and the
/// token endpoint, keeps retrying, and serves once the database is back, without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_waits_for_a_postgres_that_is_down_at_start() {
    use super::outage::{Link, Proxy, url_address};
    let Ok(admin_url) = std::env::var("PORTERO_TEST_POSTGRES_URL") else {
        eprintln!("SKIPPED: serve waiting for PostgreSQL (set PORTERO_TEST_POSTGRES_URL to run it)");
        return;
    };
    let db = super::nodes::Database::create(&admin_url, "waits").await;
    let upstream = url_address(&db.url);
    let proxy = Proxy::start(upstream).await;
    proxy.set(Link::Down);
    let proxied = db.url.replacen(&upstream.to_string(), &proxy.address.to_string(), 1);
    let dir = tempfile::tempdir().unwrap();
    let address = free_address();
    let master_key = ("PORTERO_MASTER_KEY", "d2FpdHMtdGVzdC0zMi1ieXRlcy1tYXN0ZXIta2V5ISE=");
    let server = Served::start(dir.path(), &["--listen", &address], &[("PORTERO_DATABASE_URL", &proxied), master_key]);
    tokio::task::block_in_place(|| server.wait_for_log("is not reachable", Duration::from_secs(30)));

    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let get = |path: &str| http.get(format!("http://{address}{path}")).send();
    assert_eq!(get("/healthz").await.unwrap().status(), 200);
    assert_eq!(get("/readyz").await.unwrap().status(), 503);
    let token = || {
        http.post(format!("http://{address}/oauth2/token"))
            .basic_auth("nobody", Some("wrong"))
            .form(&[("grant_type", "client_credentials")])
            .send()
    };
    let refused = token().await.unwrap();
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "1");
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable", "{body}");

    proxy.set(Link::Up);
    let started = Instant::now();
    while get("/readyz").await.map(|r| r.status().as_u16()).unwrap_or(0) != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "not ready a minute after the database came back:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The real endpoint answers now: an unknown client is 401, not 503.
    assert_eq!(token().await.unwrap().status(), 401);
    let log = server.log();
    assert!(log.contains("is reachable: starting") && log.contains("portero is serving"), "{log}");
    drop(server);
    db.drop_it().await;
}
