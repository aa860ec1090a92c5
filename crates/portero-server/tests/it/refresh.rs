//! Refresh tokens: rotation on every use, reuse revokes the family, one winner in a race.

use portero_core::store::prelude::*;
use serde_json::Value;

use crate::harness::*;

const NETPAY: Option<(&str, &str)> = Some((NETPAY_CLIENT, NETPAY_SECRET));

async fn login(server: &Server) -> Value {
    let body = format!("grant_type=password&username={NETPAY_USER}&password={NETPAY_PASSWORD}");
    let (status, _, tokens) = server.post_form("/oauth2/token", NETPAY, &body).await;
    assert_eq!(status, 200, "{tokens}");
    tokens
}

async fn redeem(server: &Server, refresh_token: &str, extra: &str) -> (u16, Value) {
    let body = format!("grant_type=refresh_token&refresh_token={refresh_token}{extra}");
    let (status, _, answer) = server.post_form("/oauth2/token", NETPAY, &body).await;
    (status, answer)
}

#[tokio::test]
async fn rotation_and_reuse_detection() {
    let server = Server::start().await;
    let first = login(&server).await;
    let rt1 = first["refresh_token"].as_str().unwrap();

    let (status, second) = redeem(&server, rt1, "").await;
    assert_eq!(status, 200, "{second}");
    let rt2 = second["refresh_token"].as_str().unwrap();
    assert_ne!(rt1, rt2, "refresh tokens rotate on every use");
    let claims = server.verify(second["access_token"].as_str().unwrap(), &server.base).await;
    assert_eq!(claims["sub"], "user-merchant01-0f8fad5b");

    // The rotated token again: reuse. It fails, and so does the family's live token.
    let (status, reuse) = redeem(&server, rt1, "").await;
    assert_eq!((status, reuse["error"].as_str()), (400, Some("invalid_grant")));
    let (status, after) = redeem(&server, rt2, "").await;
    assert_eq!((status, after["error"].as_str()), (400, Some("invalid_grant")), "the family is revoked");
}

#[tokio::test]
async fn refresh_token_is_stored_only_as_a_hash() {
    let server = Server::start().await;
    let tokens = login(&server).await;
    let value = tokens["refresh_token"].as_str().unwrap();

    assert!(server.db.find_refresh_token(value).await.unwrap().is_none());
    let hash = portero_core::secret::sha256_b64(value.as_bytes());
    assert!(server.db.find_refresh_token(&hash).await.unwrap().is_some());
}

#[tokio::test]
async fn scope_may_narrow_but_not_widen() {
    let server = Server::start().await;
    let tokens = login(&server).await;
    let (status, narrowed) = redeem(&server, tokens["refresh_token"].as_str().unwrap(), "&scope=sale").await;
    assert_eq!(status, 200, "{narrowed}");
    assert_eq!(narrowed["scope"], "sale");
    let (status, widened) = redeem(&server, narrowed["refresh_token"].as_str().unwrap(), "&scope=sale%20admin").await;
    assert_eq!((status, widened["error"].as_str()), (400, Some("invalid_scope")));
}

