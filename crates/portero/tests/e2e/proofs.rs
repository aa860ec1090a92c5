//! Two `portero serve --config` nodes with `dpop_nonce = true` on one PostgreSQL database: a
//! client assertion and a DPoP proof, each used once, are refused when replayed on the other
//! node; the nonce one node hands out works on the other. Assertions and proofs are made by
//! PyJWT (`scripts/testing/dpop_prover.py`).

use std::io::Write as _;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use super::nodes::{ADMIN, Database, Node, start_node};

const ISSUER: &str = "https://auth.portero.test";
const PROVER: &str = include_str!("../../../../scripts/testing/dpop_prover.py");
const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Runs the prover with the keys of earlier runs; `None` without Python and PyJWT.
fn prove(keys: &mut Value, requests: Value) -> Option<Value> {
    let mut child = Command::new("python3")
        .args(["-c", PROVER])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    child.stdin.take()?.write_all(json!({ "keys": keys, "requests": requests }).to_string().as_bytes()).ok()?;
    let output = child.wait_with_output().ok().filter(|o| o.status.success())?;
    let out: Value = serde_json::from_slice(&output.stdout).ok()?;
    *keys = out["keys"].clone();
    Some(out)
}

fn proofs(out: &Value) -> Vec<String> {
    out["proofs"].as_array().unwrap().iter().map(|p| p.as_str().unwrap().to_owned()).collect()
}

/// A token request of client `pk` with an assertion and a proof; the status, body and the
/// `DPoP-Nonce` header.
async fn request(http: &reqwest::Client, node: &Node, assertion: &str, proof: &str) -> (u16, Value, Option<String>) {
    let response = http
        .post(format!("{}/oauth2/token", node.base))
        .header("DPoP", proof)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", assertion),
        ])
        .send()
        .await
        .unwrap();
    let nonce = response.headers().get("dpop-nonce").map(|v| v.to_str().unwrap().to_owned());
    (response.status().as_u16(), response.json().await.unwrap_or(Value::Null), nonce)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn assertions_and_proofs_are_spent_on_every_node() {
    let Ok(admin_url) = std::env::var("PORTERO_TEST_POSTGRES_URL") else {
        let _ = writeln!(std::io::stderr(), "SKIPPED: two-node replay test (set PORTERO_TEST_POSTGRES_URL to run it)");
        return;
    };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let assertion = |jti: &str| {
        json!({ "key": "ed", "assertion": true,
                "claims": { "iss": "pk", "sub": "pk", "aud": ISSUER, "jti": jti, "iat": now, "exp": now + 120 } })
    };
    let proof = |jti: &str, nonce: Option<&str>| {
        let mut claims = json!({ "jti": jti, "htm": "POST", "htu": format!("{ISSUER}/oauth2/token"), "iat": now });
        if let Some(nonce) = nonce {
            claims["nonce"] = nonce.into();
        }
        json!({ "key": "a", "claims": claims })
    };
    let mut keys = json!({});
    let Some(first) = prove(&mut keys, json!([assertion("a1"), proof("p0", None)])) else {
        let _ = writeln!(std::io::stderr(), "SKIPPED: two-node replay test needs python3 with pyjwt and cryptography");
        return;
    };
    let [a1, p0] = <[String; 2]>::try_from(proofs(&first)).unwrap();

    let db = Database::create(&admin_url, "proofs").await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("portero.toml"), "dpop_nonce = true\n").unwrap();
    let master = "cHJvb2ZzLXRlc3QtMzItYnl0ZXMtbWFzdGVyLWtleTE=";
    let (one, two) = (start_node(dir.path(), &db.url, master), start_node(dir.path(), &db.url, master));
    let http = reqwest::Client::new();
    let created = http
        .post(format!("{}/admin/clients", one.base))
        .bearer_auth(ADMIN)
        .json(&json!({ "id": "pk", "grants": ["client_credentials"], "token_endpoint_auth_method": "private_key_jwt",
                       "jwks": first["jwks"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);

    // Without a nonce: use_dpop_nonce and a nonce to use; the assertion is not spent by it.
    let (status, answer, nonce) = request(&http, &one, &a1, &p0).await;
    assert_eq!((status, answer["error"].as_str()), (400, Some("use_dpop_nonce")), "{answer}");
    let nonce = nonce.expect("RFC 9449 §8: the DPoP-Nonce header");
    let second = prove(
        &mut keys,
        json!([
            proof("p1", Some(&nonce)),
            assertion("a2"),
            proof("p2", Some(&nonce)),
            assertion("a3"),
            proof("p3", Some(&nonce))
        ]),
    )
    .unwrap();
    let [p1, a2, p2, a3, p3] = <[String; 5]>::try_from(proofs(&second)).unwrap();
    let (status, answer, _) = request(&http, &one, &a1, &p1).await;
    assert_eq!((status, answer["token_type"].as_str()), (200, Some("DPoP")), "{answer}");

    // On the other node: the spent assertion, then the spent proof, each refused.
    let (status, answer, _) = request(&http, &two, &a1, &p2).await;
    assert_eq!((status, answer["error"].as_str()), (401, Some("invalid_client")), "assertion replayed: {answer}");
    let (status, answer, _) = request(&http, &two, &a2, &p1).await;
    assert_eq!((status, answer["error"].as_str()), (400, Some("invalid_dpop_proof")), "proof replayed: {answer}");
    // Fresh ones with node one's nonce work on node two.
    let (status, answer, _) = request(&http, &two, &a3, &p3).await;
    assert_eq!((status, answer["token_type"].as_str()), (200, Some("DPoP")), "{answer}");
    assert_eq!(answer["access_token"].as_str().map(|t| t.split('.').count()), Some(3));
    drop((one, two));
    db.drop_it().await;
}
