//! `Verifier::verify_at`: expiry is judged at the time given; a clock before 1970 is an error
//! (never "now = 0", which would let every expired token through); and the typed rejections.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use portero_core::keys::{Alg, Signer};
use portero_verify::{Jwks, Rejection, Verifier, VerifyError};
use serde_json::{Value, json};

const ISSUER: &str = "https://auth.example";
const AUDIENCE: &str = "https://api.example";
/// 2023-11-14: the token below was issued then, for five minutes.
const ISSUED: u64 = 1_700_000_000;

struct Key {
    signer: Signer,
    kid: String,
}

impl Key {
    fn new() -> Self {
        let signer = Signer::from_pkcs8(Alg::EdDsa, &Signer::generate_pkcs8(Alg::EdDsa).unwrap()).unwrap();
        let kid = signer.thumbprint();
        Self { signer, kid }
    }

    fn verifier(&self) -> Verifier {
        let jwks = Jwks::from_json(&json!({ "keys": [self.signer.public_jwk(&self.kid, Alg::EdDsa)] })).unwrap();
        Verifier::builder(ISSUER, AUDIENCE).keys(jwks).build().unwrap()
    }

    fn sign(&self, header: &Value, claims: &Value) -> String {
        let signed =
            format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
        let signature = URL_SAFE_NO_PAD.encode(self.signer.sign(signed.as_bytes()).unwrap());
        format!("{signed}.{signature}")
    }

    fn token(&self, extra: Value) -> String {
        let mut claims = json!({ "iss": ISSUER, "sub": "merchant-42", "aud": AUDIENCE, "iat": ISSUED,
                                 "exp": ISSUED + 300, "client_id": "merchant-42", "jti": "j" });
        for (name, value) in extra.as_object().unwrap() {
            claims[name] = value.clone();
        }
        self.sign(&json!({ "alg": "EdDSA", "kid": self.kid, "typ": "at+jwt" }), &claims)
    }
}

fn at(seconds: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(seconds)
}

fn rejection(result: Result<portero_verify::Claims, VerifyError>) -> Rejection {
    match result {
        Err(VerifyError::InvalidToken(rejection)) => rejection,
        other => panic!("expected an invalid token, got {other:?}"),
    }
}

#[tokio::test]
async fn an_expired_token_is_refused_now_and_accepted_at_an_earlier_time() {
    let key = Key::new();
    let verifier = key.verifier();
    let token = key.token(json!({}));
    assert_eq!(rejection(verifier.verify(&token).await), Rejection::Expired, "expired long ago by the system clock");
    let claims = verifier.verify_at(&token, at(ISSUED + 60)).await.unwrap();
    assert_eq!(claims.sub, "merchant-42");
    assert_eq!(claims.client_id.as_deref(), Some("merchant-42"));
    // The 30 s leeway: still good at exp + 29, refused at exp + 30.
    assert!(verifier.verify_at(&token, at(ISSUED + 329)).await.is_ok());
    assert_eq!(rejection(verifier.verify_at(&token, at(ISSUED + 330)).await), Rejection::Expired);
    let strict = Verifier::builder(ISSUER, AUDIENCE)
        .keys(Jwks::from_json(&json!({ "keys": [key.signer.public_jwk(&key.kid, Alg::EdDsa)] })).unwrap())
        .leeway(Duration::ZERO)
        .build()
        .unwrap();
    assert_eq!(rejection(strict.verify_at(&token, at(ISSUED + 300)).await), Rejection::Expired);
    assert!(strict.verify_at(&token, at(ISSUED + 299)).await.is_ok());
}

#[tokio::test]
async fn a_clock_before_1970_is_an_error_not_time_zero() {
    let key = Key::new();
    let verifier = key.verifier();
    // With `now = 0` this token (exp far in the future of 1970) would pass.
    let token = key.token(json!({}));
    let before_epoch = UNIX_EPOCH - Duration::from_secs(1);
    assert_eq!(verifier.verify_at(&token, before_epoch).await.unwrap_err(), VerifyError::Clock);
    assert_eq!(VerifyError::Clock.status(), 500);
    assert_eq!(VerifyError::Clock.challenge(), "Bearer realm=\"api\"", "no error code: not the caller's fault");
}