#[tokio::test]
async fn another_clients_refresh_token_is_invalid_grant() {
    let server = Server::start().await;
    let tokens = login(&server).await;
    let body = serde_json::json!({
        "grant_type": "refresh_token",
        "client_id": PAYME_CLIENT,
        "client_secret": PAYME_SECRET,
        "refresh_token": tokens["refresh_token"],
    });
    let (status, _, answer) = server.post_json("/oauth2/token", &[], &body).await;
    assert_eq!((status, answer["error"].as_str()), (400, Some("invalid_grant")));
    // ...and the rightful owner can still use it.
    let (status, _) = redeem(&server, tokens["refresh_token"].as_str().unwrap(), "").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn concurrent_double_refresh_has_exactly_one_winner() {
    let server = std::sync::Arc::new(Server::start().await);
    for round in 0..3 {
        let tokens = login(&server).await;
        let rt = tokens["refresh_token"].as_str().unwrap().to_owned();
        let attempts: Vec<_> = (0..2 + round * 9)
            .map(|_| {
                let (server, rt) = (server.clone(), rt.clone());
                tokio::spawn(async move { redeem(&server, &rt, "").await })
            })
            .collect();
        let mut winners = 0;
        for attempt in attempts {
            let (status, body) = attempt.await.unwrap();
            match status {
                200 => winners += 1,
                400 => assert_eq!(body["error"], "invalid_grant"),
                other => panic!("unexpected {other}: {body}"),
            }
        }
        assert_eq!(winners, 1, "round {round}");
    }
}

const PAYME: Option<(&str, &str)> = Some((PAYME_CLIENT, PAYME_SECRET));
const OTHER_AUDIENCE: &str = "https://api.alignet.io";

/// A Pay-me login for both audiences with a refresh token (form body, standard dialect).
async fn payme_login(server: &Server) -> Value {
    let scope = "create:token%20post:charges%20offline_access";
    let body = format!("grant_type=password&username={PAYME_USER}&password={PAYME_PASSWORD}&scope={scope}");
    let (status, _, tokens) = server.post_form("/oauth2/token", PAYME, &body).await;
    assert_eq!(status, 200, "{tokens}");
    tokens
}

async fn payme_redeem(server: &Server, refresh_token: &str, extra: &str) -> (u16, Value) {
    let body = format!("grant_type=refresh_token&refresh_token={refresh_token}{extra}");
    let (status, _, answer) = server.post_form("/oauth2/token", PAYME, &body).await;
    (status, answer)
}

fn encoded(uri: &str) -> String {
    uri.replace(':', "%3A").replace('/', "%2F")
}

/// RFC 8707 §2.2 on refresh: `resource` and `audience` narrow the access token to part of the
/// grant, anything outside it is `invalid_target`, and the family keeps every audience.
async fn resource_narrows_within_the_grant(server: &Server) {
    let tokens = payme_login(server).await;
    let claims = server.verify(tokens["access_token"].as_str().unwrap(), PAYME_AUDIENCE).await;
    assert_eq!(claims["aud"], serde_json::json!([PAYME_AUDIENCE, OTHER_AUDIENCE]));

    let only_a = format!("&resource={}", encoded(PAYME_AUDIENCE));
    let (status, narrowed) = payme_redeem(server, tokens["refresh_token"].as_str().unwrap(), &only_a).await;
    assert_eq!(status, 200, "{narrowed}");
    let claims = server.verify(narrowed["access_token"].as_str().unwrap(), PAYME_AUDIENCE).await;
    assert_eq!(claims["aud"], PAYME_AUDIENCE, "the access token is narrowed to the resource asked for");

    let rt = narrowed["refresh_token"].as_str().unwrap();
    let evil = format!("&resource={}", encoded("https://evil.example"));
    let (status, refused) = payme_redeem(server, rt, &evil).await;
    assert_eq!((status, refused["error"].as_str()), (400, Some("invalid_target")), "{refused}");
    let (status, refused) = payme_redeem(server, rt, "&audience=https%3A%2F%2Fevil.example").await;
    assert_eq!((status, refused["error"].as_str()), (400, Some("invalid_target")), "{refused}");

    // A refused refresh spends nothing; the next one, asking for nothing, gets the whole grant.
    let (status, whole) = payme_redeem(server, rt, "").await;
    assert_eq!(status, 200, "{whole}");
    let claims = server.verify(whole["access_token"].as_str().unwrap(), OTHER_AUDIENCE).await;
    assert_eq!(claims["aud"], serde_json::json!([PAYME_AUDIENCE, OTHER_AUDIENCE]));
    let other = format!("&audience={}", encoded(OTHER_AUDIENCE));
    let (status, other) = payme_redeem(server, whole["refresh_token"].as_str().unwrap(), &other).await;
    assert_eq!(status, 200, "{other}");
    let claims = server.verify(other["access_token"].as_str().unwrap(), OTHER_AUDIENCE).await;
    assert_eq!(claims["aud"], OTHER_AUDIENCE);
}

/// RFC 6749 §6: a refresh narrowed to `sale` narrows that access token only; the rotated
/// refresh token keeps `sale reprint cancel`.
async fn narrowed_scope_keeps_the_grant(server: &Server) {
    let tokens = login(server).await;
    let (status, narrowed) = redeem(server, tokens["refresh_token"].as_str().unwrap(), "&scope=sale").await;
    assert_eq!((status, narrowed["scope"].as_str()), (200, Some("sale")), "{narrowed}");
    let rt = narrowed["refresh_token"].as_str().unwrap();
    let (status, two) = redeem(server, rt, "&scope=sale%20cancel").await;
    assert_eq!((status, two["scope"].as_str()), (200, Some("sale cancel")), "{two}");
    let (status, whole) = redeem(server, two["refresh_token"].as_str().unwrap(), "").await;
    assert_eq!((status, whole["scope"].as_str()), (200, Some("sale reprint cancel")), "{whole}");
    let (status, widened) = redeem(server, whole["refresh_token"].as_str().unwrap(), "&scope=sale%20admin").await;
    assert_eq!((status, widened["error"].as_str()), (400, Some("invalid_scope")));
}

#[tokio::test]
async fn refresh_resource_narrows_within_the_grant_sqlite() {
    resource_narrows_within_the_grant(&Server::start().await).await;
}

#[tokio::test]
async fn refresh_resource_narrows_within_the_grant_postgres() {
    let Some(server) = Server::start_postgres("refresh resource narrowing", short_blocks()).await else { return };
    resource_narrows_within_the_grant(&server).await;
    server.finish().await;
}

#[tokio::test]
async fn narrowed_scope_keeps_the_grant_sqlite() {
    narrowed_scope_keeps_the_grant(&Server::start().await).await;
}

#[tokio::test]
async fn narrowed_scope_keeps_the_grant_postgres() {
    let Some(server) = Server::start_postgres("refresh scope narrowing", short_blocks()).await else { return };
    narrowed_scope_keeps_the_grant(&server).await;
    server.finish().await;
}

const RETRY_CLIENT: &str = "retry-app";
const RETRY_SECRET: &str = "retry-app secret";

/// A password client whose refresh tokens may be retried for `window` seconds after a rotation.
async fn retry_client(server: &Server, window: i64) {
    use portero_core::grant::GrantType;

    let grants = [GrantType::Password, GrantType::RefreshToken];
    let mut client = base_client(RETRY_CLIENT, portero_core::secret::hash_password(RETRY_SECRET), &grants);
    client.scopes = vec!["sale".into(), "reprint".into()];
    client.refresh_retry_window = Some(window);
    server.db.create_client(&client).await.unwrap();
}

async fn retry_post(server: &Server, body: &str) -> (u16, Value) {
    let (status, _, answer) = server.post_form("/oauth2/token", Some((RETRY_CLIENT, RETRY_SECRET)), body).await;
    (status, answer)
}

async fn retry_login(server: &Server) -> String {
    let body = format!("grant_type=password&username={NETPAY_USER}&password={NETPAY_PASSWORD}");
    let (status, tokens) = retry_post(server, &body).await;
    assert_eq!(status, 200, "{tokens}");
    tokens["refresh_token"].as_str().unwrap().to_owned()
}

async fn retry_redeem(server: &Server, refresh_token: &str) -> (u16, Value) {
    retry_post(server, &format!("grant_type=refresh_token&refresh_token={refresh_token}")).await
}

/// Within the window a second redemption of the parent answers with the same child and a new
/// access token; once the child was used, the parent is reuse and the family is revoked.
async fn retry_window_gives_the_same_child(server: &Server) {
    retry_client(server, 60).await;
    let parent = retry_login(server).await;
    let (status, first) = retry_redeem(server, &parent).await;
    assert_eq!(status, 200, "{first}");
    let (status, retried) = retry_redeem(server, &parent).await;
    assert_eq!(status, 200, "a retry within the window is answered: {retried}");
    assert_eq!(retried["refresh_token"], first["refresh_token"], "the same child");
    assert_ne!(retried["access_token"], first["access_token"], "a fresh access token");
    assert_eq!(retried["scope"], "sale reprint");

    let child = first["refresh_token"].as_str().unwrap();
    let (status, grandchild) = retry_redeem(server, child).await;
    assert_eq!(status, 200, "{grandchild}");
    let (status, reuse) = retry_redeem(server, &parent).await;
    assert_eq!((status, reuse["error"].as_str()), (400, Some("invalid_grant")), "the child was used: reuse");
    let (status, revoked) = retry_redeem(server, grandchild["refresh_token"].as_str().unwrap()).await;
    assert_eq!((status, revoked["error"].as_str()), (400, Some("invalid_grant")), "the family is revoked");
}

/// Many redemptions of one parent at once: with a window, every one gets the same child.
async fn concurrent_retries_share_one_child(server: std::sync::Arc<Server>) {
    retry_client(&server, 60).await;
    let parent = retry_login(&server).await;
    let attempts: Vec<_> = (0..24)
        .map(|_| {
            let (server, parent) = (server.clone(), parent.clone());
            tokio::spawn(async move { retry_redeem(&server, &parent).await })
        })
        .collect();
    let mut children = std::collections::HashSet::new();
    for attempt in attempts {
        let (status, answer) = attempt.await.unwrap();
        assert_eq!(status, 200, "{answer}");
        children.insert(answer["refresh_token"].as_str().unwrap().to_owned());
    }
    assert_eq!(children.len(), 1, "one child for every concurrent redemption");
    let child = children.into_iter().next().unwrap();
    let (status, next) = retry_redeem(&server, &child).await;
    assert_eq!(status, 200, "the family is intact: {next}");
}

#[tokio::test]
async fn retry_window_gives_the_same_child_sqlite() {
    retry_window_gives_the_same_child(&Server::start().await).await;
}

#[tokio::test]
async fn retry_window_gives_the_same_child_postgres() {
    let Some(server) = Server::start_postgres("refresh retry window", short_blocks()).await else { return };
    retry_window_gives_the_same_child(&server).await;
    server.finish().await;
}

#[tokio::test]
async fn concurrent_retries_share_one_child_sqlite() {
    concurrent_retries_share_one_child(std::sync::Arc::new(Server::start().await)).await;
}

#[tokio::test]
async fn concurrent_retries_share_one_child_postgres() {
    let Some(server) = Server::start_postgres("concurrent refresh retries", short_blocks()).await else { return };
    let server = std::sync::Arc::new(server);
    concurrent_retries_share_one_child(server.clone()).await;
    if let Ok(server) = std::sync::Arc::try_unwrap(server) {
        server.finish().await;
    }
}

#[tokio::test]
async fn after_the_window_a_retry_is_reuse() {
    let server = Server::start().await;
    retry_client(&server, 1).await;
    let parent = retry_login(&server).await;
    let (status, first) = retry_redeem(&server, &parent).await;
    assert_eq!(status, 200, "{first}");
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let (status, reuse) = retry_redeem(&server, &parent).await;
    assert_eq!((status, reuse["error"].as_str()), (400, Some("invalid_grant")), "{reuse}");
    let (status, revoked) = retry_redeem(&server, first["refresh_token"].as_str().unwrap()).await;
    assert_eq!((status, revoked["error"].as_str()), (400, Some("invalid_grant")), "the family is revoked");
}

#[tokio::test]
async fn without_a_window_concurrent_redemptions_still_have_one_winner() {
    // The default (window 0) keeps the RFC 9700 rule; see concurrent_double_refresh_has_exactly_one_winner.
    let server = Server::start().await;
    retry_client(&server, 0).await;
    let parent = retry_login(&server).await;
    let (status, _) = retry_redeem(&server, &parent).await;
    assert_eq!(status, 200);
    let (status, reuse) = retry_redeem(&server, &parent).await;
    assert_eq!((status, reuse["error"].as_str()), (400, Some("invalid_grant")));
}
