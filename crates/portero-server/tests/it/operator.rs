//! An operator's whole lifecycle over the admin API: change, disable, enable and delete clients
//! and users, delete tenants, revoke tokens and keys; each takes effect on the next request.

use serde_json::{Value, json};

use crate::harness::*;

const NETPAY: Option<(&str, &str)> = Some((NETPAY_CLIENT, NETPAY_SECRET));

fn admin(server: &Server, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
    server.http.request(method, server.url(path)).bearer_auth(ADMIN_TOKEN)
}

async fn call(server: &Server, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut request = admin(server, method, path);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn login(server: &Server) -> (u16, Value) {
    let body = format!("grant_type=password&username={NETPAY_USER}&password={NETPAY_PASSWORD}");
    let (status, _, answer) = server.post_form("/oauth2/token", NETPAY, &body).await;
    (status, answer)
}

async fn refresh(server: &Server, refresh_token: &Value) -> (u16, Value) {
    let body = format!("grant_type=refresh_token&refresh_token={}", refresh_token.as_str().unwrap());
    let (status, _, answer) = server.post_form("/oauth2/token", NETPAY, &body).await;
    (status, answer)
}

/// Introspected by the Pay-me client (a resource server needs only to be a client).
async fn active(server: &Server, token: &Value) -> bool {
    let body = format!("token={}", token.as_str().unwrap());
    let (status, _, answer) = server.post_form("/oauth2/introspect", Some((PAYME_CLIENT, PAYME_SECRET)), &body).await;
    assert_eq!(status, 200, "{answer}");
    answer["active"].as_bool().unwrap()
}

async fn client_lifecycle(server: &Server) {
    use reqwest::Method;
    let path = format!("/admin/clients/{NETPAY_CLIENT}");
    let (status, shown) = call(server, Method::GET, &path, None).await;
    assert_eq!((status, shown["scopes"].as_str()), (200, Some("sale reprint cancel")), "{shown}");
    let (status, updated) =
        call(server, Method::PATCH, &path, Some(json!({ "scopes": "sale reprint", "token_ttl": 120 }))).await;
    assert_eq!((status, updated["token_ttl"].as_i64()), (200, Some(120)), "{updated}");
    let (_, tokens) = login(server).await;
    assert_eq!(tokens["scope"], "sale reprint", "the change applies on the next request");
    assert_eq!(tokens["expires_in"], 120);
    let (status, refused) = call(server, Method::PATCH, &path, Some(json!({ "grants": ["implicit"] }))).await;
    assert_eq!((status, refused["error"].as_str()), (400, Some("invalid_request")));
    let (status, _) = call(server, Method::PATCH, &path, Some(json!({ "secret": "no" }))).await;
    assert_eq!(status, 400, "the secret is not changed by update");

    let (status, disabled) = call(server, Method::POST, &format!("{path}/disable"), None).await;
    assert_eq!((status, disabled["disabled"].as_bool()), (200, Some(true)), "{disabled}");
    let (status, refused) = login(server).await;
    assert_eq!((status, refused["error"].as_str()), (401, Some("invalid_client")), "refused at once");
    assert!(!active(server, &tokens["access_token"]).await, "its access tokens are inactive");
    let (status, _) = call(server, Method::POST, &format!("{path}/enable"), None).await;
    assert_eq!(status, 200);
    let (status, again) = refresh(server, &tokens["refresh_token"]).await;
    assert_eq!((status, again["error"].as_str()), (400, Some("invalid_grant")), "its refresh tokens stay ended");
    assert!(!active(server, &tokens["access_token"]).await, "and so do its old access tokens");
    // A cutoff covers its whole second (iat has whole seconds): a token of the next one is live.
    past_this_second().await;
    let (status, fresh) = login(server).await;
    assert_eq!(status, 200, "enabled again: {fresh}");
    assert!(active(server, &fresh["access_token"]).await);

    let (status, _) = call(server, Method::DELETE, &path, None).await;
    assert_eq!(status, 204);
    assert_eq!(login(server).await.0, 401);
    assert!(!active(server, &fresh["access_token"]).await);
    let (status, missing) = call(server, Method::GET, &path, None).await;
    assert_eq!((status, missing["error"].as_str()), (404, Some("not_found")));
}

async fn user_and_tenant_lifecycle(server: &Server) {
    use reqwest::Method;
    let (status, users) = call(server, Method::GET, "/admin/users?tenant=acme", None).await;
    assert_eq!(status, 200, "{users}");
    let user = users.as_array().unwrap().iter().find(|u| u["username"] == NETPAY_USER).unwrap().clone();
    let id = user["id"].as_str().unwrap().to_owned();
    let (status, missing_tenant) = call(server, Method::GET, "/admin/users", None).await;
    assert_eq!((status, missing_tenant["error"].as_str()), (400, Some("invalid_request")));

    let (_, first) = login(server).await;
    let new_password = json!({ "password": "a-new-password-1" });
    let (status, _) = call(server, Method::PUT, &format!("/admin/users/{id}/password"), Some(new_password)).await;
    assert_eq!(status, 200);
    let (status, _) = refresh(server, &first["refresh_token"]).await;
    assert_eq!(status, 400, "a new password ends the user's refresh families");
    assert_eq!(login(server).await.0, 400, "the old password no longer works");
    let body = format!("grant_type=password&username={NETPAY_USER}&password=a-new-password-1");
    let (status, _, second) = server.post_form("/oauth2/token", NETPAY, &body).await;
    assert_eq!(status, 200);

    let (status, _) = call(server, Method::POST, &format!("/admin/users/{id}/disable"), None).await;
    assert_eq!(status, 200);
    let (status, refused) = server.post_form("/oauth2/token", NETPAY, &body).await.into_status_and_body();
    assert_eq!((status, refused["error"].as_str()), (400, Some("invalid_grant")), "refused as an unknown user");
    assert_eq!(refresh(server, &second["refresh_token"]).await.0, 400);
    assert!(!active(server, &second["access_token"]).await);
    let (status, _) = call(server, Method::POST, &format!("/admin/users/{id}/enable"), None).await;
    assert_eq!(status, 200);
    assert_eq!(server.post_form("/oauth2/token", NETPAY, &body).await.0, 200);

    // The tenant still has clients and users: refused, naming them.
    let (status, refused) = call(server, Method::DELETE, &format!("/admin/tenants/{TENANT_ID}"), None).await;
    assert_eq!(status, 409, "{refused}");
    let description = refused["error_description"].as_str().unwrap();
    assert!(description.contains(NETPAY_CLIENT) && description.contains(NETPAY_USER), "{description}");
    let (status, _) = call(server, Method::DELETE, &format!("/admin/users/{id}"), None).await;
    assert_eq!(status, 204);
    assert_eq!(server.post_form("/oauth2/token", NETPAY, &body).await.0, 400);

    // The other tenant's only user goes, then the tenant.
    let (_, others) = call(server, Method::GET, &format!("/admin/users?tenant={OTHER_TENANT_ID}"), None).await;
    for user in others.as_array().unwrap() {
        let (status, _) =
            call(server, Method::DELETE, &format!("/admin/users/{}", user["id"].as_str().unwrap()), None).await;
        assert_eq!(status, 204);
    }
    let (status, _) = call(server, Method::DELETE, "/admin/tenants/other", None).await;
    assert_eq!(status, 204);
    let (status, _) = call(server, Method::DELETE, "/admin/tenants/other", None).await;
    assert_eq!(status, 404);
}

async fn revocations_and_keys(server: &Server) {
    use reqwest::Method;
    let (_, tokens) = login(server).await;
    let (status, answer) =
        call(server, Method::POST, "/admin/revocations", Some(json!({ "client_id": NETPAY_CLIENT }))).await;
    assert_eq!((status, answer["refresh_tokens_revoked"].as_u64()), (200, Some(1)), "{answer}");
    assert!(!active(server, &tokens["access_token"]).await);
    assert_eq!(refresh(server, &tokens["refresh_token"]).await.0, 400);

    let (_, tokens) = login(server).await;
    let by_user = json!({ "tenant": "acme", "username": NETPAY_USER });
    let (status, _) = call(server, Method::POST, "/admin/revocations", Some(by_user)).await;
    assert_eq!(status, 200);
    assert!(!active(server, &tokens["access_token"]).await);
    assert_eq!(refresh(server, &tokens["refresh_token"]).await.0, 400);
    let (status, _) = call(server, Method::POST, "/admin/revocations", Some(json!({ "tenant": "acme" }))).await;
    assert_eq!(status, 400);

    // The signing key is revoked: a new one signs at once, the old one leaves the JWKS.
    past_this_second().await;
    let (_, tokens) = login(server).await;
    let kid = kid_of(tokens["access_token"].as_str().unwrap());
    let (status, revoked) = call(server, Method::DELETE, &format!("/admin/keys/{kid}"), None).await;
    assert_eq!(status, 200, "{revoked}");
    let replacement = revoked["new_signing_key"].as_str().unwrap().to_owned();
    assert!(!active(server, &tokens["access_token"]).await, "tokens it signed are inactive");
    let jwks: Value = server.http.get(server.url("/.well-known/jwks.json")).send().await.unwrap().json().await.unwrap();
    let kids: Vec<&str> = jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap()).collect();
    assert!(!kids.contains(&kid.as_str()) && kids.contains(&replacement.as_str()), "{kids:?}");
    let (status, fresh) = login(server).await;
    assert_eq!(status, 200);
    assert_eq!(kid_of(fresh["access_token"].as_str().unwrap()), replacement);
    assert!(active(server, &fresh["access_token"]).await);
    let (status, _) = call(server, Method::DELETE, &format!("/admin/keys/{kid}"), None).await;
    assert_eq!(status, 404, "already revoked");
}

