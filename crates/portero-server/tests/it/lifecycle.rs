//! Introspection (RFC 7662), revocation (RFC 7009) and client-secret rotation with overlap.

use serde_json::{Value, json};

use crate::harness::*;

async fn nequi_token(server: &Server) -> String {
    let basic = Some((NEQUI_CLIENT, server.nequi_secret.as_str()));
    let (status, _, body) = server.post_form("/oauth2/token", basic, "grant_type=client_credentials").await;
    assert_eq!(status, 200);
    body["access_token"].as_str().unwrap().to_owned()
}

async fn introspect(server: &Server, basic: (&str, &str), token: &str) -> Value {
    let (status, headers, body) = server.post_form("/oauth2/introspect", Some(basic), &format!("token={token}")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["cache-control"], "no-store");
    body
}

async fn revoke(server: &Server, basic: (&str, &str), token: &str) -> (u16, String) {
    let request = server
        .http
        .post(server.url("/oauth2/revoke"))
        .header("Authorization", basic_header(basic.0, basic.1))
        .form(&[("token", token)]);
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn introspection_of_access_tokens() {
    let server = Server::start().await;
    let token = nequi_token(&server).await;
    let resource_server = (ZERTIBAN_CLIENT, server.zertiban_secret.as_str());
    let answer = introspect(&server, resource_server, &token).await;
    assert_eq!(answer["active"], true);
    assert_eq!(answer["client_id"], NEQUI_CLIENT);
    assert_eq!(answer["scope"], "other/other");
    assert_eq!(answer["token_type"], "Bearer");
    assert!(answer["exp"].is_i64() && answer["jti"].is_string());
    for junk in ["not-a-token", "a.b.c", &format!("{token}x")] {
        assert_eq!(introspect(&server, resource_server, junk).await, json!({ "active": false }));
    }
    // Introspection needs client authentication.
    let (status, _, body) = server.post_form("/oauth2/introspect", None, &format!("token={token}")).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")));
    let (status, _, body) = server.post_form("/oauth2/introspect", Some(resource_server), "").await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_request")));
}

#[tokio::test]
async fn revoked_access_token_is_inactive() {
    let server = Server::start().await;
    let token = nequi_token(&server).await;
    let nequi = (NEQUI_CLIENT, server.nequi_secret.as_str());
    let other = (ZERTIBAN_CLIENT, server.zertiban_secret.as_str());
    let (status, body) = revoke(&server, other, &token).await;
    assert_eq!(status, 400, "another client's token is refused: {body}");
    assert_eq!(introspect(&server, nequi, &token).await["active"], true);
    assert_eq!(revoke(&server, nequi, &token).await.0, 200);
    assert_eq!(revoke(&server, nequi, &token).await.0, 200, "revoking twice is fine");
    assert_eq!(introspect(&server, nequi, &token).await, json!({ "active": false }));
    assert_eq!(revoke(&server, nequi, "unknown-token").await.0, 200, "RFC 7009 §2.2");
}

#[tokio::test]
async fn revoking_a_refresh_token_revokes_its_family() {
    let server = Server::start().await;
    let netpay = (NETPAY_CLIENT, NETPAY_SECRET);
    let body = format!("grant_type=password&username={NETPAY_USER}&password={NETPAY_PASSWORD}");
    let (_, _, first) = server.post_form("/oauth2/token", Some(netpay), &body).await;
    let rt1 = first["refresh_token"].as_str().unwrap();
    let (_, _, second) =
        server.post_form("/oauth2/token", Some(netpay), &format!("grant_type=refresh_token&refresh_token={rt1}")).await;
    let rt2 = second["refresh_token"].as_str().unwrap();
    let live = introspect(&server, netpay, rt2).await;
    assert_eq!((live["active"].as_bool(), live["token_type"].as_str()), (Some(true), Some("refresh_token")));
    assert_eq!(introspect(&server, netpay, rt1).await["active"], false, "a used refresh token is inactive");
    // Another client learns nothing about it.
    let other = (PAYME_CLIENT, PAYME_SECRET);
    assert_eq!(introspect(&server, other, rt2).await["active"], false);

    assert_eq!(revoke(&server, netpay, rt2).await.0, 200);
    assert_eq!(introspect(&server, netpay, rt2).await["active"], false);
    let (status, _, refused) =
        server.post_form("/oauth2/token", Some(netpay), &format!("grant_type=refresh_token&refresh_token={rt2}")).await;
    assert_eq!((status, refused["error"].as_str()), (400, Some("invalid_grant")));
}

#[tokio::test]
async fn secret_rotation_keeps_the_old_secret_during_the_overlap() {
    let server = Server::start().await;
    let rotate = |overlap: &'static str| {
        server
            .http
            .post(server.url(&format!("/admin/clients/{ZERTIBAN_CLIENT}/secret")))
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({ "overlap": overlap }))
    };
    let (status, _, rotated) = send(rotate("1h")).await;
    assert_eq!(status, 200, "{rotated}");
    let new_secret = rotated["client_secret"].as_str().unwrap().to_owned();
    for secret in [server.zertiban_secret.as_str(), new_secret.as_str()] {
        let (status, _, _) =
            server.post_form("/oauth2/token", Some((ZERTIBAN_CLIENT, secret)), "grant_type=client_credentials").await;
        assert_eq!(status, 200, "both secrets work during the overlap");
    }
    // A rotation without overlap ends the old secrets at once.
    let (_, _, again) = send(rotate("0")).await;
    let newest = again["client_secret"].as_str().unwrap();
    for (secret, expected) in [(server.zertiban_secret.as_str(), 401), (new_secret.as_str(), 401), (newest, 200)] {
        let (status, _, _) =
            server.post_form("/oauth2/token", Some((ZERTIBAN_CLIENT, secret)), "grant_type=client_credentials").await;
        assert_eq!(status, expected);
    }
}
