//! The admin HTTP API: onboarding a merchant without the CLI.

use serde_json::json;

use crate::harness::*;

#[tokio::test]
async fn onboarding_through_the_admin_api() {
    let server = Server::start().await;
    let admin =
        |method: reqwest::Method, path: &str| server.http.request(method, server.url(path)).bearer_auth(ADMIN_TOKEN);

    let (status, _, tenant) =
        send(admin(reqwest::Method::POST, "/admin/tenants").json(&json!({ "name": "shop" }))).await;
    assert_eq!(status, 201, "{tenant}");
    let client = json!({ "id": "shop-api", "grants": ["client_credentials"], "scopes": "post:charges",
                         "tenants": ["shop"], "token_ttl": 300 });
    let (status, headers, created) = send(admin(reqwest::Method::POST, "/admin/clients").json(&client)).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(headers["cache-control"], "no-store");
    let secret = created["client_secret"].as_str().unwrap();
    let (status, _, token) =
        server.post_form("/oauth2/token", Some(("shop-api", secret)), "grant_type=client_credentials").await;
    assert_eq!(status, 200);
    let claims = server.verify(token["access_token"].as_str().unwrap(), &server.base).await;
    assert_eq!(claims["tenants"], json!([tenant["id"]]));

    let (status, _, _) = send(admin(reqwest::Method::POST, "/admin/clients").json(&client)).await;
    assert_eq!(status, 409);
    let bad = json!({ "id": "x", "grants": ["implicit"] });
    let (status, _, error) = send(admin(reqwest::Method::POST, "/admin/clients").json(&bad)).await;
    assert_eq!((status, error["error"].as_str()), (400, Some("invalid_request")));
    let user = json!({ "tenant": "shop", "username": "cashier", "password": "pw-123456" });
    let (status, _, _) = send(admin(reqwest::Method::POST, "/admin/users").json(&user)).await;
    assert_eq!(status, 201);
    let (status, _, listed) = send(admin(reqwest::Method::GET, "/admin/clients")).await;
    assert_eq!(status, 200);
    assert!(!listed.to_string().contains(secret), "secrets are never listed");
    let (status, _, key) = send(admin(reqwest::Method::POST, "/admin/keys").json(&json!({ "alg": "ES256" }))).await;
    assert_eq!(status, 201, "{key}");
    let (_, _, keys) = send(admin(reqwest::Method::GET, "/admin/keys")).await;
    assert_eq!(keys.as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn the_admin_api_needs_its_token() {
    let server = Server::start().await;
    for auth in [None, Some("wrong-token"), Some("")] {
        let mut request = server.http.get(server.url("/admin/clients"));
        if let Some(token) = auth {
            request = request.bearer_auth(token);
        }
        let (status, headers, body) = send(request).await;
        assert_eq!((status, body["error"].as_str()), (401, Some("invalid_token")));
        assert!(headers.contains_key("www-authenticate"));
    }
    let basic =
        server.http.get(server.url("/admin/clients")).header("Authorization", basic_header("admin", ADMIN_TOKEN));
    assert_eq!(send(basic).await.0, 401);
}
