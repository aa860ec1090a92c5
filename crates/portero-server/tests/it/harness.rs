//! A server per test, with the four seed providers' clients and users provisioned.

use portero_core::store::prelude::*;
use std::time::Duration;

use base64::Engine;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation, decode, decode_header};
use portero_core::dialect::ApiVersionRule;
use portero_core::grant::GrantType;
use portero_core::keys::{Alg, MasterKey};
use portero_core::params::FieldLimits;
use portero_core::secret::{hash_generated_secret, hash_password};
use portero_core::store::{Client, RefreshPolicy, Tenant, User};
use portero_core::throttle::ThrottleRules;
use portero_core::token_endpoint::Policy;
use portero_server::{AppState, ServerConfig, TokenPath};
use portero_store::Database;
use serde_json::Value;

pub const TENANT_ID: &str = "0f8fad5b-d9cb-469f-a165-70867728950e";
pub const OTHER_TENANT_ID: &str = "7c9e6679-7425-40de-944b-e07fc1f90ae7";
pub const API_VERSION: &str = "1618440906";

pub const NETPAY_CLIENT: &str = "trusted-app";
pub const NETPAY_SECRET: &str = "NetPay s3cret:+%";
pub const NETPAY_USER: &str = "merchant01";
pub const NETPAY_PASSWORD: &str = "pass1234";

pub const PAYME_CLIENT: &str = "yhaPE3jtHXHMKUZBBFr9QS1x1FaXxr";
pub const PAYME_SECRET: &str = "uTCetT3d4T-1NgXyTO66C0850xLJ5c7CwoyXm23NALxZ-MbwQxkqs1Q9ThwWfE";
pub const PAYME_AUDIENCE: &str = "https://api.dev.alignet.io";
pub const PAYME_USER: &str = "commerce@email.com";
pub const PAYME_PASSWORD: &str = "123456";

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdef";
pub const METRICS_TOKEN: &str = "test-metrics-token-0123456789abcdef";
pub const ZERTIBAN_CLIENT: &str = "zertiban-merchant";
pub const NEQUI_CLIENT: &str = "5k657h190bpoqj17pfuestkqkq";

pub struct Server {
    pub base: String,
    pub db: Database,
    pub http: reqwest::Client,
    /// Generated secrets of the Zertiban and Nequi clients.
    pub zertiban_secret: String,
    pub nequi_secret: String,
    _dir: tempfile::TempDir,
    /// The admin URL and name of this server's own PostgreSQL database, if it runs on one.
    postgres: Option<(String, String)>,
    _gate: Argon2Gate,
}

/// The argon2 workers and their queue are one per process, shared by every server of this test
/// binary, so a test that fills the queue on purpose would turn other tests' checks into 503s.
/// Every server holds a share of this gate while it lives; [`Server::start_alone`] waits until
/// no other server runs and keeps new ones waiting until it is dropped. (Shares never wait for a
/// server that is only waiting to be alone, so a test holding two servers cannot deadlock.)
struct Argon2Gate {
    alone: bool,
}

static GATE: std::sync::Mutex<GateState> = std::sync::Mutex::new(GateState { servers: 0, alone: false });

struct GateState {
    servers: usize,
    alone: bool,
}

