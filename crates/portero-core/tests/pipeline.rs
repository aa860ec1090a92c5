//! The token pipeline on the in-memory store, with time pinned: no database, no HTTP, no clock.
//! Each test runs in milliseconds, so the grants' rules are checked at the level they live at.

use std::time::Duration;

use portero_core::audit::AuditLog;
use portero_core::client_cache::ClientCache;
use portero_core::context::{Context, Policy};
use portero_core::dialect::Dialect;
use portero_core::error::ErrorCode;
use portero_core::keys::{Alg, KeyRing, KeySet, MasterKey, SigningKey};
use portero_core::params::{FieldLimits, Params};
use portero_core::registration::{GrantType, RefreshPolicy};
use portero_core::secret::{Verifier, generate_client_secret, hash_generated_secret};
use portero_core::store::memory::MemoryStore;
use portero_core::store::prelude::*;
use portero_core::store::{Client, RefreshTokenRecord, Tenant};
use portero_core::throttle::{Throttle, ThrottleRules};
use portero_core::token_endpoint::{Outcome, TokenInput, issue};

/// 2026-12-01T00:00:00Z: every test runs at fixed instants from here.
const T0: i64 = 1_796_083_200;
const ISSUER: &str = "https://auth.example";

struct Pipeline {
    ctx: Context<MemoryStore>,
    secret: String,
}

async fn pipeline() -> Pipeline {
    let store = MemoryStore::default();
    let master = MasterKey::generate();
    store.insert_key(&SigningKey::generate(Alg::Es256, &master, T0, T0).unwrap()).await.unwrap();
    let keys = KeyRing::new(KeySet::load(&store.list_keys().await.unwrap(), &master).unwrap());
    store.create_tenant(&Tenant { id: "t1".into(), name: "acme".into(), created_at: T0 }).await.unwrap();
    let secret = generate_client_secret();
    store.create_client(&client(hash_generated_secret(&secret))).await.unwrap();
    let policy = Policy {
        issuer: ISSUER.into(),
        access_token_ttl: 600,
        refresh_token_ttl: 3_600,
        refresh_retry_window: 0,
        api_version: None,
        default_locale: "en_US".into(),
        dpop_nonce: false,
    };
    let ctx = Context {
        keys,
        policy,
        verifier: Verifier::new(16),
        clients: ClientCache::new(Duration::ZERO, 0),
        throttle: Throttle::new(ThrottleRules::default(), 0),
        pending: Default::default(),
        successors: portero_core::successor::SuccessorKey::new(&master),
        dpop_nonces: portero_core::dpop_nonce::Nonces::new(&master),
        remote_keys: portero_core::remote_keys::RemoteKeys::offline(),
        audit: AuditLog::start(store.clone()),
        store,
    };
    Pipeline { ctx, secret }
}

fn client(secret_hash: String) -> Client {
    Client {
        id: "svc".into(),
        secret_hash,
        grants: vec![GrantType::ClientCredentials, GrantType::RefreshToken],
        scopes: vec!["read".into(), "write".into()],
        audiences: vec!["https://api.example".into()],
        tenants: vec!["t1".into()],
        token_ttl: None,
        refresh_policy: RefreshPolicy::Always,
        ignore_unknown_scopes: false,
        locale: None,
        refresh_retry_window: None,
        auth_method: None,
        disabled_at: None,
        created_at: T0,
        jwks: None,
        jwks_uri: None,
        require_dpop: false,
        tls_subject_dn: None,
        tls_bound_tokens: false,
        last_seen_at: None,
        previous_secret: None,
    }
}

impl Pipeline {
    async fn post(&self, body: &str, now: i64) -> Outcome {
        let params = Params::from_form(body.as_bytes(), &FieldLimits::default()).unwrap();
        let input = TokenInput {
            params,
            authorization: None,
            dialect: Dialect::Standard,
            api_version: None,
            source: None,
            dpop: Default::default(),
            client_cert: None,
        };
        issue(&self.ctx, input, now).await
    }

