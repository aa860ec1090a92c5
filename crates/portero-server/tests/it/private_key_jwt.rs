//! `private_key_jwt` (RFC 7523 §2.2): assertions signed by Python's PyJWT and `cryptography`
//! (an independent JOSE implementation) with an EC P-256 and an Ed25519 key, for a client
//! registered through the admin API with their public JWK Set.

use std::io::Write as _;
use std::process::{Command, Stdio};

use portero_core::grant::GrantType;
use portero_core::secret::hash_password;
use portero_core::store::prelude::*;
use portero_core::throttle::ThrottleRules;
use serde_json::{Value, json};

use crate::harness::*;

const CLIENT: &str = "pk-client";
const SECRET_CLIENT: &str = "pk-secret-client";
const ASSERTION_TYPE: &str = "urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer";

/// Makes three keys (`ec` and `ed` registered, `other` not) and signs each request:
/// `{"key": "ec"|"ed"|"other"|"none"|"hs", "kid": ..., "claims": {...}}`.
const SIGNER: &str = r#"
import base64, hashlib, hmac, json, sys
import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from jwt.algorithms import ECAlgorithm, OKPAlgorithm

keys = {"ec": ec.generate_private_key(ec.SECP256R1()), "ed": ed25519.Ed25519PrivateKey.generate(),
        "other": ec.generate_private_key(ec.SECP256R1())}

def public_jwk(name):
    algorithm = OKPAlgorithm if name == "ed" else ECAlgorithm
    jwk = json.loads(algorithm.to_jwk(keys[name].public_key()))
    jwk.update(kid=name, use="sig")
    return jwk

def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

def unsigned(header, claims):
    return b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode())

jwks = {"keys": [public_jwk("ec"), public_jwk("ed")]}
tokens = []
for request in json.load(sys.stdin):
    key, claims = request["key"], request["claims"]
    if key == "none":
        tokens.append(unsigned({"alg": "none", "kid": "ec"}, claims) + ".")
    elif key == "hs":
        # HS256 keyed with the registered public key (the classic key-confusion attack).
        secret = json.dumps(public_jwk("ec")).encode()
        head = unsigned({"alg": "HS256", "kid": "ec"}, claims)
        tokens.append(head + "." + b64(hmac.new(secret, head.encode(), hashlib.sha256).digest()))
    else:
        alg = "EdDSA" if key == "ed" else "ES256"
        headers = {"kid": request["kid"]} if request.get("kid") else {}
        tokens.append(jwt.encode(claims, keys[key], algorithm=alg, headers=headers))
print(json.dumps({"jwks": jwks, "tokens": tokens}))
"#;

/// The JWK Set and the signed tokens, or `None` (said loudly) without Python and PyJWT.
fn sign(requests: &[Value]) -> Option<(Value, Vec<String>)> {
    let run = || {
        let mut child = Command::new("python3")
            .args(["-c", SIGNER])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .ok()?;
        child.stdin.take()?.write_all(Value::from(requests.to_vec()).to_string().as_bytes()).ok()?;
        let output = child.wait_with_output().ok()?;
        if !output.status.success() {
            eprintln!("signer failed: {}", String::from_utf8_lossy(&output.stderr));
            return None;
        }
        serde_json::from_slice::<Value>(&output.stdout).ok()
    };
    let Some(out) = run() else {
        eprintln!("SKIPPED: private_key_jwt tests need python3 with pyjwt and cryptography");
        return None;
    };
    let tokens = out["tokens"].as_array()?.iter().map(|t| t.as_str().unwrap().to_owned()).collect();
    Some((out["jwks"].clone(), tokens))
}

/// Many refusals in a row for one client: a throttle that lets them all be checked.
fn relaxed() -> ThrottleRules {
    ThrottleRules { threshold: 100, ..short_blocks() }
}

async fn with_assertion(server: &Server, path: &str, extra: &str, assertion: &str) -> (u16, Value) {
    let form = format!("{extra}&client_assertion_type={ASSERTION_TYPE}&client_assertion={assertion}");
    let (status, _, body) = server.post_form(path, None, &form).await;
    (status, body)
}

