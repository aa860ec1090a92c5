//! Brute-force defence: repeated failures get 429 with Retry-After, even with the right
//! credentials, until the block ends; the owner is then let in and the count is cleared.

use std::time::Duration;

use serde_json::json;

use crate::harness::*;

const NETPAY: Option<(&str, &str)> = Some((NETPAY_CLIENT, NETPAY_SECRET));

#[tokio::test]
async fn repeated_password_failures_are_throttled_then_released() {
    let server = Server::start().await;
    let wrong = format!("grant_type=password&username={NETPAY_USER}&password=nope");
    let right = format!("grant_type=password&username={NETPAY_USER}&password={NETPAY_PASSWORD}");
    for _ in 0..5 {
        let (status, _, body) = server.post_form("/oauth2/token", NETPAY, &wrong).await;
        assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")));
    }
    let (status, headers, body) = server.post_form("/oauth2/token", NETPAY, &right).await;
    assert_eq!((status, body["error"].as_str()), (429, Some("slow_down")), "blocked even with the right password");
    assert!(headers["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
    assert_eq!(headers["cache-control"], "no-store");

    // Another user of the same client is not affected.
    let other = json!({ "grant_type": "password", "client_id": PAYME_CLIENT, "client_secret": PAYME_SECRET,
                        "username": PAYME_USER, "password": PAYME_PASSWORD });
    assert_eq!(server.post_json("/oauth2/token", &[], &other).await.0, 200);

    tokio::time::sleep(Duration::from_millis(3100)).await;
    let (status, _, body) = server.post_form("/oauth2/token", NETPAY, &right).await;
    assert_eq!(status, 200, "the owner gets in once the block ends: {body}");
    let (status, _, _) = server.post_form("/oauth2/token", NETPAY, &wrong).await;
    assert_eq!(status, 400, "a success cleared the count");
}

#[tokio::test]
async fn repeated_client_failures_are_throttled_in_every_dialect() {
    let server = Server::start().await;
    let right = Some((ZERTIBAN_CLIENT, server.zertiban_secret.as_str()));
    for _ in 0..5 {
        let (status, _, _) =
            server.post_form("/oauth2/token", Some((ZERTIBAN_CLIENT, "guess")), "grant_type=client_credentials").await;
        assert_eq!(status, 401);
    }
    let (status, headers, body) = server.post_form("/oauth2/token", right, "grant_type=client_credentials").await;
    assert_eq!((status, body["error"].as_str()), (429, Some("slow_down")));
    assert!(headers.contains_key("retry-after"));

    // Pay-me: the envelope carries the refusal too.
    let guess = json!({ "action": "authorize", "grant_type": "password", "client_id": PAYME_CLIENT,
                        "client_secret": "guess", "username": PAYME_USER, "password": PAYME_PASSWORD });
    let version = [("ALG-API-VERSION", API_VERSION)];
    for _ in 0..5 {
        assert_eq!(server.post_json("/oauth2/token", &version, &guess).await.0, 401);
    }
    let mut proper = guess.clone();
    proper["client_secret"] = json!(PAYME_SECRET);
    let (status, _, body) = server.post_json("/oauth2/token", &version, &proper).await;
    assert_eq!(status, 429);
    assert_eq!(body["success"], false);
    assert_eq!(body["authorization"]["meta"]["status"]["code"], "01");

    tokio::time::sleep(Duration::from_millis(3100)).await;
    assert_eq!(server.post_form("/oauth2/token", right, "grant_type=client_credentials").await.0, 200);
    assert_eq!(server.post_json("/oauth2/token", &version, &proper).await.0, 200);
}

/// A form POST from `address`, as the trusted proxy in front of the harness reports it.
async fn post_from(
    server: &Server,
    address: &str,
    path: &str,
    basic: (&str, &str),
    body: &str,
) -> (u16, reqwest::header::HeaderMap, serde_json::Value) {
    let request = server
        .http
        .post(server.url(path))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("X-Forwarded-For", format!("198.51.100.1, {address}"))
        .header("Authorization", basic_header(basic.0, basic.1))
        .body(body.to_owned());
    send(request).await
}

#[tokio::test]
async fn one_address_guessing_many_clients_is_throttled_as_a_whole() {
    let server = Server::start().await;
    let attacker = "203.0.113.9";
    // Each guess is under the per-client threshold, but they all come from one address.
    for i in 0..ADDRESS_THRESHOLD {
        let ghost = format!("ghost-{i}");
        let (status, _, _) =
            post_from(&server, attacker, "/oauth2/token", (&ghost, "guess"), "grant_type=client_credentials").await;
        assert_eq!(status, 401, "guess {i}");
    }
    let right = format!("grant_type=password&username={NETPAY_USER}&password={NETPAY_PASSWORD}");
    let netpay = (NETPAY_CLIENT, NETPAY_SECRET);
    let (status, headers, body) = post_from(&server, attacker, "/oauth2/token", netpay, &right).await;
    assert_eq!((status, body["error"].as_str()), (429, Some("slow_down")), "the whole address is slowed down");
    assert!(headers.contains_key("retry-after"));
    // Introspection authenticates clients too, so it is no way around the block.
    assert_eq!(post_from(&server, attacker, "/oauth2/introspect", netpay, "token=x").await.0, 429);
    // Another address, and a caller the proxy gave no address for, are not affected.
    assert_eq!(post_from(&server, "203.0.113.10", "/oauth2/token", netpay, &right).await.0, 200);
    assert_eq!(server.post_form("/oauth2/token", NETPAY, &right).await.0, 200);

    tokio::time::sleep(Duration::from_millis(3100)).await;
    let (status, _, body) = post_from(&server, attacker, "/oauth2/token", netpay, &right).await;
    assert_eq!(status, 200, "released after the block: {body}");
}