#[tokio::test]
async fn not_before_issuer_audience_subject_and_header_are_checked() {
    let key = Key::new();
    let verifier = key.verifier();
    let now = at(ISSUED + 60);
    let nbf = key.token(json!({ "nbf": ISSUED + 120 }));
    assert_eq!(rejection(verifier.verify_at(&nbf, now).await), Rejection::NotYetValid);
    assert!(verifier.verify_at(&nbf, at(ISSUED + 95)).await.is_ok(), "within the leeway");
    let cases = [
        (json!({ "iss": "https://evil.example" }), Rejection::WrongIssuer),
        (json!({ "aud": ["https://other.example"] }), Rejection::WrongAudience),
        (json!({ "sub": "" }), Rejection::NoSubject),
        (json!({ "aud": 7 }), Rejection::MalformedClaims),
    ];
    for (extra, expected) in cases {
        assert_eq!(rejection(verifier.verify_at(&key.token(extra.clone()), now).await), expected, "{extra}");
    }
    let claims = json!({ "iss": ISSUER, "sub": "s", "aud": AUDIENCE, "iat": ISSUED, "exp": ISSUED + 300 });
    let id_token = key.sign(&json!({ "alg": "EdDSA", "kid": key.kid, "typ": "JWT" }), &claims);
    assert_eq!(rejection(verifier.verify_at(&id_token, now).await), Rejection::NotAnAccessToken);
    let no_kid = key.sign(&json!({ "alg": "EdDSA", "typ": "at+jwt" }), &claims);
    assert_eq!(rejection(verifier.verify_at(&no_kid, now).await), Rejection::NoKeyId);
    let other_kid = key.sign(&json!({ "alg": "EdDSA", "kid": "other", "typ": "at+jwt" }), &claims);
    assert_eq!(rejection(verifier.verify_at(&other_kid, now).await), Rejection::UnknownKeyId("other".into()));
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"at+jwt"}"#),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    assert!(matches!(rejection(verifier.verify_at(&none, now).await), Rejection::Jws(_)));
    assert_eq!(rejection(verifier.verify_at(&"a".repeat(17 * 1024), now).await), Rejection::TooLong);
}

#[test]
fn a_verifier_needs_a_key_source() {
    let error = Verifier::builder(ISSUER, AUDIENCE).build().unwrap_err();
    assert_eq!(error, portero_verify::BuildError::NoKeySource);
}

/// RFC 8705 §3: a token with `cnf["x5t#S256"]` passes `BearerLayer` only when the integration
/// put the connection's certificate with that thumbprint in the request (`PeerCertificate`);
/// without one, or with another, it is 401 `invalid_token`. Unbound tokens need no certificate.
#[tokio::test]
async fn certificate_bound_tokens_need_their_certificate() {
    use axum::body::Body;
    use axum::http::{Request, StatusCode, header};
    use portero_verify::{BearerLayer, PeerCertificate};
    use tower::ServiceExt;

    let key = Key::new();
    let verifier = std::sync::Arc::new(key.verifier());
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let leaf = b"the DER of the client's certificate".to_vec();
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &leaf);
    let thumbprint = URL_SAFE_NO_PAD.encode(digest.as_ref());
    let bound = key.token(json!({ "iat": now, "exp": now + 300, "cnf": { "x5t#S256": thumbprint } }));
    let unbound = key.token(json!({ "iat": now, "exp": now + 300 }));
    let app = axum::Router::new()
        .route("/v1/charges", axum::routing::get(|| async { "ok" }))
        .layer(BearerLayer::new(verifier.clone()));
    let call = |token: &str, peer: Option<Vec<u8>>| {
        let mut request = Request::get("/v1/charges").header(header::AUTHORIZATION, format!("Bearer {token}"));
        if let Some(der) = peer {
            request = request.extension(PeerCertificate(der));
        }
        app.clone().oneshot(request.body(Body::empty()).unwrap())
    };
    let answer = call(&bound, None).await.unwrap();
    assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
    let challenge = answer.headers()[header::WWW_AUTHENTICATE].to_str().unwrap().to_owned();
    assert!(challenge.contains("invalid_token"), "{challenge}");
    assert_eq!(call(&bound, Some(b"another certificate".to_vec())).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    assert_eq!(call(&bound, Some(leaf.clone())).await.unwrap().status(), StatusCode::OK);
    assert_eq!(call(&unbound, None).await.unwrap().status(), StatusCode::OK);
    // The header-only helpers know no certificate: a bound token is refused there.
    let mut headers = axum::http::HeaderMap::new();
    headers.insert(header::AUTHORIZATION, format!("Bearer {bound}").parse().unwrap());
    let refused = portero_verify::authenticate(&verifier, &headers).await.unwrap_err();
    assert_eq!(refused, VerifyError::InvalidToken(Rejection::NoCertificate));
}
