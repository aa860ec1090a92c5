//! Lazy migration through the old provider (issue 14, `[[upstream]]`), on SQLite and
//! PostgreSQL. The old provider is a stand-in written here, on loopback: a Spring-style password
//! grant with Basic (as the NetPay document describes) and an Auth0-style JSON body (as
//! Pay-me's). One migration of each kind (a client with its user, a user of a known client, a
//! Pay-me client), then the old provider is stopped and every migrated credential still works;
//! wrong credentials are refused exactly as Portero's own; after the cutoff nothing is forwarded.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Json;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use portero_core::store::prelude::*;
use portero_server::Upstream;
use serde_json::{Value, json};

use crate::harness::*;

const OLD_CLIENT: &str = "legacy-terminal";
const OLD_SECRET: &str = "legacy terminal secret";
const OLD_USER: &str = "merchant09";
const OLD_PASSWORD: &str = "old-pass-9";
const NEW_USER: &str = "newbie";
const NEW_USER_PASSWORD: &str = "newbie-pass";
const OLD_PAYME_CLIENT: &str = "payme-legacy-client";
const OLD_PAYME_SECRET: &str = "payme legacy secret";

/// The stand-in old provider; counts the requests it was sent.
async fn old_provider(hits: Arc<AtomicUsize>) -> (String, tokio::task::JoinHandle<()>) {
    let spring_hits = hits.clone();
    let spring = move |headers: HeaderMap, body: String| {
        let hits = spring_hits.clone();
        async move {
            hits.fetch_add(1, Ordering::SeqCst);
            let form: std::collections::HashMap<String, String> =
                body.split('&').filter_map(|kv| kv.split_once('=')).map(|(k, v)| (k.into(), decode(v))).collect();
            let authorization = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default();
            let known = [
                (basic_header(OLD_CLIENT, OLD_SECRET), OLD_USER, OLD_PASSWORD),
                (basic_header(NETPAY_CLIENT, NETPAY_SECRET), NEW_USER, NEW_USER_PASSWORD),
            ];
            let accepted = form.get("grant_type").map(String::as_str) == Some("password")
                && known.iter().any(|(basic, user, password)| {
                    authorization == basic
                        && form.get("username").map(String::as_str) == Some(*user)
                        && form.get("password").map(String::as_str) == Some(*password)
                });
            if accepted {
                let answer = json!({"access_token": "legacy-opaque-token", "token_type": "bearer",
                    "refresh_token": "legacy-refresh", "expires_in": 43199, "scope": "sale reprint legacy-only"});
                Json(answer).into_response()
            } else {
                (StatusCode::UNAUTHORIZED, Json(json!({"error": "unauthorized"}))).into_response()
            }
        }
    };
    let auth0_hits = hits.clone();
    let auth0 = move |headers: HeaderMap, Json(body): Json<Value>| {
        let hits = auth0_hits.clone();
        async move {
            hits.fetch_add(1, Ordering::SeqCst);
            let ok = headers.get("alg-api-version").is_some_and(|v| v == API_VERSION)
                && body["client_id"] == OLD_PAYME_CLIENT
                && body["client_secret"] == OLD_PAYME_SECRET
                && body["grant_type"] == "password"
                && body["username"] == PAYME_USER
                && body["password"] == PAYME_PASSWORD;
            let answer: Response = if ok {
                Json(json!({"action": "authorize", "success": true, "access_token": "legacy-jwt",
                    "scope": "create:token post:charges", "expires_in": 86400, "token_type": "Bearer"}))
                .into_response()
            } else {
                (StatusCode::UNAUTHORIZED, Json(json!({"action": "authorize", "success": false}))).into_response()
            };
            answer
        }
    };
    let app = axum::Router::new().route("/oauth-service/oauth/token", post(spring)).route("/oauth/token", post(auth0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, task)
}

fn decode(value: &str) -> String {
    let bytes = value.replace('+', " ").into_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (other, _) => {
                out.push(other);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn upstreams(old: &str, cutoff: i64) -> impl FnOnce(&mut portero_server::ServerConfig) {
    let old = old.to_owned();
    move |config| {
        config.upstreams = vec![
            Upstream {
                token_url: format!("{old}/oauth-service/oauth/token"),
                paths: vec!["/oauth-service/oauth/token".into()],
                cutoff,
                grants: vec!["password".into(), "refresh_token".into()],
                scopes: vec!["sale".into(), "reprint".into(), "cancel".into()],
                tenant: Some("acme".into()),
                token_ttl: Some(3600),
                audiences: vec![],
            },
            Upstream {
                token_url: format!("{old}/oauth/token"),
                paths: vec!["/custom/token".into()],
                cutoff,
                grants: vec!["password".into(), "refresh_token".into()],
                scopes: vec!["create:token".into(), "post:charges".into(), "offline_access".into()],
                tenant: Some("acme".into()),
                token_ttl: Some(86_400),
                audiences: vec![PAYME_AUDIENCE.into()],
            },
        ];
    }
}

const NETPAY_PATH: &str = "/oauth-service/oauth/token";

fn login(user: &str, password: &str) -> String {
    format!("grant_type=password&username={user}&password={password}")
}

fn payme(secret: &str) -> Value {
    json!({"action": "authorize", "grant_type": "password", "client_id": OLD_PAYME_CLIENT, "client_secret": secret,
        "audience": PAYME_AUDIENCE, "username": PAYME_USER, "password": PAYME_PASSWORD, "scope": "post:charges"})
}

/// Every migrated credential gets Portero's own token.
async fn all_work(server: &Server) {
    let (status, _, body) =
        server.post_form(NETPAY_PATH, Some((OLD_CLIENT, OLD_SECRET)), &login(OLD_USER, OLD_PASSWORD)).await;
    assert_eq!(status, 200, "{body}");
    let claims = server.verify(body["access_token"].as_str().unwrap(), &server.base).await;
    assert_eq!((claims["client_id"].as_str(), claims["tenants"].clone()), (Some(OLD_CLIENT), json!([TENANT_ID])));
    assert_eq!(body["expires_in"], 3600, "the operator's limit over the old 43199 s");
    assert_eq!(body["scope"], "sale reprint", "the old provider's scopes within the operator's");
    let (status, _, body) =
        server.post_form(NETPAY_PATH, Some((NETPAY_CLIENT, NETPAY_SECRET)), &login(NEW_USER, NEW_USER_PASSWORD)).await;
    assert_eq!(status, 200, "{body}");
    let (status, _, body) =
        server.post_json("/custom/token", &[("ALG-API-VERSION", API_VERSION)], &payme(OLD_PAYME_SECRET)).await;
    assert_eq!((status, body["success"].as_bool()), (200, Some(true)), "{body}");
    let claims = server.verify(body["access_token"].as_str().unwrap(), PAYME_AUDIENCE).await;
    assert_eq!(claims["client_id"], OLD_PAYME_CLIENT);
}

async fn lazy_migration(server: &Server, old: tokio::task::JoinHandle<()>, hits: &AtomicUsize) {
    let db = &server.db;
    // Refused by the old provider: the same answer as for any unknown client; nothing stored.
    let (status, headers, wrong) =
        server.post_form(NETPAY_PATH, Some((OLD_CLIENT, "wrong")), &login(OLD_USER, OLD_PASSWORD)).await;
    assert_eq!((status, wrong["error"].as_str()), (401, Some("invalid_client")), "{wrong}");
    assert!(headers.contains_key("www-authenticate"));
    let (_, _, unknown) = server.post_form(NETPAY_PATH, Some(("nobody-at-all", "x")), &login(OLD_USER, "x")).await;
    assert_eq!(wrong, unknown);
    assert_eq!(hits.load(Ordering::SeqCst), 2, "both were asked of the old provider");
    assert!(db.find_client(OLD_CLIENT).await.unwrap().is_none());
    // A wrong password of a user the old provider would know is refused like Portero's own.
    let (status, _, body) =
        server.post_form(NETPAY_PATH, Some((NETPAY_CLIENT, NETPAY_SECRET)), &login(NEW_USER, "wrong")).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
    let (status, _, body) =
        server.post_json("/custom/token", &[("ALG-API-VERSION", API_VERSION)], &payme("wrong")).await;
    assert_eq!((status, body["success"].as_bool()), (401, Some(false)), "{body}");

    // The right ones migrate, and Portero answers with its own tokens.
    all_work(server).await;
    let client = db.find_client(OLD_CLIENT).await.unwrap().unwrap();
    assert!(client.secret_hash.starts_with("$argon2id$v=19$"));
    assert_eq!(client.tenants, [TENANT_ID]);
    let users = db.find_users(NEW_USER, &[TENANT_ID.into()]).await.unwrap();
    assert!(users[0].password_hash.starts_with("$argon2id$v=19$"));
    let asked = hits.load(Ordering::SeqCst);

    // The old provider goes away; everything migrated still works, without asking it.
    old.abort();
    let _ = old.await;
    all_work(server).await;
    assert_eq!(hits.load(Ordering::SeqCst), asked, "migrated credentials are not forwarded again");
    let (status, _, _) = server.post_form(NETPAY_PATH, Some((OLD_CLIENT, OLD_SECRET)), &login(OLD_USER, "wrong")).await;
    assert_eq!(status, 400);

    // Audited, counted, and nothing of the old answers kept.
    let status = portero_core::import::status(db).await.unwrap();
    let acme = status.iter().find(|line| line.tenant == "acme").unwrap();
    assert_eq!((acme.clients.migrated_lazily, acme.users.migrated_lazily), (2, 2), "{acme:?}");
    let mut migrated = Vec::new();
    for _ in 0..40 {
        let query = portero_core::audit::AuditQuery { kind: Some("migrated".into()), limit: 100, ..Default::default() };
        migrated = db.list_audit_events(&query).await.unwrap();
        if migrated.len() >= 4 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(migrated.len(), 4, "{migrated:?}");
    assert!(
        !format!("{migrated:?}").contains("legacy-opaque-token") && !format!("{migrated:?}").contains("legacy-jwt")
    );
}

#[tokio::test]
async fn lazy_migration_sqlite() {
    let hits = Arc::new(AtomicUsize::new(0));
    let (old, task) = old_provider(hits.clone()).await;
    let server = Server::start_configured(upstreams(&old, now() + 86_400)).await;
    lazy_migration(&server, task, &hits).await;
}

#[tokio::test]
async fn lazy_migration_postgres() {
    let hits = Arc::new(AtomicUsize::new(0));
    let (old, task) = old_provider(hits.clone()).await;
    let test = "lazy_migration_postgres";
    let Some(server) = Server::start_postgres_configured(test, short_blocks(), upstreams(&old, now() + 86_400)).await
    else {
        return;
    };
    lazy_migration(&server, task, &hits).await;
    server.finish().await;
}

#[tokio::test]
async fn nothing_is_forwarded_after_the_cutoff() {
    let hits = Arc::new(AtomicUsize::new(0));
    let (old, _task) = old_provider(hits.clone()).await;
    let server = Server::start_configured(upstreams(&old, now() - 1)).await;
    let (status, _, body) =
        server.post_form(NETPAY_PATH, Some((OLD_CLIENT, OLD_SECRET)), &login(OLD_USER, OLD_PASSWORD)).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")), "{body}");
    assert_eq!(hits.load(Ordering::SeqCst), 0);
    assert!(server.db.find_client(OLD_CLIENT).await.unwrap().is_none());
}