impl Argon2Gate {
    async fn enter(alone: bool) -> Self {
        loop {
            {
                let mut state = GATE.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                if !state.alone && (!alone || state.servers == 0) {
                    if alone {
                        state.alone = true;
                    } else {
                        state.servers += 1;
                    }
                    return Self { alone };
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Argon2Gate {
    fn drop(&mut self) {
        let mut state = GATE.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if self.alone {
            state.alone = false;
        } else {
            state.servers -= 1;
        }
    }
}

pub fn base_client(id: &str, secret_hash: String, grants: &[GrantType]) -> Client {
    Client {
        id: id.into(),
        secret_hash,
        grants: grants.to_vec(),
        scopes: vec![],
        audiences: vec![],
        tenants: vec![TENANT_ID.into()],
        token_ttl: None,
        refresh_policy: RefreshPolicy::Always,
        ignore_unknown_scopes: false,
        locale: None,
        created_at: 0,
        refresh_retry_window: None,
        auth_method: None,
        disabled_at: None,
        jwks: None,
        jwks_uri: None,
        require_dpop: false,
        tls_subject_dn: None,
        tls_bound_tokens: false,
        last_seen_at: None,
        previous_secret: None,
    }
}

fn words(text: &str) -> Vec<String> {
    text.split(' ').map(str::to_owned).collect()
}

/// Failures from one address before it is blocked. The harness trusts `X-Forwarded-For` (as behind
/// a proxy), so a test picks the caller's address; requests without it count against no address.
pub const ADDRESS_THRESHOLD: i64 = 25;

/// Threshold 5 and blocks of 2-3 s (at least 1 s at one-second granularity), so a block and its
/// release can be shown without long sleeps. The shipped defaults are 10 failures and 30 s.
pub fn short_blocks() -> ThrottleRules {
    ThrottleRules {
        threshold: 5,
        base_block: 2,
        max_block: 3,
        address_threshold: ADDRESS_THRESHOLD,
        ..ThrottleRules::default()
    }
}

/// The harness's header and body read timeout.
pub const READ_TIMEOUT: Duration = Duration::from_secs(2);

impl Server {
    pub async fn start() -> Self {
        Self::start_with(Alg::Rs256).await
    }

    pub async fn start_with(alg: Alg) -> Self {
        Self::start_sqlite(alg, short_blocks()).await
    }

    pub async fn start_sqlite(alg: Alg, throttle: ThrottleRules) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("portero.db").display());
        Self::start_on(alg, &url, dir, throttle).await
    }

    /// As [`Server::start`], once no other server of this binary runs, and keeping others from
    /// starting while it lives: for a test that fills the process's argon2 queue on purpose.
    pub async fn start_alone() -> Self {
        let gate = Argon2Gate::enter(true).await;
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("portero.db").display());
        Self::build(Alg::Rs256, &url, dir, short_blocks(), |_| {}, gate).await
    }

    /// A server on a fresh PostgreSQL database, when `PORTERO_TEST_POSTGRES_URL` is set (says
    /// SKIPPED otherwise). The database is dropped by [`Server::finish`].
    pub async fn start_postgres(test: &str, throttle: ThrottleRules) -> Option<Self> {
        Self::start_postgres_configured(test, throttle, |_| {}).await
    }

    /// As [`Server::start_postgres`], with the configuration changed by `tweak`.
    pub async fn start_postgres_configured(
        test: &str,
        throttle: ThrottleRules,
        tweak: impl FnOnce(&mut ServerConfig),
    ) -> Option<Self> {
        let Ok(base) = std::env::var("PORTERO_TEST_POSTGRES_URL") else {
            use std::io::Write as _;
            let _ = writeln!(std::io::stderr(), "SKIPPED: {test} on PostgreSQL (set PORTERO_TEST_POSTGRES_URL)");
            return None;
        };
        let name = format!(
            "portero_it_{}",
            portero_core::secret::random_token(9).to_ascii_lowercase().replace(['-', '_'], "x")
        );
        // A plain connection: the base database is never migrated, so branches with newer
        // migrations cannot leave it ahead of main.
        let admin = sqlx::PgPool::connect(&base).await.expect("PORTERO_TEST_POSTGRES_URL is a PostgreSQL URL");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&admin).await.unwrap();
        admin.close().await;
        let (prefix, _) = base.rsplit_once('/').expect("PORTERO_TEST_POSTGRES_URL names a database");
        let url = format!("{prefix}/{name}");
        let mut server = Self::start_on_with(Alg::Rs256, &url, tempfile::tempdir().unwrap(), throttle, tweak).await;
        server.postgres = Some((base, name));
        Some(server)
    }

    /// Drops the PostgreSQL database of [`Server::start_postgres`] (SQLite's goes with its folder).
    pub async fn finish(self) {
        self.db.close().await;
        if let Some((base, name)) = &self.postgres {
            let admin = sqlx::PgPool::connect(base).await.unwrap();
            let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
            sqlx::query(sqlx::AssertSqlSafe(drop)).execute(&admin).await.unwrap();
            admin.close().await;
        }
    }

    /// A server on SQLite whose configuration `tweak` changes (e.g. upstreams).
    pub async fn start_configured(tweak: impl FnOnce(&mut ServerConfig)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("portero.db").display());
        Self::start_on_with(Alg::Rs256, &url, dir, short_blocks(), tweak).await
    }

