//! DPoP (RFC 9449) at the token endpoint, with proofs made by Python's PyJWT and `cryptography`
//! (an independent JOSE implementation) and key thumbprints computed there with hashlib
//! (`scripts/testing/dpop_prover.py`).

use std::io::Write as _;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::harness::*;

const NETPAY: Option<(&str, &str)> = Some((NETPAY_CLIENT, NETPAY_SECRET));

/// The prover (PyJWT): see the script for what it reads and prints.
const PROVER: &str = include_str!("../../../../scripts/testing/dpop_prover.py");

struct Proofs {
    proofs: Vec<String>,
    thumbprints: Value,
}

/// The proofs, or `None` (said loudly) without Python and PyJWT.
fn prove(requests: &[Value]) -> Option<Proofs> {
    let run = || {
        let mut child = Command::new("python3")
            .args(["-c", PROVER])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .ok()?;
        child.stdin.take()?.write_all(json!({ "requests": requests }).to_string().as_bytes()).ok()?;
        let output = child.wait_with_output().ok()?;
        if !output.status.success() {
            eprintln!("prover failed: {}", String::from_utf8_lossy(&output.stderr));
            return None;
        }
        serde_json::from_slice::<Value>(&output.stdout).ok()
    };
    let Some(out) = run() else {
        eprintln!("SKIPPED: DPoP tests need python3 with pyjwt and cryptography");
        return None;
    };
    let proofs = out["proofs"].as_array()?.iter().filter_map(|p| p.as_str().map(str::to_owned)).collect();
    Some(Proofs { proofs, thumbprints: out["thumbprints"].clone() })
}

