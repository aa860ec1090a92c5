//! The `oauth2` crate, an independent OAuth client, getting tokens with both grants; its Basic
//! auth form-encodes id and secret (RFC 6749 §2.3.1), which the server must decode.

use oauth2::basic::BasicClient;
use oauth2::{
    AuthType, ClientId, ClientSecret, ResourceOwnerPassword, ResourceOwnerUsername, Scope, TokenResponse, TokenUrl,
};

use crate::harness::*;

/// Adapts reqwest 0.13 to the `oauth2` crate's HTTP client interface.
async fn http_client(request: oauth2::HttpRequest) -> Result<oauth2::HttpResponse, reqwest::Error> {
    let client = reqwest::Client::new();
    let (parts, body) = request.into_parts();
    let response = client.request(parts.method, parts.uri.to_string()).headers(parts.headers).body(body).send().await?;
    let mut builder = http::Response::builder().status(response.status());
    for (name, value) in response.headers() {
        builder = builder.header(name, value);
    }
    Ok(builder.body(response.bytes().await?.to_vec()).unwrap())
}

#[tokio::test]
async fn oauth2_crate_client_credentials_basic_and_body() {
    let server = Server::start().await;
    for auth_type in [AuthType::BasicAuth, AuthType::RequestBody] {
        let client = BasicClient::new(ClientId::new(ZERTIBAN_CLIENT.into()))
            .set_client_secret(ClientSecret::new(server.zertiban_secret.clone()))
            .set_token_uri(TokenUrl::new(server.url("/idp/oauth2/token")).unwrap())
            .set_auth_type(auth_type);
        let token = client
            .exchange_client_credentials()
            .add_scope(Scope::new("payments".into()))
            .request_async(&http_client)
            .await
            .unwrap();
        assert_eq!(token.expires_in(), Some(std::time::Duration::from_secs(300)));
        let claims = server.verify(token.access_token().secret(), &server.base).await;
        assert_eq!(claims["scope"], "payments");
    }
}

#[tokio::test]
async fn oauth2_crate_password_and_refresh_with_encoded_basic() {
    let server = Server::start().await;
    // NETPAY_SECRET contains ' ', ':', '+' and '%': the oauth2 crate form-encodes them.
    let client = BasicClient::new(ClientId::new(NETPAY_CLIENT.into()))
        .set_client_secret(ClientSecret::new(NETPAY_SECRET.into()))
        .set_token_uri(TokenUrl::new(server.url("/oauth-service/oauth/token")).unwrap());
    let username = ResourceOwnerUsername::new(NETPAY_USER.into());
    let password = ResourceOwnerPassword::new(NETPAY_PASSWORD.into());
    let token = client.exchange_password(&username, &password).request_async(&http_client).await.unwrap();
    let refresh = token.refresh_token().expect("a refresh token").clone();
    let renewed = client.exchange_refresh_token(&refresh).request_async(&http_client).await.unwrap();
    assert_ne!(renewed.refresh_token().unwrap().secret(), refresh.secret());
    server.verify(renewed.access_token().secret(), &server.base).await;
    // The old refresh token is spent.
    assert!(client.exchange_refresh_token(&refresh).request_async(&http_client).await.is_err());
}
