//! How answers are read: a missing `expires_in` is never a made-up lifetime, error codes are
//! typed, and an HTTP client that cannot be built is an error, not a client without timeouts.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::post;
use portero_client::{AnyErrorCode, ClientConfig, ClientError, Dialect, ErrorCode, TokenClient};

/// A token endpoint that answers `answer` (status, JSON) and keeps the request bodies.
#[derive(Clone)]
struct Endpoint {
    bodies: Arc<Mutex<Vec<String>>>,
    answer: Arc<dyn Fn(usize) -> (u16, String) + Send + Sync>,
}

async fn token(State(endpoint): State<Endpoint>, body: String) -> impl IntoResponse {
    let n = {
        let mut bodies = endpoint.bodies.lock().unwrap();
        bodies.push(body);
        bodies.len()
    };
    let (status, json) = (endpoint.answer)(n);
    (StatusCode::from_u16(status).unwrap(), [("content-type", "application/json")], json)
}

async fn start(answer: impl Fn(usize) -> (u16, String) + Send + Sync + 'static) -> (String, Endpoint) {
    let endpoint = Endpoint { bodies: Arc::default(), answer: Arc::new(answer) };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/oauth2/token", listener.local_addr().unwrap());
    let app = Router::new().route("/oauth2/token", post(token)).with_state(endpoint.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, endpoint)
}

fn config(url: &str) -> ClientConfig {
    ClientConfig::client_credentials(url, "merchant", "secret", Dialect::Post)
}

fn no_expiry(n: usize) -> (u16, String) {
    (200, format!(r#"{{"access_token":"at-{n}","token_type":"Bearer","refresh_token":"rt-{n}"}}"#))
}

#[tokio::test]
async fn a_token_without_expires_in_is_not_cached_but_its_refresh_token_is_used() {
    let (url, endpoint) = start(no_expiry).await;
    let client = TokenClient::new(config(&url)).unwrap();
    assert_eq!(client.access_token().await.unwrap(), "at-1");
    assert_eq!(client.access_token().await.unwrap(), "at-2", "an unknown lifetime is not reused");
    let answer = client.fetch().await.unwrap();
    assert_eq!(answer.expires_in(), None);
    let bodies = endpoint.bodies.lock().unwrap().clone();
    assert_eq!(bodies.len(), 3);
    assert!(bodies[0].contains("grant_type=client_credentials"), "{}", bodies[0]);
    assert!(
        bodies[1].contains("grant_type=refresh_token") && bodies[1].contains("refresh_token=rt-1"),
        "{}",
        bodies[1]
    );
}

#[tokio::test]
async fn a_documented_default_lifetime_caches_a_token_without_expires_in() {
    let (url, endpoint) = start(no_expiry).await;
    let client = TokenClient::new(config(&url).with_default_lifetime(Duration::from_secs(600))).unwrap();
    assert_eq!(client.access_token().await.unwrap(), "at-1");
    assert_eq!(client.access_token().await.unwrap(), "at-1");
    assert_eq!(endpoint.bodies.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn error_codes_are_typed_and_unknown_ones_kept() {
    let (url, _) = start(|_| (400, r#"{"error":"invalid_scope","error_description":"no such scope"}"#.into())).await;
    match TokenClient::new(config(&url)).unwrap().access_token().await {
        Err(ClientError::Refused { status: 400, error, description }) => {
            assert_eq!(error, AnyErrorCode::Known(ErrorCode::InvalidScope));
            assert_eq!(description.as_deref(), Some("no such scope"));
        }
        other => panic!("{other:?}"),
    }
    let (url, _) = start(|_| (403, r#"{"error":"merchant_blocked"}"#.into())).await;
    let error = TokenClient::new(config(&url)).unwrap().access_token().await.unwrap_err();
    assert!(
        matches!(&error, ClientError::Refused { error: AnyErrorCode::Other(code), .. } if code == "merchant_blocked")
    );
    assert_eq!(error.to_string(), "403: merchant_blocked");
    let (url, _) = start(|_| (400, "{}".into())).await;
    let error = TokenClient::new(config(&url)).unwrap().access_token().await.unwrap_err();
    assert!(matches!(&error, ClientError::Refused { error: AnyErrorCode::Other(code), .. } if code.is_empty()));
}

#[test]
fn an_http_client_that_cannot_be_built_is_an_error() {
    // An unknown preconfigured TLS backend makes reqwest's builder fail.
    let builder = reqwest::Client::builder().tls_backend_preconfigured(());
    let result = TokenClient::from_builder(config("http://127.0.0.1:9/oauth2/token"), builder);
    assert!(matches!(result, Err(ClientError::HttpClient(_))), "{result:?}");
}