/// Posts a form to the token endpoint with `Authorization` (when given) and a `DPoP` header.
async fn post(server: &Server, credentials: Option<(&str, &str)>, body: &str, proof: Option<&str>) -> (u16, Value) {
    let mut request = server
        .http
        .post(server.url("/oauth2/token"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body.to_owned());
    if let Some((id, secret)) = credentials {
        request = request.header("Authorization", basic_header(id, secret));
    }
    if let Some(proof) = proof {
        request = request.header("DPoP", proof);
    }
    let (status, _, answer) = send(request).await;
    (status, answer)
}

fn cc_body(server: &Server) -> String {
    format!("grant_type=client_credentials&client_id={ZERTIBAN_CLIENT}&client_secret={}", server.zertiban_secret)
}

fn login_body() -> String {
    format!("grant_type=password&username={NETPAY_USER}&password={NETPAY_PASSWORD}")
}

async fn dpop_at_the_token_endpoint(server: &Server) {
    let now = now();
    let htu = server.url("/oauth2/token");
    let claims = |jti: &str| json!({ "jti": jti, "htm": "POST", "htu": htu, "iat": now });
    let with = |jti: &str, name: &str, value: Value| {
        let mut c = claims(jti);
        c[name] = value;
        c
    };
    let requests = [
        json!({ "key": "a", "claims": claims("cc") }),
        json!({ "key": "ed", "claims": claims("cc-ed") }),
        json!({ "key": "rsa", "claims": claims("cc-ps256") }),
        json!({ "key": "a", "claims": with("get", "htm", json!("GET")) }),
        json!({ "key": "a", "claims": with("elsewhere", "htu", json!("https://elsewhere.example/oauth2/token")) }),
        json!({ "key": "a", "claims": with("old", "iat", json!(now - 3600)) }),
        json!({ "key": "a", "claims": claims("jwt-typ"), "header": { "typ": "JWT" } }),
        json!({ "key": "a", "claims": claims("private"), "private_jwk": true }),
        json!({ "key": "a", "claims": with("no-jti", "jti", Value::Null) }),
        json!({ "key": "a", "claims": claims("login") }),
        json!({ "key": "b", "claims": claims("refresh-b") }),
        json!({ "key": "a", "claims": claims("refresh-a") }),
        json!({ "key": "a", "claims": claims("refresh-a-2") }),
    ];
    let Some(Proofs { proofs, thumbprints }) = prove(&requests) else { return };
    let [cc, cc_ed, cc_ps256, get, elsewhere, old, jwt_typ, private, no_jti, login, refresh_b, refresh_a, refresh_a2] =
        <[String; 13]>::try_from(proofs).unwrap();

    // Client credentials with a proof: a DPoP token bound to the key, whatever its algorithm.
    for (proof, key) in [(&cc, "a"), (&cc_ed, "ed"), (&cc_ps256, "rsa")] {
        let (status, answer) = post(server, None, &cc_body(server), Some(proof)).await;
        assert_eq!(status, 200, "{key}: {answer}");
        assert_eq!(answer["token_type"], "DPoP", "RFC 9449 §5");
        let claims = server.verify(answer["access_token"].as_str().unwrap(), &server.base).await;
        assert_eq!(claims["cnf"]["jkt"], thumbprints[key], "cnf.jkt is the thumbprint PyJWT's key has");
    }
    // Without a proof the same client still gets a Bearer token with no cnf.
    let (status, bearer) = post(server, None, &cc_body(server), None).await;
    assert_eq!((status, bearer["token_type"].as_str()), (200, Some("Bearer")));
    assert!(server.verify(bearer["access_token"].as_str().unwrap(), &server.base).await.get("cnf").is_none());

    // The same proof twice: refused, on this node and (see e2e/nodes.rs) on any other.
    let (status, replay) = post(server, None, &cc_body(server), Some(&cc)).await;
    assert_eq!((status, replay["error"].as_str()), (400, Some("invalid_dpop_proof")), "{replay}");
    for (proof, why) in [
        (&get, "htm"),
        (&elsewhere, "htu"),
        (&old, "iat"),
        (&jwt_typ, "typ"),
        (&private, "a private key in the header"),
        (&no_jti, "jti"),
    ] {
        let (status, answer) = post(server, None, &cc_body(server), Some(proof)).await;
        assert_eq!((status, answer["error"].as_str()), (400, Some("invalid_dpop_proof")), "{why}: {answer}");
    }
    let (status, answer) = post(server, None, &cc_body(server), Some("not-a-jwt")).await;
    assert_eq!((status, answer["error"].as_str()), (400, Some("invalid_dpop_proof")), "{answer}");

    // Password grant with key a: the refresh token is bound to a.
    let (status, tokens) = post(server, NETPAY, &login_body(), Some(&login)).await;
    assert_eq!((status, tokens["token_type"].as_str()), (200, Some("DPoP")), "{tokens}");
    let refresh_token = tokens["refresh_token"].as_str().unwrap();
    let body = format!("grant_type=refresh_token&refresh_token={refresh_token}");
    let (status, answer) = post(server, NETPAY, &body, None).await;
    assert_eq!((status, answer["error"].as_str()), (400, Some("invalid_grant")), "no proof: {answer}");
    let (status, answer) = post(server, NETPAY, &body, Some(&refresh_b)).await;
    assert_eq!((status, answer["error"].as_str()), (400, Some("invalid_grant")), "another key: {answer}");
    // Those refusals spent nothing: with key a the token still redeems, into one bound to a.
    let (status, renewed) = post(server, NETPAY, &body, Some(&refresh_a)).await;
    assert_eq!((status, renewed["token_type"].as_str()), (200, Some("DPoP")), "{renewed}");
    let claims = server.verify(renewed["access_token"].as_str().unwrap(), &server.base).await;
    assert_eq!(claims["cnf"]["jkt"], thumbprints["a"]);
    let next = format!("grant_type=refresh_token&refresh_token={}", renewed["refresh_token"].as_str().unwrap());
    let (status, answer) = post(server, NETPAY, &next, None).await;
    assert_eq!((status, answer["error"].as_str()), (400, Some("invalid_grant")), "the rotated token stays bound");
    let (status, answer) = post(server, NETPAY, &next, Some(&refresh_a2)).await;
    assert_eq!(status, 200, "{answer}");

    // Introspection tells the binding (RFC 9449 §6.2).
    let introspected = introspect(server, renewed["access_token"].as_str().unwrap()).await;
    assert_eq!(introspected["active"], true);
    assert_eq!(introspected["token_type"], "DPoP");
    assert_eq!(introspected["cnf"]["jkt"], thumbprints["a"]);
    let introspected = introspect(server, answer["refresh_token"].as_str().unwrap()).await;
    assert_eq!(introspected["cnf"]["jkt"], thumbprints["a"]);

    let metadata: Value = server
        .http
        .get(server.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(metadata["dpop_signing_alg_values_supported"], json!(["RS256", "PS256", "ES256", "EdDSA"]));
}

async fn introspect(server: &Server, token: &str) -> Value {
    let body = format!("token={token}");
    let request = server
        .http
        .post(server.url("/oauth2/introspect"))
        .header("Authorization", basic_header(NETPAY_CLIENT, NETPAY_SECRET))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body);
    let (status, _, answer) = send(request).await;
    assert_eq!(status, 200, "{answer}");
    answer
}

/// A client created with `dpop_bound_access_tokens` gets nothing without a proof.
async fn a_client_that_requires_dpop(server: &Server) {
    let now = now();
    let htu = server.url("/oauth2/token");
    let Some(Proofs { proofs, .. }) =
        prove(&[json!({ "key": "a", "claims": { "jti": "r", "htm": "POST", "htu": htu, "iat": now } })])
    else {
        return;
    };
    let created = server
        .http
        .post(server.url("/admin/clients"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({ "id": "dpop-only", "grants": ["client_credentials"], "dpop_bound_access_tokens": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    let shown: Value = server
        .http
        .get(server.url("/admin/clients/dpop-only"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(shown["dpop_bound_access_tokens"], true);
    let secret = created["client_secret"].as_str().unwrap().to_owned();
    let body = format!("grant_type=client_credentials&client_id=dpop-only&client_secret={secret}");
    let (status, answer) = post(server, None, &body, None).await;
    assert_eq!((status, answer["error"].as_str()), (400, Some("invalid_dpop_proof")), "{answer}");
    let (status, answer) = post(server, None, &body, Some(&proofs[0])).await;
    assert_eq!((status, answer["token_type"].as_str()), (200, Some("DPoP")), "{answer}");
}

/// Hundreds of requests at once with one proof: exactly one is served.
async fn one_proof_one_token_under_concurrency(server: &Server) {
    let now = now();
    let htu = server.url("/oauth2/token");
    let Some(Proofs { proofs, .. }) =
        prove(&[json!({ "key": "b", "claims": { "jti": "burst", "htm": "POST", "htu": htu, "iat": now } })])
    else {
        return;
    };
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let request = server
                .http
                .post(server.url("/oauth2/token"))
                .header("Content-Type", "application/x-www-form-urlencoded")
                .header("DPoP", &proofs[0])
                .body(cc_body(server));
            tokio::spawn(async move { send(request).await })
        })
        .collect();
    let (mut served, mut refused) = (0, 0);
    for task in tasks {
        let (status, _, answer) = task.await.unwrap();
        served += usize::from(status == 200);
        refused += usize::from(status == 400 && answer["error"] == "invalid_dpop_proof");
    }
    assert_eq!((served, refused), (1, 199), "one proof, one token");
}

async fn all(server: &Server) {
    dpop_at_the_token_endpoint(server).await;
    a_client_that_requires_dpop(server).await;
    one_proof_one_token_under_concurrency(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dpop_sqlite() {
    let server = Server::start_with(portero_core::keys::Alg::Es256).await;
    all(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dpop_postgres() {
    let Some(server) = Server::start_postgres("dpop", short_blocks()).await else { return };
    all(&server).await;
    server.finish().await;
}