    async fn start_on(alg: Alg, url: &str, dir: tempfile::TempDir, throttle: ThrottleRules) -> Self {
        Self::start_on_with(alg, url, dir, throttle, |_| {}).await
    }

    async fn start_on_with(
        alg: Alg,
        url: &str,
        dir: tempfile::TempDir,
        throttle: ThrottleRules,
        tweak: impl FnOnce(&mut ServerConfig),
    ) -> Self {
        let gate = Argon2Gate::enter(false).await;
        Self::build(alg, url, dir, throttle, tweak, gate).await
    }

    async fn build(
        alg: Alg,
        url: &str,
        dir: tempfile::TempDir,
        throttle: ThrottleRules,
        tweak: impl FnOnce(&mut ServerConfig),
        gate: Argon2Gate,
    ) -> Self {
        let db = Database::connect(url).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let policy = Policy {
            issuer: base.clone(),
            access_token_ttl: 3600,
            refresh_token_ttl: 30 * 86_400,
            refresh_retry_window: 0,
            api_version: Some(ApiVersionRule::parse(&format!("ALG-API-VERSION={API_VERSION}")).unwrap()),
            default_locale: "es_PE".into(),
            dpop_nonce: false,
        };
        // A short read timeout so the slowloris test need not wait the default 10 s.
        let mut config = ServerConfig {
            admin_token: Some(ADMIN_TOKEN.into()),
            throttle,
            read_timeout: READ_TIMEOUT,
            client_address_header: Some("X-Forwarded-For".into()),
            metrics_on_main: true,
            metrics_token: Some(METRICS_TOKEN.into()),
            ..ServerConfig::default()
        };
        let mut netpay = FieldLimits::default();
        netpay.per_field.extend([("grant_type".into(), 15), ("username".into(), 20), ("password".into(), 20)]);
        config.token_paths.retain(|p| p.path != "/oauth-service/oauth/token");
        config.token_paths.push(TokenPath { path: "/oauth-service/oauth/token".into(), limits: netpay });
        config.token_paths.push(TokenPath { path: "/custom/token".into(), limits: FieldLimits::default() });
        tweak(&mut config);
        let state = AppState::build(db.clone(), MasterKey::generate(), policy, config, alg, now()).await.unwrap();
        let (zertiban_secret, nequi_secret) = provision(&db).await;
        tokio::spawn(async move {
            portero_server::run(listener, None, state, Duration::from_secs(1), std::future::pending()).await.unwrap();
        });
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
        Self { base, db, http, zertiban_secret, nequi_secret, _dir: dir, postgres: None, _gate: gate }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Verifies a token with jsonwebtoken against the served JWKS, as a resource server would.
    pub async fn verify(&self, token: &str, audience: &str) -> Value {
        let jwks: JwkSet =
            self.http.get(self.url("/.well-known/jwks.json")).send().await.unwrap().json().await.unwrap();
        let header = decode_header(token).unwrap();
        assert_eq!(header.typ.as_deref(), Some("at+jwt"), "RFC 9068 §2.1 typ");
        let kid = header.kid.expect("tokens carry a kid");
        let jwk = jwks.find(&kid).expect("the kid is published in the JWKS");
        let mut validation = Validation::new(header.alg);
        validation.set_audience(&[audience]);
        validation.set_issuer(&[&self.base]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub", "jti"]);
        decode::<Value>(token, &DecodingKey::from_jwk(jwk).unwrap(), &validation).unwrap().claims
    }

    pub async fn post_form(
        &self,
        path: &str,
        basic: Option<(&str, &str)>,
        body: &str,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let mut request = self
            .http
            .post(self.url(path))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body.to_owned());
        if let Some((id, secret)) = basic {
            request = request.header("Authorization", basic_header(id, secret));
        }
        send(request).await
    }

    pub async fn post_json(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        body: &Value,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let mut request = self.http.post(self.url(path)).json(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        send(request).await
    }
}

pub async fn send(request: reqwest::RequestBuilder) -> (u16, reqwest::header::HeaderMap, Value) {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"));
    (status, headers, body)
}

/// RFC 6749 §2.3.1 Basic: form-encode both parts, then base64.
pub fn basic_header(id: &str, secret: &str) -> String {
    let encode = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => (b as char).to_string(),
                b' ' => "+".into(),
                other => format!("%{other:02X}"),
            })
            .collect::<String>()
    };
    let raw = format!("{}:{}", encode(id), encode(secret));
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(raw))
}

