//! End to end: `portero-client` → Portero (real server, SQLite, loopback) → the payments API
//! behind `portero-verify`, in every dialect, with scopes and tenants allowed and denied; and
//! the verifier refusing every kind of bad token.

use portero_core::store::prelude::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::middleware::{Next, from_fn};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use portero_client::{ClientConfig, Dialect, Grant, TokenClient};
use portero_core::dialect::ApiVersionRule;
use portero_core::grant::GrantType;
use portero_core::keys::{Alg, KeySet, MasterKey, SigningKey};
use portero_core::secret::{generate_client_secret, hash_generated_secret, hash_password};
use portero_core::store::{Client, RefreshPolicy, Tenant, User};
use portero_core::token_endpoint::Policy;
use portero_server::{AppState, ServerConfig};
use portero_store::Database;
use portero_verify::Verifier;
use serde_json::{Value, json};

const T1: &str = "0f8fad5b-d9cb-469f-a165-70867728950e";
const T2: &str = "7c9e6679-7425-40de-944b-e07fc1f90ae7";
const AUDIENCE: &str = "https://api.payments.test";
const ALL_SCOPES: &str = "post:charges delete:charges create:token";

struct World {
    portero: String,
    api: String,
    state: AppState,
    token_requests: Arc<AtomicUsize>,
    secrets: std::collections::HashMap<&'static str, String>,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

fn client(id: &str, secret_hash: String, grants: &[GrantType], scopes: &str, ttl: Option<i64>) -> Client {
    Client {
        id: id.into(),
        secret_hash,
        grants: grants.to_vec(),
        scopes: scopes.split(' ').map(str::to_owned).collect(),
        audiences: vec![AUDIENCE.into()],
        tenants: vec![T1.into()],
        token_ttl: ttl,
        refresh_policy: RefreshPolicy::OfflineAccess,
        ignore_unknown_scopes: false,
        locale: Some("es_PE".into()),
        created_at: 0,
        refresh_retry_window: None,
        auth_method: None,
        disabled_at: None,
        jwks: None,
        jwks_uri: None,
        require_dpop: false,
        tls_subject_dn: None,
        tls_bound_tokens: false,
        last_seen_at: None,
        previous_secret: None,
    }
}

impl World {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::connect(&format!("sqlite://{}", dir.path().join("p.db").display())).await.unwrap();
        let portero_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let portero = format!("http://{}", portero_listener.local_addr().unwrap());
        let policy = Policy {
            issuer: portero.clone(),
            access_token_ttl: 3600,
            refresh_token_ttl: 86_400,
            refresh_retry_window: 0,
            api_version: Some(ApiVersionRule::parse("ALG-API-VERSION=1618440906").unwrap()),
            default_locale: "es_PE".into(),
            dpop_nonce: false,
        };
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
        let state =
            AppState::build(db.clone(), MasterKey::generate(), policy, ServerConfig::default(), Alg::Rs256, now)
                .await
                .unwrap();
        for (id, name) in [(T1, "one"), (T2, "two")] {
            db.create_tenant(&Tenant { id: id.into(), name: name.into(), created_at: 0 }).await.unwrap();
        }
        let user = User {
            id: "merchant-user".into(),
            tenant_id: T1.into(),
            username: "commerce@email.com".into(),
            password_hash: hash_password("123456"),
            disabled_at: None,
            last_seen_at: None,
            created_at: 0,
        };
        db.create_user(&user).await.unwrap();
        let mut secrets = std::collections::HashMap::new();
        let cc = [GrantType::ClientCredentials];
        for (id, scopes, ttl) in
            [("merchant", ALL_SCOPES, None), ("tokenizer", "create:token", None), ("short", ALL_SCOPES, Some(2))]
        {
            let secret = generate_client_secret();
            db.create_client(&client(id, hash_generated_secret(&secret), &cc, scopes, ttl)).await.unwrap();
            secrets.insert(id, secret);
        }
        let payme_scopes = format!("{ALL_SCOPES} offline_access");
        let payme = client(
            "payme",
            hash_password("payme-secret"),
            &[GrantType::Password, GrantType::RefreshToken],
            &payme_scopes,
            Some(2),
        );
        db.create_client(&payme).await.unwrap();