    async fn client_credentials(&self, extra: &str, now: i64) -> Outcome {
        let body = format!("grant_type=client_credentials&client_id=svc&client_secret={}{extra}", self.secret);
        self.post(&body, now).await
    }

    async fn refresh(&self, refresh_token: &str, now: i64) -> Outcome {
        let body = format!(
            "grant_type=refresh_token&refresh_token={refresh_token}&client_id=svc&client_secret={}",
            self.secret
        );
        self.post(&body, now).await
    }
}

#[tokio::test]
async fn client_credentials_mints_a_token_for_the_asked_scope() {
    let p = pipeline().await;
    let outcome = p.client_credentials("&scope=read", T0).await;
    let token = outcome.result.expect("issued");
    assert_eq!((token.token_type, token.expires_in, token.scope.as_deref()), ("Bearer", 600, Some("read")));
    assert!(token.refresh_token.is_none(), "RFC 6749 §4.4.3: no refresh token for client credentials");
    let claims = p.ctx.keys.current().verify(&token.access_token).expect("verifies");
    assert_eq!(claims["iat"], T0);
    assert_eq!(claims["exp"], T0 + 600);
    assert_eq!(claims["aud"], "https://api.example");
}

#[tokio::test]
async fn wrong_secrets_unknown_clients_and_wider_scopes_are_refused() {
    let p = pipeline().await;
    let wrong = p.post("grant_type=client_credentials&client_id=svc&client_secret=nope", T0).await;
    assert_eq!(wrong.result.unwrap_err().code, ErrorCode::InvalidClient);
    let unknown = p.post("grant_type=client_credentials&client_id=ghost&client_secret=nope", T0).await;
    assert_eq!(unknown.result.unwrap_err().code, ErrorCode::InvalidClient);
    let wider = p.client_credentials("&scope=admin", T0).await;
    assert_eq!(wider.result.unwrap_err().code, ErrorCode::InvalidScope);
    let elsewhere = p.client_credentials("&resource=https%3A%2F%2Fevil.example", T0).await;
    assert_eq!(elsewhere.result.unwrap_err().code, ErrorCode::InvalidTarget);
}

#[tokio::test]
async fn a_refresh_family_rotates_ends_on_time_and_detects_reuse() {
    let p = pipeline().await;
    // A family as the password grant would start it, an hour long (refresh_token_ttl).
    let record = RefreshTokenRecord {
        hash: portero_core::secret::sha256_b64(b"rt-1"),
        family_id: "f1".into(),
        client_id: "svc".into(),
        subject: "u1".into(),
        user_id: Some("u1".into()),
        tenants: vec!["t1".into()],
        scopes: vec!["read".into(), "write".into()],
        audiences: vec!["https://api.example".into()],
        auth_time: T0,
        created_at: T0,
        expires_at: T0 + 3_600,
        used_at: None,
        revoked_at: None,
        jkt: None,
    };
    p.ctx.store.insert_refresh_token(&record).await.unwrap();
    let rotated = p.refresh("rt-1", T0 + 60).await.result.expect("rotates");
    assert_eq!(rotated.scope.as_deref(), Some("read write"));
    let next = rotated.refresh_token.expect("a new refresh token");
    let expired = p.refresh(&next, T0 + 3_600).await;
    assert_eq!(expired.result.unwrap_err().code, ErrorCode::InvalidGrant, "the family ends an hour after the login");
    let reused = p.refresh("rt-1", T0 + 61).await;
    assert_eq!(reused.result.unwrap_err().code, ErrorCode::InvalidGrant);
    let family = p.ctx.store.find_refresh_token(&portero_core::secret::sha256_b64(next.as_bytes())).await.unwrap();
    assert!(family.unwrap().revoked_at.is_some(), "reuse revoked the family");
}