pub fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// The four seed providers' setups; returns the generated Zertiban and Nequi secrets.
async fn provision(db: &Database) -> (String, String) {
    for (id, name) in [(TENANT_ID, "acme"), (OTHER_TENANT_ID, "other")] {
        db.create_tenant(&Tenant { id: id.into(), name: name.into(), created_at: 0 }).await.unwrap();
    }
    let user = |tenant: &str, username: &str, password: &str| User {
        id: uuid_like(username, tenant),
        tenant_id: tenant.into(),
        username: username.into(),
        password_hash: hash_password(password),
        disabled_at: None,
        last_seen_at: None,
        created_at: 0,
    };
    db.create_user(&user(TENANT_ID, NETPAY_USER, NETPAY_PASSWORD)).await.unwrap();
    db.create_user(&user(TENANT_ID, PAYME_USER, PAYME_PASSWORD)).await.unwrap();
    db.create_user(&user(OTHER_TENANT_ID, "outsider", "outsider-pass")).await.unwrap();

    let mut netpay =
        base_client(NETPAY_CLIENT, hash_password(NETPAY_SECRET), &[GrantType::Password, GrantType::RefreshToken]);
    netpay.scopes = words("sale reprint cancel");
    db.create_client(&netpay).await.unwrap();

    let mut payme =
        base_client(PAYME_CLIENT, hash_password(PAYME_SECRET), &[GrantType::Password, GrantType::RefreshToken]);
    payme.scopes = words("create:token post:charges delete:charges offline_access");
    payme.audiences = vec![PAYME_AUDIENCE.into(), "https://api.alignet.io".into()];
    payme.token_ttl = Some(86_400);
    payme.refresh_policy = RefreshPolicy::OfflineAccess;
    payme.locale = Some("es_PE".into());
    db.create_client(&payme).await.unwrap();

    let zertiban_secret = portero_core::secret::generate_client_secret();
    let mut zertiban =
        base_client(ZERTIBAN_CLIENT, hash_generated_secret(&zertiban_secret), &[GrantType::ClientCredentials]);
    zertiban.token_ttl = Some(300);
    zertiban.scopes = words("payments");
    zertiban.ignore_unknown_scopes = true;
    db.create_client(&zertiban).await.unwrap();

    let nequi_secret = portero_core::secret::generate_client_secret();
    let mut nequi = base_client(NEQUI_CLIENT, hash_generated_secret(&nequi_secret), &[GrantType::ClientCredentials]);
    nequi.scopes = words("other/other");
    db.create_client(&nequi).await.unwrap();
    (zertiban_secret, nequi_secret)
}

fn uuid_like(a: &str, b: &str) -> String {
    format!("user-{}-{}", a.replace('@', "-"), &b[..8])
}