        let token_requests = Arc::new(AtomicUsize::new(0));
        let counter = token_requests.clone();
        let counted = portero_server::app(state.clone()).layer(from_fn(move |request: Request, next: Next| {
            let counter = counter.clone();
            async move {
                if request.uri().path() == "/oauth2/token" {
                    counter.fetch_add(1, Ordering::SeqCst);
                }
                next.run(request).await
            }
        }));
        tokio::spawn(async move { axum::serve(portero_listener, counted).await.unwrap() });

        let api_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let api = format!("http://{}", api_listener.local_addr().unwrap());
        let verifier = Verifier::builder(portero.clone(), AUDIENCE)
            .jwks_url(format!("{portero}/.well-known/jwks.json"))
            .build()
            .unwrap();
        tokio::spawn(async move { axum::serve(api_listener, payments_api::app(Arc::new(verifier))).await.unwrap() });
        Self { portero, api, state, token_requests, secrets, http: reqwest::Client::new(), _dir: dir }
    }

    fn token_client(&self, id: &'static str, dialect: Dialect) -> TokenClient {
        let config =
            ClientConfig::client_credentials(format!("{}/oauth2/token", self.portero), id, &self.secrets[id], dialect);
        TokenClient::new(config).unwrap()
    }

    async fn call(&self, method: reqwest::Method, path: &str, token: &str, tenant: Option<&str>) -> (u16, String) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.api))
            .bearer_auth(token)
            .json(&json!({ "amount": 1500 }));
        if let Some(tenant) = tenant {
            request = request.header("x-tenant-id", tenant);
        }
        let response = request.send().await.unwrap();
        let challenge =
            response.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
        (response.status().as_u16(), challenge)
    }

    /// Signs arbitrary claims with Portero's active key (for expired, wrong-aud... tokens).
    fn forge(&self, claims: Value) -> String {
        self.state.ctx.keys.current().active(now()).unwrap().sign_jwt(&claims).unwrap()
    }
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_dialect_end_to_end_with_scopes_and_tenants() {
    let world = World::start().await;
    for dialect in [Dialect::Basic, Dialect::Post, Dialect::Query] {
        let token = world.token_client("merchant", dialect).access_token().await.unwrap();
        assert_eq!(world.call(reqwest::Method::POST, "/v1/charges", &token, Some(T1)).await.0, 201, "{dialect:?}");
        assert_eq!(world.call(reqwest::Method::POST, "/v1/tokens", &token, Some(T1)).await.0, 201);
        let (status, challenge) = world.call(reqwest::Method::POST, "/v1/charges", &token, Some(T2)).await;
        assert_eq!(status, 403, "another tenant");
        assert!(challenge.contains("insufficient_scope"));
        assert_eq!(world.call(reqwest::Method::POST, "/v1/charges", &token, None).await.0, 400, "no x-tenant-id");
    }
    // Pay-me: JSON with action, password grant, refresh token with offline_access.
    let payme = ClientConfig::client_credentials(
        format!("{}/oauth2/token", world.portero),
        "payme",
        "payme-secret",
        Dialect::Json,
    )
    .with_grant(Grant::Password { username: "commerce@email.com".into(), password: "123456".into() })
    .with_scope(format!("{ALL_SCOPES} offline_access"))
    .with_audience(AUDIENCE)
    .with_header("ALG-API-VERSION", "1618440906");
    let payme = TokenClient::new(payme).unwrap();
    let answer = payme.fetch().await.unwrap();
    assert_eq!(answer.raw()["success"], true);
    assert!(answer.refresh_token().is_some());
    let token = payme.access_token().await.unwrap();
    let create = world.http.post(format!("{}/v1/charges", world.api)).bearer_auth(&token).header("x-tenant-id", T1);
    let created: Value = create.json(&json!({ "amount": 990 })).send().await.unwrap().json().await.unwrap();
    assert_eq!(created["created_by"], "merchant-user");
    let id = created["id"].as_str().unwrap();
    assert_eq!(world.call(reqwest::Method::DELETE, &format!("/v1/charges/{id}"), &token, Some(T1)).await.0, 204);
    assert_eq!(world.call(reqwest::Method::DELETE, &format!("/v1/charges/{id}"), &token, Some(T1)).await.0, 404);
    // The 2-second Pay-me token is renewed with its refresh token.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let renewed = payme.access_token().await.unwrap();
    assert_ne!(renewed, token);
    assert_eq!(world.call(reqwest::Method::POST, "/v1/tokens", &renewed, Some(T1)).await.0, 201);

    // A client without post:charges may tokenize but not charge.
    let limited = world.token_client("tokenizer", Dialect::Basic).access_token().await.unwrap();
    assert_eq!(world.call(reqwest::Method::POST, "/v1/tokens", &limited, Some(T1)).await.0, 201);
    let (status, challenge) = world.call(reqwest::Method::POST, "/v1/charges", &limited, Some(T1)).await;
    assert_eq!(status, 403);
    assert!(challenge.contains("error=\"insufficient_scope\"") && challenge.contains("scope=\"post:charges\""));
    let (status, challenge) = world.call(reqwest::Method::DELETE, "/v1/charges/ch_x", &limited, Some(T1)).await;
    assert_eq!((status, challenge.contains("insufficient_scope")), (403, true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_callers_cause_one_token_request() {
    let world = World::start().await;
    let client = world.token_client("merchant", Dialect::Basic);
    let before = world.token_requests.load(Ordering::SeqCst);
    let callers: Vec<_> = (0..1000)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.access_token().await.unwrap() })
        })
        .collect();
    let mut tokens = std::collections::HashSet::new();
    for caller in callers {
        tokens.insert(caller.await.unwrap());
    }
    assert_eq!(tokens.len(), 1);
    assert_eq!(world.token_requests.load(Ordering::SeqCst) - before, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_two_second_token_never_meets_a_401_in_ten_seconds() {
    let world = World::start().await;
    let client = world.token_client("short", Dialect::Basic);
    let started = Instant::now();
    let mut calls = 0;
    while started.elapsed() < Duration::from_secs(10) {
        let token = client.access_token().await.unwrap();
        let (status, _) = world.call(reqwest::Method::POST, "/v1/tokens", &token, Some(T1)).await;
        assert_eq!(status, 201, "call {calls} at {:?}", started.elapsed());
        calls += 1;
    }
    let requests = world.token_requests.load(Ordering::SeqCst);
    assert!(calls > 100, "{calls}");
    assert!((5..=12).contains(&requests), "renewed from expires_in, about every second: {requests}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_verifier_rejects_bad_tokens() {
    let world = World::start().await;
    let good = world.token_client("merchant", Dialect::Basic).access_token().await.unwrap();
    let (header, rest) = good.split_once('.').unwrap();
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
    let kid = header["kid"].as_str().unwrap().to_owned();
    let payload = rest.split_once('.').unwrap().0;
    let t = now();
    let claims = |changes: Value| {
        let mut claims = json!({ "iss": world.portero, "sub": "merchant", "aud": AUDIENCE, "exp": t + 300, "iat": t,
                                 "jti": "j", "client_id": "merchant", "scope": ALL_SCOPES, "tenants": [T1] });
        for (k, v) in changes.as_object().unwrap() {
            claims[k] = v.clone();
        }
        claims
    };

    // Signed by a key the JWKS does not have (even under the published kid).
    let master = MasterKey::generate();
    let stranger = KeySet::load(&[SigningKey::generate(Alg::Rs256, &master, 0, 0).unwrap()], &master).unwrap();
    let unknown_key = stranger.active(0).unwrap().sign_jwt(&claims(json!({}))).unwrap();
    let (_, stranger_rest) = unknown_key.split_once('.').unwrap();
    let spoofed_kid = format!(
        "{}.{stranger_rest}",
        URL_SAFE_NO_PAD.encode(json!({"alg":"RS256","kid":kid,"typ":"at+jwt"}).to_string())
    );
    // alg none, and HS256 keyed with the public key (algorithm confusion).
    let none =
        format!("{}.{payload}.", URL_SAFE_NO_PAD.encode(json!({"alg":"none","kid":kid,"typ":"at+jwt"}).to_string()));
    let jwks: Value =
        world.http.get(format!("{}/.well-known/jwks.json", world.portero)).send().await.unwrap().json().await.unwrap();
    let public_n = jwks["keys"][0]["n"].as_str().unwrap().to_owned();
    let mut hs_header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    hs_header.kid = Some(kid.clone());
    hs_header.typ = Some("at+jwt".into());
    let hs256 = jsonwebtoken::encode(
        &hs_header,
        &claims(json!({})),
        &jsonwebtoken::EncodingKey::from_secret(public_n.as_bytes()),
    )
    .unwrap();

    let cases = [
        ("unknown key", unknown_key),
        ("unknown key under a published kid", spoofed_kid),
        ("alg none", none),
        ("HS256 with the public key as secret", hs256),
        ("expired", world.forge(claims(json!({ "exp": t - 120, "iat": t - 500 })))),
        ("wrong aud", world.forge(claims(json!({ "aud": "https://elsewhere" })))),
        ("wrong iss", world.forge(claims(json!({ "iss": "https://impostor" })))),
        ("not yet valid", world.forge(claims(json!({ "nbf": t + 600 })))),
        ("garbage", "abc.def.ghi".to_owned()),
    ];
    for (label, token) in &cases {
        let (status, challenge) = world.call(reqwest::Method::POST, "/v1/tokens", token, Some(T1)).await;
        assert_eq!(status, 401, "{label}");
        assert!(challenge.contains("error=\"invalid_token\""), "{label}: {challenge}");
    }
    let (status, _) = world.call(reqwest::Method::POST, "/v1/tokens", &world.forge(claims(json!({}))), Some(T2)).await;
    assert_eq!(status, 403, "wrong tenant");
    let no_scope = world.forge(claims(json!({ "scope": "create:token" })));
    assert_eq!(world.call(reqwest::Method::POST, "/v1/charges", &no_scope, Some(T1)).await.0, 403, "missing scope");
    let response = world.http.post(format!("{}/v1/tokens", world.api)).send().await.unwrap();
    assert_eq!(response.status(), 401, "no token");
    assert_eq!(response.headers()["www-authenticate"], "Bearer realm=\"api\"");
    assert_eq!(world.call(reqwest::Method::POST, "/v1/tokens", &good, Some(T1)).await.0, 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn introspection_mode_sees_revocation_at_once() {
    let world = World::start().await;
    let token = world.token_client("merchant", Dialect::Basic).access_token().await.unwrap();
    let verifier = Verifier::builder(world.portero.clone(), AUDIENCE)
        .introspection(format!("{}/oauth2/introspect", world.portero), "tokenizer", world.secrets["tokenizer"].clone())
        .build()
        .unwrap();
    assert_eq!(verifier.verify(&token).await.unwrap().sub, "merchant");
    let revoke = world
        .http
        .post(format!("{}/oauth2/revoke", world.portero))
        .basic_auth("merchant", Some(&world.secrets["merchant"]));
    assert!(revoke.form(&[("token", &token)]).send().await.unwrap().status().is_success());
    assert!(verifier.verify(&token).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unknown_kid_triggers_one_jwks_refetch() {
    let world = World::start().await;
    let client = world.token_client("merchant", Dialect::Basic);
    let first = client.access_token().await.unwrap();
    assert_eq!(world.call(reqwest::Method::POST, "/v1/tokens", &first, Some(T1)).await.0, 201);
    // Rotate with no pre-publication delay: the API's cached JWKS (max-age 300) lacks the kid.
    let db = &world.state.ctx.store;
    portero_server::admin::rotate_key(db, &world.state.master_key, "ES256", 0, now() - 1).await.unwrap();
    world.state.reload_keys().await.unwrap();
    // A new key activates strictly after the current one (a second later at most).
    tokio::time::sleep(Duration::from_millis(2100)).await;
    client.invalidate();
    let second = client.access_token().await.unwrap();
    assert_ne!(jsonwebtoken::decode_header(&first).unwrap().kid, jsonwebtoken::decode_header(&second).unwrap().kid);
    assert_eq!(world.call(reqwest::Method::POST, "/v1/tokens", &second, Some(T1)).await.0, 201, "refetched once");
    // Old tokens stay valid: the old key is still published.
    assert_eq!(world.call(reqwest::Method::POST, "/v1/tokens", &first, Some(T1)).await.0, 201);
}

/// The prover (PyJWT): see the script for what it reads and prints.
const PROVER: &str = include_str!("../../../scripts/testing/dpop_prover.py");

/// DPoP proofs signed by PyJWT with keys it keeps across calls; `None` (said loudly) without it.
struct Prover {
    keys: Value,
}

impl Prover {
    fn prove(&mut self, requests: Value) -> Option<Vec<String>> {
        use std::io::Write as _;
        let mut child = std::process::Command::new("python3")
            .args(["-c", PROVER])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .ok()?;
        let input = json!({ "keys": self.keys, "requests": requests });
        child.stdin.take()?.write_all(input.to_string().as_bytes()).ok()?;
        let output = child.wait_with_output().ok().filter(|o| o.status.success())?;
        let out: Value = serde_json::from_slice(&output.stdout).ok()?;
        self.keys = out["keys"].clone();
        out["proofs"].as_array().map(|p| p.iter().filter_map(|p| p.as_str().map(str::to_owned)).collect())
    }
}

/// A DPoP-bound token is worth nothing to a thief: the API refuses it as Bearer, with another
/// key's proof, with a proof for another request, and with the holder's own proof replayed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stolen_dpop_token_is_refused_by_the_payments_api() {
    let world = World::start().await;
    let mut prover = Prover { keys: json!({}) };
    let token_url = format!("{}/oauth2/token", world.portero);
    let proof_claims = |jti: &str, htm: &str, htu: &str| json!({ "jti": jti, "htm": htm, "htu": htu, "iat": now() });
    let Some(proofs) = prover.prove(json!([{ "key": "a", "claims": proof_claims("t", "POST", &token_url) }])) else {
        eprintln!("SKIPPED: the DPoP payments-API test needs python3 with pyjwt and cryptography");
        return;
    };
    let answer: Value = world
        .http
        .post(&token_url)
        .basic_auth("merchant", Some(&world.secrets["merchant"]))
        .header("DPoP", &proofs[0])
        .form(&[("grant_type", "client_credentials"), ("audience", AUDIENCE)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["token_type"], "DPoP", "{answer}");
    let token = answer["access_token"].as_str().unwrap().to_owned();

    let charges = format!("{}/v1/charges", world.api);
    let tokens = format!("{}/v1/tokens", world.api);
    let proofs = prover
        .prove(json!([
            { "key": "a", "claims": proof_claims("ok", "POST", &charges), "ath_of": token },
            { "key": "b", "claims": proof_claims("thief", "POST", &charges), "ath_of": token },
            { "key": "a", "claims": proof_claims("elsewhere", "POST", &tokens), "ath_of": token },
            { "key": "a", "claims": proof_claims("no-ath", "POST", &charges) },
            { "key": "a", "claims": proof_claims("get", "GET", &charges), "ath_of": token },
        ]))
        .unwrap();
    let send = |scheme: &str, proof: Option<&str>| {
        let mut request = world
            .http
            .post(&charges)
            .header("Authorization", format!("{scheme} {token}"))
            .header("x-tenant-id", T1)
            .json(&json!({ "amount": 1500 }));
        if let Some(proof) = proof {
            request = request.header("DPoP", proof);
        }
        async move {
            let response = request.send().await.unwrap();
            let challenge = response.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_owned());
            (response.status().as_u16(), challenge.unwrap_or_default())
        }
    };
    let (status, challenge) = send("Bearer", None).await;
    assert_eq!(status, 401, "a bound token as Bearer");
    assert!(challenge.starts_with("DPoP error=\"invalid_token\""), "RFC 9449 §7.1: {challenge}");
    let (status, challenge) = send("DPoP", Some(&proofs[1])).await;
    assert_eq!(status, 401, "another key's proof");
    assert!(challenge.starts_with("DPoP error=\"invalid_token\""), "{challenge}");
    for (proof, why) in [(&proofs[2], "another URL"), (&proofs[3], "no ath"), (&proofs[4], "another method")] {
        let (status, challenge) = send("DPoP", Some(proof)).await;
        assert_eq!(status, 401, "{why}");
        assert!(challenge.starts_with("DPoP error=\"invalid_dpop_proof\""), "{why}: {challenge}");
    }
    let (status, challenge) = send("DPoP", None).await;
    assert_eq!((status, challenge.starts_with("DPoP error=\"invalid_dpop_proof\"")), (401, true), "no proof");
    // The holder's own proof works once.
    assert_eq!(send("DPoP", Some(&proofs[0])).await.0, 201);
    let (status, challenge) = send("DPoP", Some(&proofs[0])).await;
    assert_eq!(status, 401, "the same proof again");
    assert!(challenge.contains("invalid_dpop_proof"), "{challenge}");
}
