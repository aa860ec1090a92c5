//! Every RFC 6749 §5.2 error, with its status, body and headers.

use serde_json::json;

use crate::harness::*;

async fn expect_error(server: &Server, basic: Option<(&str, &str)>, body: &str, status: u16, code: &str) {
    let (got_status, headers, error) = server.post_form("/oauth2/token", basic, body).await;
    assert_eq!((got_status, error["error"].as_str()), (status, Some(code)), "{body}: {error}");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(headers["pragma"], "no-cache");
    assert!(error["error_description"].is_string());
    if status == 401 {
        assert!(headers["www-authenticate"].to_str().unwrap().starts_with("Basic"), "RFC 6749 §5.2 challenge");
    }
}

#[tokio::test]
async fn invalid_request_cases() {
    let s = Server::start().await;
    let zertiban = Some((ZERTIBAN_CLIENT, s.zertiban_secret.as_str()));
    expect_error(&s, zertiban, "", 400, "invalid_request").await;
    expect_error(&s, zertiban, "scope=payments", 400, "invalid_request").await;
    expect_error(&s, zertiban, "grant_type=client_credentials&grant_type=client_credentials", 400, "invalid_request")
        .await;
    let both = format!("grant_type=client_credentials&client_secret={}", s.zertiban_secret);
    expect_error(&s, zertiban, &both, 400, "invalid_request").await;
    expect_error(&s, zertiban, "grant_type=client_credentials&client_id=someone-else", 400, "invalid_request").await;
    let netpay = Some((NETPAY_CLIENT, NETPAY_SECRET));
    expect_error(&s, netpay, "grant_type=password&username=merchant01", 400, "invalid_request").await;
    expect_error(&s, netpay, "grant_type=refresh_token", 400, "invalid_request").await;
}

#[tokio::test]
async fn client_credentials_never_in_the_query_string() {
    let s = Server::start().await;
    let url = s.url(&format!(
        "/oauth2/token?grant_type=client_credentials&client_id={ZERTIBAN_CLIENT}&client_secret={}",
        s.zertiban_secret
    ));
    let request = s.http.post(url).header("Content-Type", "application/x-www-form-urlencoded");
    let (status, _, error) = send(request).await;
    assert_eq!((status, error["error"].as_str()), (400, Some("invalid_request")));
}

#[tokio::test]
async fn invalid_client_cases_look_alike() {
    let s = Server::start().await;
    expect_error(&s, Some(("nobody", "x")), "grant_type=client_credentials", 401, "invalid_client").await;
    expect_error(&s, Some((ZERTIBAN_CLIENT, "wrong")), "grant_type=client_credentials", 401, "invalid_client").await;
    expect_error(&s, None, "grant_type=client_credentials", 401, "invalid_client").await;
    expect_error(&s, None, "grant_type=client_credentials&client_id=zertiban-merchant", 401, "invalid_client").await;
    let body = "grant_type=client_credentials&client_id=zertiban-merchant&client_secret=wrong";
    expect_error(&s, None, body, 401, "invalid_client").await;
    let (_, _, unknown) = s.post_form("/oauth2/token", Some(("nobody", "x")), "grant_type=client_credentials").await;
    let (_, _, wrong) =
        s.post_form("/oauth2/token", Some((ZERTIBAN_CLIENT, "x")), "grant_type=client_credentials").await;
    assert_eq!(unknown, wrong, "unknown client and wrong secret must be indistinguishable");
}

#[tokio::test]
async fn unsupported_and_unauthorized_grants() {
    let s = Server::start().await;
    let zertiban = Some((ZERTIBAN_CLIENT, s.zertiban_secret.as_str()));
    expect_error(&s, zertiban, "grant_type=authorization_code&code=x", 400, "unsupported_grant_type").await;
    expect_error(
        &s,
        zertiban,
        "grant_type=urn:ietf:params:oauth:grant-type:device_code",
        400,
        "unsupported_grant_type",
    )
    .await;
    expect_error(&s, zertiban, "grant_type=password&username=merchant01&password=pass1234", 400, "unauthorized_client")
        .await;
    let netpay = Some((NETPAY_CLIENT, NETPAY_SECRET));
    expect_error(&s, netpay, "grant_type=client_credentials", 400, "unauthorized_client").await;
}

#[tokio::test]
async fn invalid_grant_for_bad_user_credentials_is_uniform() {
    let s = Server::start().await;
    let netpay = Some((NETPAY_CLIENT, NETPAY_SECRET));
    let wrong_password = "grant_type=password&username=merchant01&password=nope";
    let unknown_user = "grant_type=password&username=ghost&password=nope";
    let other_tenant = "grant_type=password&username=outsider&password=outsider-pass";
    for body in [wrong_password, unknown_user, other_tenant] {
        expect_error(&s, netpay, body, 400, "invalid_grant").await;
    }
    let (_, _, a) = s.post_form("/oauth2/token", netpay, wrong_password).await;
    let (_, _, b) = s.post_form("/oauth2/token", netpay, unknown_user).await;
    assert_eq!(a, b);
    expect_error(&s, netpay, "grant_type=refresh_token&refresh_token=made-up", 400, "invalid_grant").await;
}

#[tokio::test]
async fn invalid_scope_and_target() {
    let s = Server::start().await;
    let nequi = Some((NEQUI_CLIENT, s.nequi_secret.as_str()));
    expect_error(&s, nequi, "grant_type=client_credentials&scope=admin", 400, "invalid_scope").await;
    expect_error(&s, nequi, "grant_type=client_credentials&scope=a%22b", 400, "invalid_scope").await;
    expect_error(&s, nequi, "grant_type=client_credentials&audience=https://elsewhere", 400, "invalid_target").await;
    expect_error(&s, nequi, "grant_type=client_credentials&resource=not-a-uri", 400, "invalid_target").await;
    // A lenient client (Zertiban) drops what it may not have instead.
    let zertiban = Some((ZERTIBAN_CLIENT, s.zertiban_secret.as_str()));
    let (status, _, body) =
        s.post_form("/oauth2/token", zertiban, "grant_type=client_credentials&scope=admin payments").await;
    assert_eq!(status, 200);
    assert_eq!(body["scope"], "payments");
}

#[tokio::test]
async fn audience_and_resource_select_aud() {
    let s = Server::start().await;
    let request = |extra: &str| {
        json!({
            "grant_type": "password",
            "client_id": PAYME_CLIENT,
            "client_secret": PAYME_SECRET,
            "username": PAYME_USER,
            "password": PAYME_PASSWORD,
            "resource": extra,
        })
    };
    let (status, _, body) = s.post_json("/oauth2/token", &[], &request("https://api.alignet.io")).await;
    assert_eq!(status, 200, "{body}");
    let claims = s.verify(body["access_token"].as_str().unwrap(), "https://api.alignet.io").await;
    assert_eq!(claims["aud"], "https://api.alignet.io");
    let (status, _, body) = s.post_json("/oauth2/token", &[], &request("https://unknown.example")).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_target")));
}

#[tokio::test]
async fn the_token_endpoint_takes_post_only() {
    let s = Server::start().await;
    let (status, headers, body) = send(s.http.get(s.url("/oauth2/token"))).await;
    assert_eq!((status, body["error"].as_str()), (405, Some("invalid_request")));
    assert_eq!(headers["allow"], "POST");
    assert_eq!(headers["cache-control"], "no-store");
}