async fn private_key_jwt(server: &Server) {
    let now = now();
    let token_endpoint = server.url("/oauth2/token");
    let claims = |jti: &str| json!({ "iss": CLIENT, "sub": CLIENT, "aud": server.base, "jti": jti, "iat": now, "exp": now + 120 });
    let with = |jti: &str, name: &str, value: Value| {
        let mut c = claims(jti);
        c[name] = value;
        c
    };
    let requests = [
        json!({ "key": "ec", "kid": "ec", "claims": claims("valid") }),
        json!({ "key": "ed", "claims": with("ed-no-kid", "aud", json!(["x", token_endpoint])) }),
        json!({ "key": "ec", "kid": "ec", "claims": with("wrong-aud", "aud", json!("https://elsewhere.example")) }),
        json!({ "key": "ec", "kid": "ec", "claims": with("expired", "exp", json!(now - 120)) }),
        json!({ "key": "ec", "kid": "ec", "claims": with("far", "exp", json!(now + 3600)) }),
        json!({ "key": "ec", "kid": "ec", "claims": with("iss", "iss", json!("someone-else")) }),
        json!({ "key": "other", "kid": "ec", "claims": claims("other-key") }),
        json!({ "key": "none", "claims": claims("none") }),
        json!({ "key": "hs", "claims": claims("hs256") }),
        json!({ "key": "ec", "kid": "ec", "claims": with("no-jti", "jti", Value::Null) }),
        json!({ "key": "ec", "kid": "ec", "claims": with("future-iat", "iat", json!(now + 600)) }),
        json!({ "key": "ec", "kid": "ec", "claims": { "iss": SECRET_CLIENT, "sub": SECRET_CLIENT,
            "aud": server.base, "jti": "secret-client", "exp": now + 120 } }),
        json!({ "key": "ed", "kid": "ed", "claims": with("introspect", "aud", json!(token_endpoint)) }),
    ];
    let Some((jwks, tokens)) = sign(&requests) else { return };
    let [
        valid,
        ed_no_kid,
        wrong_aud,
        expired,
        far,
        iss,
        other_key,
        none,
        hs256,
        no_jti,
        future_iat,
        secret_client,
        introspect,
    ] = <[String; 13]>::try_from(tokens).unwrap();

    // Registered through the admin API: no secret comes back, and a private key is refused.
    let admin = |body: &Value| server.http.post(server.url("/admin/clients")).bearer_auth(ADMIN_TOKEN).json(body);
    let mut new = json!({ "id": CLIENT, "grants": ["client_credentials"], "tenants": [TENANT_ID],
        "token_endpoint_auth_method": "private_key_jwt", "jwks": jwks });
    let mut private = new.clone();
    private["jwks"]["keys"][0]["d"] = json!("AAAA");
    let (status, _, _) = send(admin(&private)).await;
    assert_eq!(status, 400);
    let (status, _, created) = send(admin(&new)).await;
    assert!((200..300).contains(&status), "{status} {created}");
    assert!(created.get("client_secret").is_none_or(Value::is_null), "{created}");
    new["id"] = json!("pk-without-keys");
    new.as_object_mut().unwrap().remove("jwks");
    assert_eq!(send(admin(&new)).await.0, 400);
    let registered = base_client(SECRET_CLIENT, hash_password("s3cret"), &[GrantType::ClientCredentials]);
    server.db.create_client(&registered).await.unwrap();

    let grant = "grant_type=client_credentials";
    let (status, issued) = with_assertion(server, "/oauth2/token", grant, &valid).await;
    assert_eq!(status, 200, "{issued}");
    assert!(issued["access_token"].is_string());
    let (status, refused) = with_assertion(server, "/oauth2/token", grant, &valid).await;
    assert_eq!((status, refused["error"].as_str()), (401, Some("invalid_client")), "replayed: {refused}");

    let with_id = format!("{grant}&client_id={CLIENT}");
    let (status, body) = with_assertion(server, "/oauth2/token", &with_id, &ed_no_kid).await;
    assert_eq!(status, 200, "EdDSA without kid, aud = token endpoint: {body}");

    for (case, token) in [
        ("wrong aud", &wrong_aud),
        ("expired", &expired),
        ("exp an hour ahead", &far),
        ("iss is not sub", &iss),
        ("signed with another key", &other_key),
        ("alg none", &none),
        ("HS256 keyed with the public key", &hs256),
        ("no jti", &no_jti),
        ("iat in the future", &future_iat),
        ("secret client sending an assertion", &secret_client),
    ] {
        let (status, body) = with_assertion(server, "/oauth2/token", grant, token).await;
        assert_eq!((status, &body), (401, &refused), "{case}: every refusal is the same");
    }
    // Another client's id next to the assertion.
    let (status, body) =
        with_assertion(server, "/oauth2/token", &format!("{grant}&client_id={SECRET_CLIENT}"), &introspect).await;
    assert_eq!((status, &body), (401, &refused), "client_id differs from iss/sub");
    // An assertion and a secret at once.
    let (status, body) =
        with_assertion(server, "/oauth2/token", &format!("{grant}&client_secret=s3cret"), &introspect).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_request")), "{body}");

    // Introspection authenticates with an assertion too (the client_id mismatch above did not
    // consume its jti: only accepted assertions are remembered).
    let access_token = issued["access_token"].as_str().unwrap();
    let (status, body) =
        with_assertion(server, "/oauth2/introspect", &format!("token={access_token}"), &introspect).await;
    assert_eq!((status, body["active"].as_bool()), (200, Some(true)), "{body}");
}

#[tokio::test]
async fn private_key_jwt_sqlite() {
    let server = Server::start_sqlite(portero_core::keys::Alg::Rs256, relaxed()).await;
    private_key_jwt(&server).await;
}

#[tokio::test]
async fn private_key_jwt_postgres() {
    let Some(server) = Server::start_postgres("private_key_jwt", relaxed()).await else { return };
    private_key_jwt(&server).await;
    server.finish().await;
}

