//! Mutual TLS (RFC 8705) through the binary: `portero serve --tls-client-ca` over real TLS on
//! loopback, certificates made by the `openssl` CLI, requests sent by `curl --cert/--key`, and
//! every thumbprint computed by openssl (`x509 -outform der | dgst -sha256 -binary`), not by us.
//! Then the trusted `Client-Cert` header (RFC 9440) behind a TLS-terminating proxy.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::Value;

use crate::cli::{ok, run_with_stdin};

const BIN: &str = env!("CARGO_BIN_EXE_portero");

/// Whether `openssl` and `curl` run; if not, the test says so loudly and passes.
fn tools_present() -> bool {
    let runs = |tool: &str| Command::new(tool).arg("--version").output().is_ok_and(|o| o.status.success());
    let openssl = Command::new("openssl").arg("version").output().is_ok_and(|o| o.status.success());
    if !openssl || !runs("curl") {
        eprintln!("SKIPPED: the mTLS tests need the openssl and curl commands");
        return false;
    }
    true
}

fn openssl(dir: &Path, args: &[&str]) -> Vec<u8> {
    let output = Command::new("openssl").args(args).current_dir(dir).stdin(Stdio::null()).output().unwrap();
    assert!(output.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    output.stdout
}

/// A P-256 key `NAME.key` and a certificate `NAME.pem` for `subject`: signed by the CA `ca`
/// (`ca.pem`/`ca.key`), or self-signed.
fn certificate(dir: &Path, name: &str, subject: &str, ca: Option<&str>) {
    let key = format!("{name}.key");
    let pem = format!("{name}.pem");
    openssl(dir, &["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", &key]);
    match ca {
        None => {
            openssl(
                dir,
                &[
                    "req",
                    "-x509",
                    "-new",
                    "-key",
                    &key,
                    "-out",
                    &pem,
                    "-days",
                    "2",
                    "-subj",
                    subject,
                    "-addext",
                    "extendedKeyUsage=clientAuth",
                ],
            );
        }
        Some(ca) => {
            let csr = format!("{name}.csr");
            let ext = format!("{name}.ext");
            std::fs::write(dir.join(&ext), "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n").unwrap();
            openssl(dir, &["req", "-new", "-key", &key, "-out", &csr, "-subj", subject]);
            openssl(
                dir,
                &[
                    "x509",
                    "-req",
                    "-in",
                    &csr,
                    "-CA",
                    &format!("{ca}.pem"),
                    "-CAkey",
                    &format!("{ca}.key"),
                    "-CAcreateserial",
                    "-out",
                    &pem,
                    "-days",
                    "2",
                    "-extfile",
                    &ext,
                ],
            );
        }
    }
}

/// A CA `NAME.pem`/`NAME.key`.
fn authority(dir: &Path, name: &str, subject: &str) {
    let key = format!("{name}.key");
    openssl(dir, &["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", &key]);
    openssl(
        dir,
        &["req", "-x509", "-new", "-key", &key, "-out", &format!("{name}.pem"), "-days", "2", "-subj", subject],
    );
}

/// `base64url(SHA-256(DER))` of `NAME.pem`, as openssl computes it.
fn thumbprint(dir: &Path, name: &str) -> String {
    let der = openssl(dir, &["x509", "-in", &format!("{name}.pem"), "-outform", "der"]);
    let path = dir.join(format!("{name}.der"));
    std::fs::write(&path, &der).unwrap();
    let digest = openssl(dir, &["dgst", "-sha256", "-binary", path.to_str().unwrap()]);
    URL_SAFE_NO_PAD.encode(digest)
}

/// The public JWK of `NAME.key` (P-256), read from openssl's DER public key (the point is its
/// last 64 bytes).
fn jwk(dir: &Path, name: &str, kid: &str) -> Value {
    let der = openssl(dir, &["pkey", "-in", &format!("{name}.key"), "-pubout", "-outform", "der"]);
    let (x, y) = der[der.len() - 64..].split_at(32);
    serde_json::json!({"kty": "EC", "crv": "P-256", "kid": kid, "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y)})
}

struct Served {
    child: Child,
    base: String,
    log: PathBuf,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn portero(dir: &Path, args: &[&str]) -> String {
    let mut command = Command::new(BIN);
    command.args(args).current_dir(dir).env_remove("PORTERO_DATABASE_URL").env_remove("PORTERO_MASTER_KEY");
    ok(run_with_stdin(command, None))
}

fn serve(dir: &Path, scheme: &str, extra: &[&str]) -> Served {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let listen = format!("127.0.0.1:{port}");
    let log = dir.join(format!("serve-{port}.log"));
    let mut args = vec!["serve", "--listen", &listen];
    args.extend_from_slice(extra);
    let child = Command::new(BIN)
        .args(&args)
        .current_dir(dir)
        .env_remove("PORTERO_DATABASE_URL")
        .env_remove("PORTERO_MASTER_KEY")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while std::net::TcpStream::connect(&listen).is_err() {
        assert!(started.elapsed() < Duration::from_secs(30), "portero did not start: {}", read(&log));
        std::thread::sleep(Duration::from_millis(50));
    }
    Served { child, base: format!("{scheme}://{listen}"), log }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// `curl -X POST URL -d BODY` with extra arguments: (status, JSON body).
fn post(dir: &Path, url: &str, body: &str, extra: &[&str]) -> (u16, Value) {
    let output = Command::new("curl")
        .args(["-sS", "--max-time", "10", "-w", "\n%{http_code}", "--cacert", "server.pem", "-d", body])
        .args(extra)
        .arg(url)
        .current_dir(dir)
        .output()
        .unwrap();
    let text = String::from_utf8(output.stdout).unwrap();
    let Some((body, status)) = text.rsplit_once('\n') else {
        // The handshake failed: curl printed no status.
        return (0, Value::String(String::from_utf8_lossy(&output.stderr).into_owned()));
    };
    (status.parse().unwrap_or(0), serde_json::from_str(body).unwrap_or(Value::String(body.to_owned())))
}

fn with_cert<'a>(name: &'a str, key: &'a str) -> [&'a str; 4] {
    ["--cert", name, "--key", key]
}

/// The claims of a JWT, decoded without checking (the signature is other tests' business).
fn claims(token: &Value) -> Value {
    let payload = token.as_str().unwrap().split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

#[test]
fn mtls_client_authentication_and_certificate_bound_tokens() {
    if !tools_present() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
    );
    authority(dir, "ca", "/CN=Portero Test Client CA");
    authority(dir, "other-ca", "/CN=Unrelated CA");
    certificate(dir, "merchant", "/CN=merchant-1/O=Acme", Some("ca"));
    // The same subject from a CA the server does not trust.
    certificate(dir, "impostor", "/CN=merchant-1/O=Acme", Some("other-ca"));
    certificate(dir, "self", "/CN=self-signed-client", None);
    certificate(dir, "stranger", "/CN=self-signed-client", None);
    let subject =
        String::from_utf8(openssl(dir, &["x509", "-in", "merchant.pem", "-noout", "-subject", "-nameopt", "RFC2253"]))
            .unwrap()
            .trim()
            .trim_start_matches("subject=")
            .to_owned();
    assert_eq!(subject, "O=Acme,CN=merchant-1");
    let jwks = serde_json::json!({"keys": [jwk(dir, "self", "self-1")]});
    std::fs::write(dir.join("self.jwks.json"), jwks.to_string()).unwrap();

    let cc = ["--grants", "client_credentials", "--scopes", "payments"];
    // Registered in another case and spacing than openssl prints it: compared normalized.
    let create = |id: &str, extra: &[&str]| {
        let mut args = vec!["--create", "client", "create", "--id", id];
        args.extend_from_slice(&cc);
        args.extend_from_slice(extra);
        portero(dir, &args)
    };
    create(
        "merchant-1",
        &["--auth-method", "tls_client_auth", "--tls-subject-dn", "o=ACME, cn=Merchant-1", "--bind-tls-cert"],
    );
    create("merchant-2", &["--auth-method", "tls_client_auth", "--tls-subject-dn", "O=Acme,CN=merchant-2"]);
    create("self-signed", &["--auth-method", "self_signed_tls_client_auth", "--jwks", "self.jwks.json"]);
    let secret = create("secret-client", &[]);
    let bound_secret = create("bound-secret", &["--bind-tls-cert"]);

    let server =
        serve(dir, "https", &["--tls-cert", "server.pem", "--tls-key", "server.key", "--tls-client-ca", "ca.pem"]);
    let token_url = format!("{}/oauth2/token", server.base);
    let merchant = with_cert("merchant.pem", "merchant.key");

    // tls_client_auth: the certificate from the CA with the registered DN; cert-bound token.
    let (status, body) = post(dir, &token_url, "grant_type=client_credentials&client_id=merchant-1", &merchant);
    assert_eq!(status, 200, "{body} {}", read(&server.log));
    assert_eq!(body["token_type"], "Bearer");
    let merchant_thumb = thumbprint(dir, "merchant");
    assert_eq!(claims(&body["access_token"])["cnf"]["x5t#S256"], merchant_thumb.as_str());
    let merchant_token = body["access_token"].as_str().unwrap().to_owned();

    // The same DN from an unrelated CA, no certificate at all, another client's DN: invalid_client.
    let impostor = with_cert("impostor.pem", "impostor.key");
    for (body, extra) in [
        ("grant_type=client_credentials&client_id=merchant-1", &impostor[..]),
        ("grant_type=client_credentials&client_id=merchant-1", &[][..]),
        ("grant_type=client_credentials&client_id=merchant-2", &merchant[..]),
    ] {
        let (status, answer) = post(dir, &token_url, body, extra);
        assert_eq!((status, answer["error"].as_str()), (401, Some("invalid_client")), "{body} {extra:?}: {answer}");
    }

    // self_signed_tls_client_auth: the key of the certificate is in the client's JWKs; another is not.
    let (status, body) = post(
        dir,
        &token_url,
        "grant_type=client_credentials&client_id=self-signed",
        &with_cert("self.pem", "self.key"),
    );
    assert_eq!(status, 200, "{body}");
    assert!(claims(&body["access_token"]).get("cnf").is_none(), "not a bound client");
    let (status, body) = post(
        dir,
        &token_url,
        "grant_type=client_credentials&client_id=self-signed",
        &with_cert("stranger.pem", "stranger.key"),
    );
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")), "{body}");

    // A secret-based client on the same listener, without a certificate.
    let (status, body) =
        post(dir, &token_url, "grant_type=client_credentials", &["-u", &format!("secret-client:{secret}")]);
    assert_eq!(status, 200, "{body}");

    // A secret-based client whose tokens are bound: refused without a certificate, bound to any
    // certificate it proves it holds (a self-signed one here).
    let basic = format!("bound-secret:{bound_secret}");
    let (status, body) = post(dir, &token_url, "grant_type=client_credentials", &["-u", &basic]);
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_request")), "{body}");
    let mut with_self = vec!["-u", basic.as_str()];
    with_self.extend(with_cert("self.pem", "self.key"));
    let (status, body) = post(dir, &token_url, "grant_type=client_credentials", &with_self);
    assert_eq!(status, 200, "{body}");
    assert_eq!(claims(&body["access_token"])["cnf"]["x5t#S256"], thumbprint(dir, "self").as_str());

    // Introspection accepts the same authentication and shows the binding.
    let (status, body) = post(
        dir,
        &format!("{}/oauth2/introspect", server.base),
        &format!("token={merchant_token}&client_id=merchant-1"),
        &merchant,
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["active"], true, "{body}");
    assert_eq!(body["cnf"]["x5t#S256"], merchant_thumb.as_str());

    // Metadata.
    let metadata = Command::new("curl")
        .args(["-sS", "--cacert", "server.pem", &format!("{}/.well-known/oauth-authorization-server", server.base)])
        .current_dir(dir)
        .output()
        .unwrap();
    let metadata: Value = serde_json::from_slice(&metadata.stdout).unwrap();
    assert_eq!(metadata["tls_client_certificate_bound_access_tokens"], true);
    let methods = metadata["token_endpoint_auth_methods_supported"].as_array().unwrap();
    for method in ["tls_client_auth", "self_signed_tls_client_auth", "client_secret_basic"] {
        assert!(methods.iter().any(|m| m == method), "{method} missing from {methods:?}");
    }
    // No certificate contents in the log.
    let log = read(&server.log);
    let merchant_b64 = STANDARD.encode(std::fs::read(dir.join("merchant.der")).unwrap());
    assert!(!log.contains(&merchant_b64[..40]), "the log shows a certificate");
    drop(server);

    // Behind a TLS-terminating proxy: the certificate comes in the configured header only.
    let proxied = serve(dir, "http", &["--tls-client-cert-header", "Client-Cert"]);
    let header = format!("Client-Cert: :{merchant_b64}:");
    let token_url = format!("{}/oauth2/token", proxied.base);
    let (status, body) = post(dir, &token_url, "grant_type=client_credentials&client_id=merchant-1", &["-H", &header]);
    assert_eq!(status, 200, "{body} {}", read(&proxied.log));
    assert_eq!(claims(&body["access_token"])["cnf"]["x5t#S256"], merchant_thumb.as_str());
    let (status, body) =
        post(dir, &token_url, "grant_type=client_credentials&client_id=merchant-1", &["-H", "Client-Cert: not-base64"]);
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_request")), "{body}");
    let huge = format!("Client-Cert: :{}:", "A".repeat(40_000));
    let (status, _) = post(dir, &token_url, "grant_type=client_credentials&client_id=merchant-1", &["-H", &huge]);
    assert_eq!(status, 400);
    drop(proxied);

    // Without the setting, the header is nobody's word: ignored.
    let plain = serve(dir, "http", &[]);
    let (status, body) = post(
        dir,
        &format!("{}/oauth2/token", plain.base),
        "grant_type=client_credentials&client_id=merchant-1",
        &["-H", &header],
    );
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")), "{body}");
}
