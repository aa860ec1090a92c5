//! `token_endpoint_auth_method`: a client registered for one method is refused with another,
//! with the same answer whether or not the secret was right; a client registered for none
//! accepts both secret methods (every seed's client).

use portero_core::client_auth::AuthMethod;
use portero_core::grant::GrantType;
use portero_core::secret::hash_password;
use portero_core::store::prelude::*;

use crate::harness::*;

const SECRET: &str = "method-client secret";

async fn client_for(server: &Server, id: &str, method: Option<AuthMethod>) {
    let mut client = base_client(id, hash_password(SECRET), &[GrantType::ClientCredentials]);
    client.auth_method = method;
    server.db.create_client(&client).await.unwrap();
}

async fn with_basic(server: &Server, id: &str, secret: &str) -> (u16, serde_json::Value) {
    let (status, _, body) =
        server.post_form("/oauth2/token", Some((id, secret)), "grant_type=client_credentials").await;
    (status, body)
}

async fn with_post(server: &Server, id: &str, secret: &str) -> (u16, serde_json::Value) {
    let form = format!("grant_type=client_credentials&client_id={id}&client_secret={}", secret.replace(' ', "+"));
    let (status, _, body) = server.post_form("/oauth2/token", None, &form).await;
    (status, body)
}

async fn each_client_uses_its_own_method(server: &Server) {
    client_for(server, "basic-only", Some(AuthMethod::ClientSecretBasic)).await;
    client_for(server, "post-only", Some(AuthMethod::ClientSecretPost)).await;
    client_for(server, "either", None).await;

    assert_eq!(with_basic(server, "basic-only", SECRET).await.0, 200);
    let (status, refused) = with_post(server, "basic-only", SECRET).await;
    assert_eq!((status, refused["error"].as_str()), (401, Some("invalid_client")), "{refused}");
    let (_, wrong_secret) = with_post(server, "basic-only", "wrong").await;
    assert_eq!(refused, wrong_secret, "the refusal does not tell whether the secret was right");

    assert_eq!(with_post(server, "post-only", SECRET).await.0, 200);
    let (status, refused) = with_basic(server, "post-only", SECRET).await;
    assert_eq!((status, refused["error"].as_str()), (401, Some("invalid_client")), "{refused}");

    assert_eq!(with_basic(server, "either", SECRET).await.0, 200);
    assert_eq!(with_post(server, "either", SECRET).await.0, 200);

    // Introspection authenticates the same way.
    let (_, token) = with_basic(server, "basic-only", SECRET).await;
    let form = format!(
        "token={}&client_id=basic-only&client_secret={}",
        token["access_token"].as_str().unwrap(),
        SECRET.replace(' ', "+")
    );
    let (status, _, refused) = server.post_form("/oauth2/introspect", None, &form).await;
    assert_eq!((status, refused["error"].as_str()), (401, Some("invalid_client")), "{refused}");
}

#[tokio::test]
async fn each_client_uses_its_own_method_sqlite() {
    each_client_uses_its_own_method(&Server::start().await).await;
}

#[tokio::test]
async fn each_client_uses_its_own_method_postgres() {
    let Some(server) = Server::start_postgres("client authentication methods", short_blocks()).await else { return };
    each_client_uses_its_own_method(&server).await;
    server.finish().await;
}

#[tokio::test]
async fn metadata_lists_the_methods() {
    let server = Server::start().await;
    let metadata: serde_json::Value = server
        .http
        .get(server.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let expected = serde_json::json!([
        "client_secret_basic",
        "client_secret_post",
        "private_key_jwt",
        "tls_client_auth",
        "self_signed_tls_client_auth"
    ]);
    assert_eq!(metadata["token_endpoint_auth_methods_supported"], expected);
    assert_eq!(metadata["introspection_endpoint_auth_methods_supported"], expected);
    assert_eq!(metadata["tls_client_certificate_bound_access_tokens"], true);
}