/// The prover (PyJWT) with keys it keeps across calls: `a`, `b` (P-256), `ed`, `rsa`.
const PROVER: &str = include_str!("../../../../scripts/testing/dpop_prover.py");

fn prove(requests: Value) -> Option<Value> {
    let mut child = Command::new("python3")
        .args(["-c", PROVER])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    child.stdin.take()?.write_all(json!({ "requests": requests }).to_string().as_bytes()).ok()?;
    let output = child.wait_with_output().ok().filter(|o| o.status.success())?;
    serde_json::from_slice(&output.stdout).ok()
}

/// A JWK Set served on loopback, counting its fetches.
struct KeyServer {
    url: String,
    served: std::sync::Arc<std::sync::Mutex<Value>>,
    fetches: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

async fn key_server(set: Value) -> KeyServer {
    use std::sync::atomic::Ordering;
    let served = std::sync::Arc::new(std::sync::Mutex::new(set));
    let fetches = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (state, count) = (served.clone(), fetches.clone());
    let app = axum::Router::new().route(
        "/jwks",
        axum::routing::get(move || {
            count.fetch_add(1, Ordering::SeqCst);
            let body = state.lock().unwrap().to_string();
            async move { ([("content-type", "application/json"), ("cache-control", "max-age=600")], body) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    KeyServer { url, served, fetches }
}

/// A client registered with a `jwks_uri`: fifty assertions at once all pass on one fetch (no
/// attempt slots are taken for signatures, so a busy client is never throttled), a key the
/// cached set lacks is fetched again (at most every 10 s), and a key taken out stops working.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn private_key_jwt_with_a_jwks_uri() {
    use std::sync::atomic::Ordering;
    let server = Server::start_sqlite(portero_core::keys::Alg::Es256, short_blocks()).await;
    let now = now();
    let assertion = |key: &str, jti: String| {
        json!({ "key": key, "assertion": true,
                "claims": { "iss": "remote", "sub": "remote", "aud": server.base, "jti": jti, "iat": now, "exp": now + 120 } })
    };
    let mut requests: Vec<Value> = (0..50).map(|i| assertion("a", format!("a-{i}"))).collect();
    requests.push(assertion("b", "b-1".into()));
    requests.push(assertion("a", "a-late".into()));
    let Some(out) = prove(Value::from(requests)) else {
        eprintln!("SKIPPED: jwks_uri test needs python3 with pyjwt and cryptography");
        return;
    };
    let proofs: Vec<String> =
        out["proofs"].as_array().unwrap().iter().map(|p| p.as_str().unwrap().to_owned()).collect();
    let key_of = |kid: &str| out["jwks"]["keys"].as_array().unwrap().iter().find(|k| k["kid"] == kid).unwrap().clone();
    let keys = key_server(json!({ "keys": [key_of("a")] })).await;

    let admin = |body: Value| server.http.post(server.url("/admin/clients")).bearer_auth(ADMIN_TOKEN).json(&body);
    let client = |uri: &str| {
        json!({ "id": "remote", "grants": ["client_credentials"], "tenants": [TENANT_ID],
                "token_endpoint_auth_method": "private_key_jwt", "jwks_uri": uri })
    };
    for refused in ["http://keys.example/jwks", "ftp://127.0.0.1/jwks", "https://user:pw@keys.example/jwks"] {
        assert_eq!(send(admin(client(refused))).await.0, 400, "{refused}");
    }
    let mut both = client(&keys.url);
    both["jwks"] = json!({ "keys": [key_of("a")] });
    assert_eq!(send(admin(both)).await.0, 400, "jwks and jwks_uri at once");
    let (status, _, created) = send(admin(client(&keys.url))).await;
    assert_eq!(status, 201, "{created}");

    let grant = "grant_type=client_credentials";
    let tasks: Vec<_> = proofs[..50]
        .iter()
        .map(|token| {
            let (http, url) = (server.http.clone(), server.url("/oauth2/token"));
            let body = format!("{grant}&client_assertion_type={ASSERTION_TYPE}&client_assertion={token}");
            tokio::spawn(async move {
                let request = http.post(url).header("Content-Type", "application/x-www-form-urlencoded").body(body);
                send(request).await.0
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), 200, "every one of fifty concurrent assertions");
    }
    assert_eq!(keys.fetches.load(Ordering::SeqCst), 1, "one fetch for all of them");

    // The client rotates to key b: within 10 s of the last fetch the unknown kid is refused
    // without a fetch; after, it is fetched, and key a no longer works.
    *keys.served.lock().unwrap() = json!({ "keys": [key_of("b")] });
    tokio::time::sleep(std::time::Duration::from_millis(10_500)).await;
    let (status, body) = with_assertion(&server, "/oauth2/token", grant, &proofs[50]).await;
    assert_eq!(status, 200, "the new key after a refetch: {body}");
    assert_eq!(keys.fetches.load(Ordering::SeqCst), 2);
    let (status, body) = with_assertion(&server, "/oauth2/token", grant, &proofs[51]).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")), "the removed key: {body}");
}