async fn past_this_second() {
    let started = now();
    while now() == started {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

trait StatusAndBody {
    fn into_status_and_body(self) -> (u16, Value);
}

impl StatusAndBody for (u16, reqwest::header::HeaderMap, Value) {
    fn into_status_and_body(self) -> (u16, Value) {
        (self.0, self.2)
    }
}

#[tokio::test]
async fn client_lifecycle_sqlite() {
    client_lifecycle(&Server::start().await).await;
}

#[tokio::test]
async fn client_lifecycle_postgres() {
    let Some(server) = Server::start_postgres("client lifecycle", short_blocks()).await else { return };
    client_lifecycle(&server).await;
    server.finish().await;
}

#[tokio::test]
async fn user_and_tenant_lifecycle_sqlite() {
    user_and_tenant_lifecycle(&Server::start().await).await;
}

#[tokio::test]
async fn user_and_tenant_lifecycle_postgres() {
    let Some(server) = Server::start_postgres("user lifecycle", short_blocks()).await else { return };
    user_and_tenant_lifecycle(&server).await;
    server.finish().await;
}

#[tokio::test]
async fn revocations_and_keys_sqlite() {
    revocations_and_keys(&Server::start().await).await;
}

#[tokio::test]
async fn revocations_and_keys_postgres() {
    let Some(server) = Server::start_postgres("token and key revocation", short_blocks()).await else { return };
    revocations_and_keys(&server).await;
    server.finish().await;
}

/// `key_rotation_days`: the maintenance run that comes when the newest key has signed that long
/// (less the publish delay) makes the next key, published now and signing 360 s later; it does
/// not make another while that one waits; 0 turns it off.
#[tokio::test]
async fn keys_rotate_on_schedule() {
    use portero_core::keys::{Alg, MasterKey};
    use portero_core::store::prelude::*;
    use portero_core::token_endpoint::Policy;
    use portero_server::{AppState, ServerConfig};

    for days in [30, 0] {
        let dir = tempfile::tempdir().unwrap();
        let db =
            portero_store::Database::connect(&format!("sqlite://{}", dir.path().join("k.db").display())).await.unwrap();
        let policy = Policy {
            issuer: "https://issuer.example".into(),
            access_token_ttl: 600,
            refresh_token_ttl: 3600,
            refresh_retry_window: 0,
            api_version: None,
            default_locale: "es_PE".into(),
            dpop_nonce: false,
        };
        let config = ServerConfig { key_rotation_days: days, ..ServerConfig::default() };
        let start = now();
        let state =
            AppState::build(db.clone(), MasterKey::generate(), policy, config, Alg::Es256, start).await.unwrap();
        let first = db.list_keys().await.unwrap()[0].clone();
        state.maintain(start + 29 * 86_400).await.unwrap();
        assert_eq!(db.list_keys().await.unwrap().len(), 1, "not due yet");
        let due = start + days * 86_400 - 360;
        state.maintain(due.max(start + 30 * 86_400 - 360)).await.unwrap();
        state.maintain(due.max(start + 30 * 86_400 - 300)).await.unwrap();
        let keys = db.list_keys().await.unwrap();
        if days == 0 {
            assert_eq!(keys.len(), 1, "scheduled rotation off");
            continue;
        }
        assert_eq!(keys.len(), 2, "one new key, not one per maintenance run: {keys:?}");
        let next = keys.iter().find(|k| k.kid != first.kid).unwrap();
        assert_eq!((next.alg.as_str(), next.activate_at), ("ES256", due + 360), "signs when the old one's time is up");
        assert!(state.ctx.keys.current().jwks().to_string().contains(&next.kid), "published at once");
    }
}
