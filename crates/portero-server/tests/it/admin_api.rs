//! The admin HTTP API: onboarding a merchant without the CLI.

use portero_core::store::prelude::*;
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

/// Sends a request head with a large `Content-Length` and no body; returns the first line of
/// what the server writes back.
async fn head_only(server: &Server, token: &str, expect_continue: bool) -> (tokio::net::TcpStream, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = server.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let expect = if expect_continue { "Expect: 100-continue\r\n" } else { "" };
    let head = format!(
        "POST /admin/clients HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: 1000000\r\n{expect}\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    // Byte by byte, so nothing after the first line is consumed.
    let mut line = Vec::new();
    while !line.ends_with(b"\r\n") {
        let byte = tokio::time::timeout(std::time::Duration::from_secs(20), stream.read_u8()).await;
        line.push(byte.expect("an answer in time").expect("an answer before the connection closed"));
    }
    let line = String::from_utf8(line).unwrap();
    (stream, line.trim_end().to_owned())
}

/// A wrong token is refused from the request head: the body is never asked for (no
/// `100 Continue`), never waited for, never buffered.
#[tokio::test]
async fn the_admin_token_is_checked_before_any_body_is_read() {
    let server = Server::start().await;
    assert_eq!(head_only(&server, "wrong-token", true).await.1, "HTTP/1.1 401 Unauthorized");
    assert_eq!(head_only(&server, "wrong-token", false).await.1, "HTTP/1.1 401 Unauthorized");

    // The operator's request is let through to its body: the server asks for it...
    let (mut stream, first) = head_only(&server, ADMIN_TOKEN, true).await;
    assert_eq!(first, "HTTP/1.1 100 Continue");
    // ...and reads at most 64 KiB of it.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _ = stream.write_all(&vec![b' '; 70 * 1024]).await;
    let mut answer = vec![0u8; 4096];
    let mut text = String::new();
    while !text.contains("\r\n\r\n") || !text.contains("HTTP/1.1 4") {
        let n = stream.read(&mut answer).await.unwrap();
        assert!(n > 0, "closed without an answer: {text}");
        text.push_str(&String::from_utf8_lossy(&answer[..n]));
    }
    assert!(text.contains("HTTP/1.1 413"), "{text}");
}

/// Wrong admin tokens count against the caller's address in the failure throttle: once it is
/// blocked, even the right token from there gets 429 with `Retry-After`; other addresses do not.
#[tokio::test]
async fn wrong_admin_tokens_are_throttled_per_address() {
    let server = Server::start().await;
    let from = |address: &str, token: &str| {
        server.http.get(server.url("/admin/keys")).bearer_auth(token).header("X-Forwarded-For", address)
    };
    for attempt in 0..ADDRESS_THRESHOLD {
        let (status, _, _) = send(from("198.51.100.7", &format!("guess-{attempt}"))).await;
        assert_eq!(status, 401, "attempt {attempt}");
    }
    for token in ["guess-again", ADMIN_TOKEN] {
        let (status, headers, body) = send(from("198.51.100.7", token)).await;
        assert_eq!((status, body["error"].as_str()), (429, Some("slow_down")), "{token}");
        let retry_after: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
        assert!(retry_after >= 1);
    }
    assert_eq!(send(from("198.51.100.8", ADMIN_TOKEN)).await.0, 200, "another address is not blocked");
}

/// Every admin call is audited as `admin_action`: the action and its target, the outcome, the
/// time and the caller's address; never a secret, password or token.
#[tokio::test]
async fn every_admin_action_is_audited() {
    use portero_core::audit::AuditQuery;

    let server = Server::start().await;
    let started = now();
    let admin = |method: reqwest::Method, path: &str| {
        server.http.request(method, server.url(path)).bearer_auth(ADMIN_TOKEN).header("X-Forwarded-For", "192.0.2.44")
    };
    let client = json!({ "id": "shop-api", "secret": "client-secret-0123456789", "grants": ["client_credentials"] });
    let user = json!({ "tenant": "acme", "username": "cashier", "password": "user-password-0123" });
    let calls = [
        (admin(reqwest::Method::POST, "/admin/tenants").json(&json!({ "name": "shop" })), 201),
        (admin(reqwest::Method::POST, "/admin/clients").json(&client), 201),
        (admin(reqwest::Method::POST, "/admin/clients").json(&client), 409),
        (admin(reqwest::Method::POST, "/admin/users").json(&user), 201),
        (admin(reqwest::Method::POST, "/admin/clients/shop-api/secret"), 200),
        (admin(reqwest::Method::POST, "/admin/keys").json(&json!({ "alg": "ES256" })), 201),
        (admin(reqwest::Method::GET, "/admin/clients"), 200),
        (
            server
                .http
                .get(server.url("/admin/tenants"))
                .bearer_auth("not-the-token")
                .header("X-Forwarded-For", "192.0.2.45"),
            401,
        ),
    ];
    let mut secrets = vec!["client-secret-0123456789".to_owned(), "user-password-0123".into(), "not-the-token".into()];
    for (request, expected) in calls {
        let (status, _, body) = send(request).await;
        assert_eq!(status, expected, "{body}");
        if let Some(secret) = body.get("client_secret").and_then(|s| s.as_str()) {
            secrets.push(secret.to_owned());
        }
    }
    let query = AuditQuery { kind: Some("admin_action".into()), limit: 100, ..AuditQuery::default() };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut events = loop {
        let events = server.db.list_audit_events(&query).await.unwrap();
        if events.len() >= 8 || std::time::Instant::now() > deadline {
            break events;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    events.sort_by(|a, b| a.id.cmp(&b.id));
    let seen: Vec<(&str, &str, &str)> = events
        .iter()
        .map(|e| (e.outcome.as_str(), e.detail.as_deref().unwrap_or(""), e.source.as_deref().unwrap_or("")))
        .collect();
    assert_eq!(seen.len(), 8, "{seen:?}");
    let tenant_id = server.db.find_tenant("shop").await.unwrap().unwrap().id;
    assert_eq!(seen[0], ("ok", format!("create_tenant tenant shop ({tenant_id})").as_str(), "192.0.2.44"));
    assert_eq!(seen[1], ("ok", "create_client client shop-api", "192.0.2.44"));
    assert_eq!(seen[2], ("409", "create_client client shop-api", "192.0.2.44"));
    assert_eq!(seen[3], ("ok", "create_user user cashier in tenant acme", "192.0.2.44"));
    assert_eq!(seen[4], ("ok", "rotate_client_secret client shop-api", "192.0.2.44"));
    assert!(
        seen[5].0 == "ok" && seen[5].1.starts_with("rotate_key key ") && seen[5].1.ends_with("(ES256)"),
        "{seen:?}"
    );
    assert_eq!(seen[6], ("ok", "list_clients", "192.0.2.44"));
    assert_eq!(seen[7], ("401", "list_tenants", "192.0.2.45"));
    for event in &events {
        assert!(event.at >= started && event.at <= now(), "{event:?}");
        let text = format!("{event:?}");
        for secret in &secrets {
            assert!(!text.contains(secret.as_str()), "{text} shows {secret}");
        }
    }
}

#[tokio::test]
async fn the_admin_api_registers_an_authentication_method() {
    let server = Server::start().await;
    let admin = |path: &str| server.http.post(server.url(path)).bearer_auth(ADMIN_TOKEN);
    let client = json!({ "id": "post-api", "grants": ["client_credentials"],
                         "token_endpoint_auth_method": "client_secret_post" });
    let (status, _, created) = send(admin("/admin/clients").json(&client)).await;
    assert_eq!(status, 201, "{created}");
    let secret = created["client_secret"].as_str().unwrap();
    let (status, _, _) =
        server.post_form("/oauth2/token", Some(("post-api", secret)), "grant_type=client_credentials").await;
    assert_eq!(status, 401, "Basic is not this client's method");
    let form = format!("grant_type=client_credentials&client_id=post-api&client_secret={secret}");
    assert_eq!(server.post_form("/oauth2/token", None, &form).await.0, 200);

    let (_, _, listed) = send(server.http.get(server.url("/admin/clients")).bearer_auth(ADMIN_TOKEN)).await;
    let listed = listed.as_array().unwrap().iter().find(|c| c["client_id"] == "post-api").unwrap().clone();
    assert_eq!(listed["token_endpoint_auth_method"], "client_secret_post");

    let bad = json!({ "id": "x", "grants": ["client_credentials"], "token_endpoint_auth_method": "none" });
    let (status, _, error) = send(admin("/admin/clients").json(&bad)).await;
    assert_eq!((status, error["error"].as_str()), (400, Some("invalid_request")), "{error}");
}

/// `GET /admin/clients?limit=` pages through the clients in id order, following `Link` headers;
/// without `limit` the whole list comes as before; a bad page is a 400.
#[tokio::test]
async fn clients_are_listed_page_by_page() {
    let server = Server::start().await;
    let get = |path: &str| server.http.get(server.url(path)).bearer_auth(ADMIN_TOKEN);
    for i in 0..7 {
        let client = json!({ "id": format!("page-{i}"), "grants": ["client_credentials"] });
        let request = server.http.post(server.url("/admin/clients")).bearer_auth(ADMIN_TOKEN).json(&client);
        assert_eq!(send(request).await.0, 201);
    }
    let (status, _, all) = send(get("/admin/clients")).await;
    assert_eq!(status, 200);
    let mut expected: Vec<String> =
        all.as_array().unwrap().iter().map(|c| c["client_id"].as_str().unwrap().to_owned()).collect();
    expected.sort();

    let mut seen = Vec::new();
    let mut next = Some("/admin/clients?limit=3".to_owned());
    while let Some(path) = next.take() {
        let (status, headers, page) = send(get(&path)).await;
        assert_eq!(status, 200, "{page}");
        let ids: Vec<String> =
            page.as_array().unwrap().iter().map(|c| c["client_id"].as_str().unwrap().to_owned()).collect();
        assert!(ids.len() <= 3);
        seen.extend(ids);
        next = headers.get("link").map(|link| {
            let link = link.to_str().unwrap();
            assert!(link.ends_with(">; rel=\"next\""), "{link}");
            link.trim_start_matches('<').split('>').next().unwrap().to_owned()
        });
        assert!(seen.len() <= expected.len(), "paging does not end");
    }
    assert_eq!(seen, expected, "every client once, in id order");

    for bad in
        ["/admin/clients?limit=0", "/admin/clients?limit=1001", "/admin/clients?after=x", "/admin/clients?page=2"]
    {
        let (status, _, error) = send(get(bad)).await;
        assert_eq!((status, error["error"].as_str()), (400, Some("invalid_request")), "{bad}");
    }
}
