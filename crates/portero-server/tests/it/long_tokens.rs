//! Every token Portero issues is accepted by its own introspection and revocation endpoints,
//! however many scopes and audiences it carries; a token too long for them is never issued.

use portero_core::grant::GrantType;
use portero_core::secret::hash_password;
use portero_core::store::prelude::*;

use crate::harness::*;

const SECRET: &str = "long-token client secret";

/// A client-credentials client with `scopes` scopes and `audiences` audiences of some length.
async fn client_with(server: &Server, id: &str, scopes: usize, audiences: usize) {
    let mut client = base_client(id, hash_password(SECRET), &[GrantType::ClientCredentials]);
    client.scopes = (0..scopes).map(|i| format!("payments:merchant-operation-{i:02}")).collect();
    client.audiences = (0..audiences).map(|i| format!("https://api-{i}.payments.example.com/v1/merchants")).collect();
    server.db.create_client(&client).await.unwrap();
}

async fn lifecycle(server: &Server, id: &str, path: &str, token: &str) -> (u16, serde_json::Value) {
    let (status, _, body) = server.post_form(path, Some((id, SECRET)), &format!("token={token}")).await;
    (status, body)
}

#[tokio::test]
async fn a_token_with_40_scopes_and_6_audiences_is_introspected_and_revoked() {
    let server = Server::start().await;
    client_with(&server, "many-scopes", 40, 6).await;
    let (status, _, tokens) =
        server.post_form("/oauth2/token", Some(("many-scopes", SECRET)), "grant_type=client_credentials").await;
    assert_eq!(status, 200, "{tokens}");
    let token = tokens["access_token"].as_str().unwrap();
    assert!(token.len() > 2048, "the token is longer than the old 2,048-character cap: {}", token.len());

    let (status, answer) = lifecycle(&server, "many-scopes", "/oauth2/introspect", token).await;
    assert_eq!((status, answer["active"].as_bool()), (200, Some(true)), "{answer}");
    let revoke = server.http.post(server.url("/oauth2/revoke")).basic_auth("many-scopes", Some(SECRET));
    let revoked = revoke.form(&[("token", token)]).send().await.unwrap();
    assert_eq!(revoked.status(), 200);
    let (status, answer) = lifecycle(&server, "many-scopes", "/oauth2/introspect", token).await;
    assert_eq!((status, answer["active"].as_bool()), (200, Some(false)), "{answer}");
}

#[tokio::test]
async fn a_token_longer_than_the_limit_is_not_issued() {
    let server = Server::start().await;
    client_with(&server, "too-many-scopes", 100, 60).await;
    let (status, _, refused) =
        server.post_form("/oauth2/token", Some(("too-many-scopes", SECRET)), "grant_type=client_credentials").await;
    assert_eq!((status, refused["error"].as_str()), (400, Some("invalid_scope")), "{refused}");
    // Asking for part of it fits.
    let (status, _, tokens) = server
        .post_form(
            "/oauth2/token",
            Some(("too-many-scopes", SECRET)),
            "grant_type=client_credentials&scope=payments:merchant-operation-01&audience=https%3A%2F%2Fapi-1.payments.example.com%2Fv1%2Fmerchants",
        )
        .await;
    assert_eq!(status, 200, "{tokens}");
}

#[tokio::test]
async fn a_token_over_the_limit_is_refused_by_introspection_as_invalid_request() {
    let server = Server::start().await;
    client_with(&server, "prober", 1, 1).await;
    let junk = "a".repeat(portero_core::params::MAX_TOKEN_CHARS + 1);
    let (status, answer) = lifecycle(&server, "prober", "/oauth2/introspect", &junk).await;
    assert_eq!((status, answer["error"].as_str()), (400, Some("invalid_request")), "{answer}");
    let fits = "a".repeat(portero_core::params::MAX_TOKEN_CHARS);
    let (status, answer) = lifecycle(&server, "prober", "/oauth2/introspect", &fits).await;
    assert_eq!((status, answer["active"].as_bool()), (200, Some(false)), "{answer}");
}
