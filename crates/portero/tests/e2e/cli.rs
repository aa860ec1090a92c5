//! `serve` on a fresh directory, the admin commands, and
//! `portero token` in every dialect against it.

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_portero");

struct Serve {
    child: Child,
    base: String,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn portero(dir: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut command = Command::new(BIN);
    command.args(args).current_dir(dir).env_remove("PORTERO_MASTER_KEY").env_remove("PORTERO_DATABASE_URL");
    run_with_stdin(command, stdin)
}

/// Runs `command` to its end, writing `stdin` (if any) to it, and keeps its output.
pub(crate) fn run_with_stdin(mut command: Command, stdin: Option<&str>) -> Output {
    let mut child = command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

pub(crate) fn ok(output: Output) -> String {
    assert!(output.status.success(), "failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

fn serve(dir: &Path, extra: &[&str]) -> Serve {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut args = vec!["serve", "--listen", &listen];
    args.extend_from_slice(extra);
    let child = Command::new(BIN)
        .args(&args)
        .current_dir(dir)
        .env_remove("PORTERO_MASTER_KEY")
        .env_remove("PORTERO_DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://{listen}");
    let started = Instant::now();
    while std::net::TcpStream::connect(&listen).is_err() {
        assert!(started.elapsed() < Duration::from_secs(30), "portero serve did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Serve { child, base }
}

fn claims(token: &str) -> serde_json::Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

#[test]
fn serve_admin_and_token_in_every_dialect() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = serve(d, &["--api-version-header", "ALG-API-VERSION=1618440906"]);

    // Defaults: SQLite at ./portero.db and a 0600 master key file beside it.
    assert!(d.join("portero.db").exists());
    let key_file = d.join("portero.db.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777, 0o600);
    }

    let tenant = ok(portero(d, &["tenant", "create", "acme", "--id", "0f8fad5b-d9cb-469f-a165-70867728950e"], None));
    assert_eq!(tenant, "0f8fad5b-d9cb-469f-a165-70867728950e");
    let generated = ok(portero(
        d,
        &[
            "client",
            "create",
            "--id",
            "zertiban",
            "--grants",
            "client_credentials",
            "--scopes",
            "api",
            "--tenant",
            "acme",
            "--token-ttl",
            "300",
            "--ignore-unknown-scopes",
        ],
        None,
    ));
    assert_eq!(generated.len(), 43, "a generated secret is printed once");
    ok(portero(
        d,
        &[
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
            "--refresh-tokens",
            "offline_access",
            "--locale",
            "en_US",
        ],
        None,
    ));
    let user_id =
        ok(portero(d, &["user", "create", "--tenant", "acme", "--username", "commerce@email.com"], Some("123456\n")));
    assert_eq!(user_id.len(), 36);

    let url = format!("{}/oauth2/token", server.base);
    for dialect in ["basic", "post", "query", "zertiban", "nequi"] {
        let token = ok(portero(
            d,
            &["token", "--url", &url, "--client-id", "zertiban", "--client-secret", &generated, "--dialect", dialect],
            None,
        ));
        let c = claims(&token);
        assert_eq!(c["client_id"], "zertiban", "{dialect}");
        assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 300);
    }
    let response = ok(portero(
        d,
        &[
            "token",
            "--url",
            &url,
            "--client-id",
            "payme",
            "--client-secret",
            "pay-me secret",
            "--dialect",
            "json",
            "--grant",
            "password",
            "--username",
            "commerce@email.com",
            "--scope",
            "post:charges offline_access",
            "--audience",
            "https://api.dev.alignet.io",
            "--header",
            "ALG-API-VERSION=1618440906",
            "--json",
        ],
        Some("123456\n"),
    ));
    let body: serde_json::Value = serde_json::from_str(&response).unwrap();
    assert_eq!(body["success"], true);
    assert_eq!(body["authorization"]["meta"]["status"]["message_ilgn"][0]["value"], "Access Token created");
    assert!(body["refresh_token"].is_string());
    assert_eq!(claims(body["access_token"].as_str().unwrap())["sub"], user_id);

    // A wrong secret: the command fails and says why, without echoing the secret.
    let failed =
        portero(d, &["token", "--url", &url, "--client-id", "zertiban", "--client-secret", "nope-secret"], None);
    assert!(!failed.status.success());
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(stderr.contains("invalid_client") && !stderr.contains("nope-secret"), "{stderr}");

    let listing = ok(portero(d, &["client", "list"], None));
    assert!(listing.contains("zertiban") && !listing.contains(&generated));
    drop(server);
}

#[test]
fn key_rotation_is_published_then_used() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("portero.toml"), "key_reload_seconds = 1\nsigning_alg = \"ES256\"\n").unwrap();
    let server = serve(d, &["--config", "portero.toml"]);
    let secret = ok(portero(d, &["client", "create", "--id", "svc", "--grants", "client_credentials"], None));
    let url = format!("{}/oauth2/token", server.base);
    let kid_of = |token: &str| {
        use base64::Engine;
        let header = token.split('.').next().unwrap();
        let header: serde_json::Value =
            serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
        header["kid"].as_str().unwrap().to_owned()
    };
    let token_args = ["token", "--url", &url, "--client-id", "svc", "--client-secret", &secret];
    let first_kid = kid_of(&ok(portero(d, &token_args, None)));
    let listed = ok(portero(d, &["keys", "list"], None));
    assert!(listed.contains(&first_kid) && listed.contains("ES256"));

    let new_kid = ok(portero(d, &["keys", "rotate", "--alg", "EdDSA", "--publish-delay", "0"], None));
    let started = Instant::now();
    loop {
        let kid = kid_of(&ok(portero(d, &token_args, None)));
        if kid == new_kid {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "the rotated key was never used");
        std::thread::sleep(Duration::from_millis(200));
    }
    let jwks =
        ok(Command::new("curl").args(["-sS", &format!("{}/.well-known/jwks.json", server.base)]).output().unwrap());
    assert!(jwks.contains(&first_kid) && jwks.contains(&new_kid), "old and new keys stay published");
}

#[test]
fn bad_flags_give_clear_errors() {
    // Generated secrets are base64url: one may start with '-', and must still be accepted.
    let dir = tempfile::tempdir().unwrap();
    let url = "--url=http://127.0.0.1:9/oauth2/token";
    let hyphen = portero(dir.path(), &["token", url, "--client-id", "x", "--client-secret", "-dash-first"], None);
    assert!(!String::from_utf8_lossy(&hyphen.stderr).contains("unexpected argument"), "{:?}", hyphen);

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(portero(d, &["--create", "tenant", "list"], None));
    let cases: [(&[&str], &str); 6] = [
        (&["client", "create", "--id", "x", "--grants", "implicit"], "unknown grant"),
        (&["client", "create", "--id", "x", "--grants", "password", "--tenant", "nope"], "no tenant"),
        (
            &["client", "create", "--id", "x", "--grants", "password", "--refresh-tokens", "sometimes"],
            "refresh tokens must be",
        ),
        (&["client", "create", "--id", "x", "--grants", "password", "--token-ttl", "0"], "token ttl"),
        (&["tenant", "create", "acme", "--id", "not-a-uuid"], "UUID"),
        (&["keys", "rotate", "--alg", "HS256"], "unknown signing algorithm"),
    ];
    for (args, expected) in cases {
        let output = portero(d, args, None);
        assert!(!output.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    ok(portero(d, &["tenant", "create", "acme"], None));
    let duplicate = portero(d, &["tenant", "create", "acme"], None);
    assert!(String::from_utf8_lossy(&duplicate.stderr).contains("already exists"));
    let empty_password = portero(d, &["user", "create", "--tenant", "acme", "--username", "u"], Some("\n"));
    assert!(String::from_utf8_lossy(&empty_password.stderr).contains("empty"));
}

/// SIGTERM stops accepting, lets the request in flight finish with 200, then exits cleanly.
#[cfg(unix)]
#[test]
fn sigterm_drains_in_flight_requests() {
    use std::io::{Read, Write as _};

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let secret =
        ok(portero(d, &["--create", "client", "create", "--id", "svc", "--grants", "client_credentials"], None));
    let mut server = serve(d, &[]);
    let address = server.base.trim_start_matches("http://").to_owned();
    let body = "grant_type=client_credentials";
    let basic = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(format!("svc:{secret}"))
    };

    // A request whose body is still on its way when the signal arrives.
    let mut stream = std::net::TcpStream::connect(&address).unwrap();
    let head = format!(
        "POST /oauth2/token HTTP/1.1\r\nHost: {address}\r\nAuthorization: Basic {basic}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(&body.as_bytes()[..10]).unwrap();
    std::thread::sleep(Duration::from_millis(200));

    let killed = Command::new("kill").args(["-TERM", &server.child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    std::thread::sleep(Duration::from_millis(300));
    assert!(std::net::TcpStream::connect(&address).is_err(), "no new connections once draining");

    stream.write_all(&body.as_bytes()[10..]).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "the in-flight request finished: {answer}");
    assert!(answer.contains("access_token"));

    let started = Instant::now();
    loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            assert!(status.success(), "portero exited cleanly: {status}");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "portero did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `--tls-cert`/`--tls-key`: tokens over HTTPS, verified by curl against the certificate; plain
/// HTTP on the same port gets no token; a missing certificate stops `serve` with a clear error.
#[test]
fn serves_https_with_a_given_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    std::fs::write(d.join("cert.pem"), certified.cert.pem()).unwrap();
    std::fs::write(d.join("key.pem"), certified.signing_key.serialize_pem()).unwrap();
    let secret =
        ok(portero(d, &["--create", "client", "create", "--id", "svc", "--grants", "client_credentials"], None));

    let missing = portero(d, &["serve", "--tls-cert", "nope.pem", "--tls-key", "key.pem"], None);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("loading TLS certificate nope.pem"));

    let server = serve(d, &["--tls-cert", "cert.pem", "--tls-key", "key.pem"]);
    let https = server.base.replace("http://", "https://");
    let credentials = format!("svc:{secret}");
    let curl = |base: &str| {
        Command::new("curl")
            .args(["-sS", "--max-time", "10", "--cacert", "cert.pem", "-u", &credentials])
            .args(["-d", "grant_type=client_credentials", &format!("{base}/oauth2/token")])
            .current_dir(d)
            .output()
            .unwrap()
    };
    let answer: serde_json::Value = serde_json::from_str(&ok(curl(&https))).unwrap();
    assert_eq!(answer["token_type"], "Bearer", "{answer}");
    assert_eq!(claims(answer["access_token"].as_str().unwrap())["client_id"], "svc");

    let plain = curl(&server.base);
    assert!(!String::from_utf8_lossy(&plain.stdout).contains("access_token"), "no token over plain HTTP");
}

/// `portero audit` shows what the server did: issued, refused, reused, revoked; never a secret.
#[test]
fn audit_trail_is_queryable_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let args = ["client", "create", "--id", "svc", "--grants", "client_credentials", "--secret", "svc-secret-0123"];
    ok(portero(d, &[&["--create"], &args[..]].concat(), None));
    let server = serve(d, &[]);
    let curl = |user: &str, form: &[&str], path: &str| {
        let mut command = Command::new("curl");
        command.args(["-sS", "-u", user]);
        for field in form {
            command.args(["-d", field]);
        }
        ok(command.arg(format!("{}{path}", server.base)).output().unwrap())
    };
    let issued: serde_json::Value =
        serde_json::from_str(&curl("svc:svc-secret-0123", &["grant_type=client_credentials"], "/oauth2/token"))
            .unwrap();
    let access = issued["access_token"].as_str().unwrap();
    curl("svc:wrong-guess", &["grant_type=client_credentials"], "/oauth2/token");
    curl("svc:svc-secret-0123", &[&format!("token={access}")], "/oauth2/revoke");

    // Issued tokens are written at once; refusals are counted and written about every second.
    let started = Instant::now();
    let listing = loop {
        let listing = ok(portero(d, &["audit", "--since", "1h"], None));
        if listing.lines().count() >= 3 || started.elapsed() > Duration::from_secs(10) {
            break listing;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let lines: Vec<&str> = listing.lines().collect();
    assert_eq!(lines.len(), 3, "{listing}");
    // Each line starts with its time, RFC 3339 in UTC: 2026-12-02T14:26:43Z.
    for line in &lines {
        let at = line.split('\t').next().unwrap();
        assert!(at.len() == 20 && at.as_bytes()[10] == b'T' && at.ends_with('Z'), "{line}");
    }
    assert!(lines[0].contains("\ttoken_revoked\trevoked\tclient=svc\t"), "{listing}");
    // The wrong secret is listed under the id it presented, marked as not proven.
    assert!(lines[1].contains("\ttoken_refused\tinvalid_client\tclient=svc (unauthenticated)\t"), "{listing}");
    assert!(lines[1].contains("from=127.0.0.1"), "{listing}");
    assert!(lines[2].contains("\ttoken_issued\tissued\tclient=svc\tsub=svc\tgrant=client_credentials"), "{listing}");
    assert!(!listing.contains("svc-secret-0123") && !listing.contains("wrong-guess") && !listing.contains(access));

    let json = ok(portero(d, &["audit", "--client", "svc", "--kind", "token_issued", "--json"], None));
    let event: serde_json::Value = serde_json::from_str(json.lines().next().unwrap()).unwrap();
    assert_eq!((event["kind"].as_str(), event["client_id"].as_str()), (Some("token_issued"), Some("svc")));
    let refused = ok(portero(d, &["audit", "--client", "svc", "--kind", "token_refused"], None));
    assert_eq!(refused.lines().count(), 1, "the attack on svc is found under svc: {refused}");
    let bad = portero(d, &["audit", "--kind", "everything"], None);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown kind"));
}

#[test]
fn client_create_with_a_jwk_set_for_private_key_jwt() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let _server = serve(d, &[]);
    let key = r#"{"kty": "EC", "crv": "P-256", "x": "ZJlQIa9GcRQte7jTkxqRcT47FsYyDgZ0e0agQH_Q0QE",
        "y": "fPkBiVGxNgfq3GhO_Jh6ghjSjOfBIc1EI09n7aNJ8lo", "kid": "k1""#;
    std::fs::write(d.join("jwks.json"), format!("{{\"keys\": [{key}}}]}}")).unwrap();
    std::fs::write(d.join("private.json"), format!("{{\"keys\": [{key}, \"d\": \"AAAA\"}}]}}")).unwrap();
    let create = |id: &str, file: &str| {
        let args = ["client", "create", "--id", id, "--grants", "client_credentials"];
        portero(d, &[&args[..], &["--auth-method", "private_key_jwt", "--jwks", file]].concat(), None)
    };
    assert_eq!(ok(create("keyed", "jwks.json")), "", "no secret is printed");
    let shown: serde_json::Value =
        serde_json::from_str(&ok(portero(d, &["client", "show", "--id", "keyed"], None))).unwrap();
    assert_eq!(shown["token_endpoint_auth_method"], "private_key_jwt");
    assert_eq!(shown["jwks"]["keys"][0]["kid"], "k1");
    let refused = create("leaky", "private.json");
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("private"), "{refused:?}");
    let rotate = portero(d, &["client", "rotate-secret", "--id", "keyed"], None);
    assert!(!rotate.status.success(), "a key client has no secret to rotate");
}

/// `portero token --private-key --dpop-key` against `serve --dpop-nonce`: keys made by openssl,
/// their JWK Set and thumbprints by PyJWT (`scripts/testing/dpop_prover.py`); the command signs
/// a fresh assertion and proof, picks up the server's nonce and retries, and prints a DPoP token.
#[test]
fn portero_token_signs_assertions_and_dpop_proofs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let genpkey = |file: &str, args: &[&str]| {
        Command::new("openssl").args(["genpkey", "-out", file]).args(args).current_dir(d).output()
    };
    let made = genpkey("ec.pem", &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"])
        .and_then(|_| genpkey("ed.pem", &["-algorithm", "ed25519"]));
    if !made.is_ok_and(|o| o.status.success()) {
        eprintln!("SKIPPED: portero token --private-key needs openssl");
        return;
    }
    let pem = |file: &str| std::fs::read_to_string(d.join(file)).unwrap();
    let input = serde_json::json!({ "keys": { "a": pem("ec.pem"), "ed": pem("ed.pem") }, "requests": [] });
    let prover = run_with_stdin(
        {
            let mut command = Command::new("python3");
            command.args(["-c", include_str!("../../../../scripts/testing/dpop_prover.py")]);
            command
        },
        Some(&input.to_string()),
    );
    if !prover.status.success() {
        eprintln!("SKIPPED: portero token --private-key needs python3 with pyjwt and cryptography");
        return;
    }
    let out: serde_json::Value = serde_json::from_slice(&prover.stdout).unwrap();
    std::fs::write(d.join("jwks.json"), out["jwks"].to_string()).unwrap();
    let server = serve(d, &["--dpop-nonce"]);
    let create = ["client", "create", "--id", "signer", "--grants", "client_credentials"];
    let options = ["--auth-method", "private_key_jwt", "--jwks", "jwks.json", "--require-dpop"];
    ok(portero(d, &[&create[..], &options].concat(), None));

    let url = format!("{}/oauth2/token", server.base);
    let token = |extra: &[&str]| {
        let args = ["token", "--url", &url, "--client-id", "signer", "--private-key", "ec.pem", "--kid", "a"];
        portero(d, &[&args[..], extra].concat(), None)
    };
    let answer: serde_json::Value = serde_json::from_str(&ok(token(&["--dpop-key", "ed.pem", "--json"]))).unwrap();
    assert_eq!(answer["token_type"], "DPoP", "{answer}");
    let claims = claims(answer["access_token"].as_str().unwrap());
    assert_eq!(claims["cnf"]["jkt"], out["thumbprints"]["ed"], "bound to the DPoP key's RFC 7638 thumbprint");
    assert_eq!(claims["client_id"], "signer");
    let refused = token(&[]);
    assert!(!refused.status.success(), "the client requires DPoP");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("invalid_dpop_proof"), "{refused:?}");
}
