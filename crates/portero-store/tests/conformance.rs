//! One storage suite, run against the in-memory store and SQLite always and against PostgreSQL
//! when `PORTERO_TEST_POSTGRES_URL` is set (each run in a fresh database, dropped afterwards).

use std::sync::Arc;

use portero_core::grant::GrantType;
use portero_core::store::AuditStore;
use portero_core::store::{
    AttemptRules, Client, PreviousSecret, RefreshPolicy, RefreshTokenRecord, Reservation, Rotation, Store, StoreError,
    StoredKey, Tenant, TokenOwner, User,
};
use portero_store::Database;

/// A database for one test, removed when dropped.
struct TestDb {
    db: Database,
    _dir: Option<tempfile::TempDir>,
    pg_admin: Option<(String, String)>,
}

impl TestDb {
    async fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("portero.db").display());
        Self { db: Database::connect(&url).await.unwrap(), _dir: Some(dir), pg_admin: None }
    }

    async fn postgres() -> Option<Self> {
        let Ok(base) = std::env::var("PORTERO_TEST_POSTGRES_URL") else {
            // Written to stderr directly: the test harness captures eprintln!, and a skip must be seen.
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: PostgreSQL conformance (set PORTERO_TEST_POSTGRES_URL to run it)"
            );
            return None;
        };
        let name = format!(
            "portero_test_{}",
            portero_core::secret::random_token(9).to_ascii_lowercase().replace(['-', '_'], "x")
        );
        // A plain connection: the base database is never migrated, so branches with newer
        // migrations cannot leave it ahead of main.
        let admin = sqlx::PgPool::connect(&base).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&admin).await.unwrap();
        admin.close().await;
        let url = match base.rsplit_once('/') {
            Some((prefix, _)) => format!("{prefix}/{name}"),
            None => panic!("PORTERO_TEST_POSTGRES_URL must name a database"),
        };
        Some(Self { db: Database::connect(&url).await.unwrap(), _dir: None, pg_admin: Some((base, name)) })
    }

    async fn cleanup(self) {
        self.db.close().await;
        if let Some((base, name)) = self.pg_admin {
            let admin = sqlx::PgPool::connect(&base).await.unwrap();
            let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
            sqlx::query(sqlx::AssertSqlSafe(drop)).execute(&admin).await.unwrap();
            admin.close().await;
        }
    }
}

/// Declares a test that runs `$body` against every store: memory, SQLite, PostgreSQL.
macro_rules! conformance {
    ($name:ident, $body:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn memory() {
                super::$body(&portero_core::store::memory::MemoryStore::default()).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                let t = super::TestDb::sqlite().await;
                super::$body(&t.db).await;
                t.cleanup().await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                if let Some(t) = super::TestDb::postgres().await {
                    super::$body(&t.db).await;
                    t.cleanup().await;
                }
            }
        }
    };
}

fn client(id: &str, tenants: Vec<String>) -> Client {
    Client {
        id: id.into(),
        secret_hash: "$s256$x$y".into(),
        grants: vec![GrantType::Password, GrantType::RefreshToken],
        scopes: vec!["post:charges".into(), "offline_access".into()],
        audiences: vec!["https://api.dev.alignet.io".into()],
        tenants,
        token_ttl: Some(86_400),
        refresh_policy: RefreshPolicy::OfflineAccess,
        ignore_unknown_scopes: true,
        locale: Some("es_PE".into()),
        created_at: 1,
        refresh_retry_window: Some(30),
        auth_method: Some(portero_core::client_auth::AuthMethod::ClientSecretPost),
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

fn refresh(hash: &str, family: &str) -> RefreshTokenRecord {
    RefreshTokenRecord {
        hash: hash.into(),
        family_id: family.into(),
        client_id: "payme".into(),
        subject: "user-1".into(),
        user_id: Some("user-1".into()),
        tenants: vec!["t1".into()],
        scopes: vec!["post:charges".into(), "offline_access".into()],
        audiences: vec!["https://api.dev.alignet.io".into()],
        auth_time: 10,
        created_at: 10,
        expires_at: 1_000,
        used_at: None,
        revoked_at: None,
        jkt: None,
    }
}

/// A token rotated from another at `at`.
fn child(hash: &str, family: &str, at: i64) -> RefreshTokenRecord {
    RefreshTokenRecord { created_at: at, ..refresh(hash, family) }
}

async fn tenants_round_trip<S: Store + Clone>(db: &S) {
    let tenant = Tenant { id: "0b6f0c1e-0000-4000-8000-000000000001".into(), name: "acme".into(), created_at: 5 };
    db.create_tenant(&tenant).await.unwrap();
    assert_eq!(db.find_tenant("acme").await.unwrap(), Some(tenant.clone()));
    assert_eq!(db.find_tenant(&tenant.id).await.unwrap(), Some(tenant.clone()));
    assert_eq!(db.find_tenant("nope").await.unwrap(), None);
    assert!(matches!(db.create_tenant(&tenant).await, Err(StoreError::Conflict(_))));
    assert_eq!(db.list_tenants().await.unwrap(), vec![tenant]);
}
conformance!(tenants, tenants_round_trip);

async fn clients_round_trip<S: Store + Clone>(db: &S) {
    let c = client("payme", vec!["t1".into(), "t2".into()]);
    db.create_client(&c).await.unwrap();
    assert_eq!(db.find_client("payme").await.unwrap(), Some(c.clone()));
    assert_eq!(db.find_client("PAYME").await.unwrap(), None);
    assert!(matches!(db.create_client(&c).await, Err(StoreError::Conflict(_))));
    let mut plain = client("zertiban", vec![]);
    plain.token_ttl = None;
    plain.locale = None;
    plain.audiences = vec![];
    db.create_client(&plain).await.unwrap();
    assert_eq!(db.list_clients().await.unwrap(), vec![c, plain]);
}
conformance!(clients, clients_round_trip);

/// Paging through the client table: every client once, in id order, whatever the page size.
async fn clients_are_read_page_by_page<S: Store + Clone>(db: &S) {
    let ids: Vec<String> = (0..25).map(|i| format!("page-{i:02}")).collect();
    for id in ids.iter().rev() {
        db.create_client(&client(id, vec![])).await.unwrap();
    }
    let mut seen = Vec::new();
    let mut after = String::new();
    loop {
        let page = db.clients_after(&after, 10).await.unwrap();
        assert!(page.len() <= 10);
        let Some(last) = page.last() else { break };
        after = last.id.clone();
        seen.extend(page.into_iter().map(|c| c.id));
    }
    assert_eq!(seen, ids);
    assert_eq!(db.clients_after("page-24", 10).await.unwrap(), vec![]);
    assert_eq!(db.clients_after("", 0).await.unwrap(), vec![]);
}
conformance!(clients_paged, clients_are_read_page_by_page);

/// A private_key_jwt client's JWK Set survives the round trip and an update.
async fn client_keys_round_trip<S: Store + Clone>(db: &S) {
    let mut c = client("keyed", vec![]);
    c.auth_method = Some(portero_core::client_auth::AuthMethod::PrivateKeyJwt);
    c.jwks = Some(r#"{"keys":[]}"#.into());
    db.create_client(&c).await.unwrap();
    assert_eq!(db.find_client("keyed").await.unwrap(), Some(c.clone()));
    c.jwks = Some(r#"{"keys":[{"kid":"a"}]}"#.into());
    db.update_client(&c).await.unwrap();
    assert_eq!(db.find_client("keyed").await.unwrap(), Some(c));
}
conformance!(client_keys, client_keys_round_trip);

/// DPoP: a client's `require_dpop` and a refresh family's key survive storing, updating and
/// (for the key) rotation.
async fn dpop_bindings_round_trip<S: Store + Clone>(db: &S) {
    let mut c = client("bound", vec![]);
    c.require_dpop = true;
    db.create_client(&c).await.unwrap();
    assert_eq!(db.find_client("bound").await.unwrap(), Some(c.clone()));
    c.require_dpop = false;
    db.update_client(&c).await.unwrap();
    assert!(!db.find_client("bound").await.unwrap().unwrap().require_dpop);
    let bound = RefreshTokenRecord { jkt: Some("thumb-1".into()), ..refresh("d1", "fd") };
    db.insert_refresh_token(&bound).await.unwrap();
    assert_eq!(db.find_refresh_token("d1").await.unwrap(), Some(bound));
    let next = RefreshTokenRecord { jkt: Some("thumb-1".into()), ..child("d2", "fd", 20) };
    assert_eq!(db.rotate_refresh_token("d1", &next).await.unwrap(), Rotation::Rotated);
    assert_eq!(db.find_refresh_token("d2").await.unwrap().unwrap().jkt.as_deref(), Some("thumb-1"));
}
conformance!(dpop_bindings, dpop_bindings_round_trip);

/// mTLS (RFC 8705): a client's subject DN and certificate binding survive storing and updating.
async fn mtls_settings_round_trip<S: Store + Clone>(db: &S) {
    let mut c = client("cert-client", vec![]);
    c.auth_method = Some(portero_core::client_auth::AuthMethod::TlsClientAuth);
    c.tls_subject_dn = Some("CN=merchant-1,O=Acme\\, Inc.".into());
    c.tls_bound_tokens = true;
    db.create_client(&c).await.unwrap();
    assert_eq!(db.find_client("cert-client").await.unwrap(), Some(c.clone()));
    c.auth_method = Some(portero_core::client_auth::AuthMethod::SelfSignedTlsClientAuth);
    c.tls_subject_dn = None;
    c.jwks = Some(r#"{"keys":[{"kid":"a"}]}"#.into());
    c.tls_bound_tokens = false;
    db.update_client(&c).await.unwrap();
    assert_eq!(db.find_client("cert-client").await.unwrap(), Some(c.clone()));
    assert!(db.list_clients().await.unwrap().contains(&c));
}
conformance!(mtls_settings, mtls_settings_round_trip);

/// A jti is accepted once, by exactly one of concurrent callers, until it is purged after its
/// expiry.
async fn jtis_are_remembered_once<S: Store + Clone>(db: &S) {
    assert!(db.remember_jti("app:one", 1_000).await.unwrap());
    assert!(!db.remember_jti("app:one", 1_000).await.unwrap());
    assert!(db.remember_jti("other:one", 1_000).await.unwrap(), "keyed per client");
    let db = Arc::new(db.clone());
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let db = db.clone();
            tokio::spawn(async move { db.remember_jti("app:race", 1_000).await })
        })
        .collect();
    let mut first = 0;
    for task in tasks {
        first += usize::from(task.await.unwrap().unwrap());
    }
    assert_eq!(first, 1);
    db.purge_expired(1_000).await.unwrap();
    assert!(!db.remember_jti("app:one", 1_000).await.unwrap(), "kept until its expiry");
    db.purge_expired(1_001).await.unwrap();
    assert!(db.remember_jti("app:one", 2_000).await.unwrap(), "purged after it");
}
conformance!(seen_jtis, jtis_are_remembered_once);

async fn users_by_tenant<S: Store + Clone>(db: &S) {
    for (id, name) in [("t1", "one"), ("t2", "two")] {
        db.create_tenant(&Tenant { id: id.into(), name: name.into(), created_at: 0 }).await.unwrap();
    }
    let user = |id: &str, tenant: &str| User {
        id: id.into(),
        tenant_id: tenant.into(),
        username: "commerce@email.com".into(),
        password_hash: "$argon2id$x".into(),
        disabled_at: None,
        last_seen_at: None,
        created_at: 0,
    };
    db.create_user(&user("u1", "t1")).await.unwrap();
    db.create_user(&user("u2", "t2")).await.unwrap();
    assert!(matches!(db.create_user(&user("u3", "t1")).await, Err(StoreError::Conflict(_))));
    assert!(db.create_user(&user("u4", "missing-tenant")).await.is_err());
    let found = db.find_users("commerce@email.com", &["t2".into()]).await.unwrap();
    assert_eq!(found, vec![user("u2", "t2")]);
    assert!(db.find_users("commerce@email.com", &[]).await.unwrap().is_empty());
    assert!(db.find_users("other", &["t1".into()]).await.unwrap().is_empty());
}
conformance!(users, users_by_tenant);

/// Update, disable, delete: what the lifecycle commands rest on.
async fn lifecycle_of_clients_users_and_tenants<S: Store + Clone>(db: &S) {
    db.create_tenant(&Tenant { id: "t1".into(), name: "one".into(), created_at: 0 }).await.unwrap();
    db.create_tenant(&Tenant { id: "t2".into(), name: "two".into(), created_at: 0 }).await.unwrap();
    let original = client("payme", vec!["t1".into()]);
    db.create_client(&original).await.unwrap();
    let mut changed = original.clone();
    changed.scopes = vec!["sale".into()];
    changed.token_ttl = None;
    changed.disabled_at = Some(50);
    changed.secret_hash = "$s256$ignored$ignored".into();
    db.update_client(&changed).await.unwrap();
    let stored = db.find_client("payme").await.unwrap().unwrap();
    assert_eq!(stored, Client { secret_hash: original.secret_hash.clone(), ..changed.clone() }, "the secret stays");
    assert!(matches!(db.update_client(&client("ghost", vec![])).await, Err(StoreError::NotFound(_))));
    db.delete_client("payme").await.unwrap();
    assert_eq!(db.find_client("payme").await.unwrap(), None);
    assert!(matches!(db.delete_client("payme").await, Err(StoreError::NotFound(_))));

    let user = |id: &str, name: &str| User {
        id: id.into(),
        tenant_id: "t1".into(),
        username: name.into(),
        password_hash: "$argon2id$old".into(),
        disabled_at: None,
        last_seen_at: None,
        created_at: 0,
    };
    db.create_user(&user("u2", "zoe")).await.unwrap();
    db.create_user(&user("u1", "ana")).await.unwrap();
    assert_eq!(db.list_users("t1").await.unwrap(), vec![user("u1", "ana"), user("u2", "zoe")]);
    assert!(db.list_users("t2").await.unwrap().is_empty());
    let renewed = User { password_hash: "$argon2id$new".into(), disabled_at: Some(70), ..user("u1", "ana") };
    db.update_user(&renewed).await.unwrap();
    assert_eq!(db.find_user("u1").await.unwrap(), Some(renewed));
    db.delete_user("u2").await.unwrap();
    assert_eq!(db.find_user("u2").await.unwrap(), None);
    assert!(matches!(db.delete_user("u2").await, Err(StoreError::NotFound(_))));

    db.delete_tenant("t2").await.unwrap();
    assert_eq!(db.find_tenant("two").await.unwrap(), None);
    assert!(matches!(db.delete_tenant("t2").await, Err(StoreError::NotFound(_))));
}
conformance!(lifecycle, lifecycle_of_clients_users_and_tenants);

/// Ending every token of a client or user: refresh tokens revoked, access-token cutoffs kept.
async fn tokens_of_an_owner_end_together<S: Store + Clone>(db: &S) {
    db.insert_refresh_token(&refresh("a", "f1")).await.unwrap();
    db.insert_refresh_token(&RefreshTokenRecord { user_id: Some("user-2".into()), ..refresh("b", "f2") })
        .await
        .unwrap();
    db.insert_refresh_token(&RefreshTokenRecord { client_id: "other".into(), user_id: None, ..refresh("c", "f3") })
        .await
        .unwrap();
    assert_eq!(db.revoke_refresh_tokens_of(TokenOwner::User("user-1"), 40).await.unwrap(), 1);
    assert_eq!(db.revoke_refresh_tokens_of(TokenOwner::Client("payme"), 41).await.unwrap(), 1, "a was revoked already");
    assert_eq!(db.find_refresh_token("b").await.unwrap().unwrap().revoked_at, Some(41));
    assert_eq!(db.find_refresh_token("c").await.unwrap().unwrap().revoked_at, None);

    assert_eq!(db.revoked_before("payme", Some("user-1")).await.unwrap(), None);
    db.revoke_issued_before(TokenOwner::Client("payme"), 100).await.unwrap();
    db.revoke_issued_before(TokenOwner::Client("payme"), 90).await.unwrap();
    db.revoke_issued_before(TokenOwner::User("user-1"), 120).await.unwrap();
    assert_eq!(db.revoked_before("payme", None).await.unwrap(), Some(100), "a later cutoff is never moved back");
    assert_eq!(db.revoked_before("payme", Some("user-1")).await.unwrap(), Some(120));
    assert_eq!(db.revoked_before("other", Some("user-1")).await.unwrap(), Some(120));
    assert_eq!(db.revoked_before("other", Some("user-9")).await.unwrap(), None);
}
conformance!(owner_revocation, tokens_of_an_owner_end_together);

async fn refresh_rotation_once<S: Store + Clone>(db: &S) {
    db.insert_refresh_token(&refresh("h1", "f1")).await.unwrap();
    assert_eq!(db.find_refresh_token("h1").await.unwrap(), Some(refresh("h1", "f1")));
    assert_eq!(db.rotate_refresh_token("h1", &child("h2", "f1", 20)).await.unwrap(), Rotation::Rotated);
    assert_eq!(db.rotate_refresh_token("h1", &child("h3", "f1", 21)).await.unwrap(), Rotation::AlreadyUsed);
    assert_eq!(db.find_refresh_token("h1").await.unwrap().unwrap().used_at, Some(20));
    assert!(db.find_refresh_token("h3").await.unwrap().is_none(), "a lost rotation writes nothing");
    assert_eq!(db.revoke_refresh_family("f1", 30).await.unwrap(), 2);
    assert_eq!(db.revoke_refresh_family("f1", 31).await.unwrap(), 0);
    assert_eq!(db.find_refresh_token("h2").await.unwrap().unwrap().revoked_at, Some(30));
    assert_eq!(db.rotate_refresh_token("h2", &child("h4", "f1", 40)).await.unwrap(), Rotation::AlreadyUsed);
}
conformance!(refresh_rotation, refresh_rotation_once);

async fn concurrent_rotation_has_one_winner<S: Store + Clone>(db: &S) {
    db.insert_refresh_token(&refresh("race", "f2")).await.unwrap();
    let db = Arc::new(db.clone());
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let db = db.clone();
            tokio::spawn(async move { db.rotate_refresh_token("race", &child(&format!("new{i}"), "f2", 50)).await })
        })
        .collect();
    let mut rotated = 0;
    for task in tasks {
        if task.await.unwrap().unwrap() == Rotation::Rotated {
            rotated += 1;
        }
    }
    assert_eq!(rotated, 1);
}
conformance!(refresh_race, concurrent_rotation_has_one_winner);

async fn keys_round_trip<S: Store + Clone>(db: &S) {
    let key = |kid: &str, at: i64| StoredKey {
        kid: kid.into(),
        alg: "RS256".into(),
        sealed_private_key: "sealed".into(),
        created_at: at,
        activate_at: at,
        retired_at: None,
    };
    db.insert_key(&key("b", 2)).await.unwrap();
    db.insert_key(&key("a", 1)).await.unwrap();
    assert_eq!(db.list_keys().await.unwrap(), vec![key("a", 1), key("b", 2)]);
}
conformance!(keys, keys_round_trip);

async fn secret_rotation_keeps_the_previous_hash<S: Store + Clone>(db: &S) {
    db.create_client(&client("payme", vec![])).await.unwrap();
    db.rotate_client_secret("payme", "$s256$new$hash", Some(500)).await.unwrap();
    let rotated = db.find_client("payme").await.unwrap().unwrap();
    assert_eq!(rotated.secret_hash, "$s256$new$hash");
    assert_eq!(rotated.previous_secret, Some(PreviousSecret { hash: "$s256$x$y".into(), expires_at: 500 }));
    db.rotate_client_secret("payme", "$s256$newer$hash", None).await.unwrap();
    assert_eq!(db.find_client("payme").await.unwrap().unwrap().previous_secret, None);
    assert!(matches!(db.rotate_client_secret("nobody", "h", None).await, Err(StoreError::NotFound(_))));
    assert_eq!(db.max_client_token_ttl().await.unwrap(), Some(86_400));
}
conformance!(secret_rotation, secret_rotation_keeps_the_previous_hash);

async fn access_token_revocation_and_purge<S: Store + Clone>(db: &S) {
    assert!(!db.is_access_token_revoked("jti-1").await.unwrap());
    db.revoke_access_token("jti-1", "payme", 100, 10).await.unwrap();
    db.revoke_access_token("jti-1", "payme", 100, 11).await.unwrap();
    assert!(db.is_access_token_revoked("jti-1").await.unwrap());
    db.insert_refresh_token(&refresh("old", "f9")).await.unwrap();
    assert_eq!(db.purge_expired(99).await.unwrap(), 0);
    assert_eq!(db.purge_expired(2_000).await.unwrap(), 2, "the revocation and the expired refresh token");
    assert!(!db.is_access_token_revoked("jti-1").await.unwrap());
    assert!(db.find_refresh_token("old").await.unwrap().is_none());
}
conformance!(revocation, access_token_revocation_and_purge);

async fn keys_retire<S: Store + Clone>(db: &S) {
    let key = StoredKey {
        kid: "k".into(),
        alg: "ES256".into(),
        sealed_private_key: "sealed".into(),
        created_at: 1,
        activate_at: 1,
        retired_at: None,
    };
    db.insert_key(&key).await.unwrap();
    db.retire_key("k", 9).await.unwrap();
    db.retire_key("k", 10).await.unwrap();
    assert_eq!(db.list_keys().await.unwrap()[0].retired_at, Some(9));
}
conformance!(key_retirement, keys_retire);

const RULES: AttemptRules = AttemptRules { threshold: 3, window: 900, base_block: 30, max_block: 100 };

async fn failing_keys_are_those_with_recent_failures_or_a_block<S: Store + Clone>(db: &S) {
    assert!(db.failing_keys(0, 100, 10).await.unwrap().is_empty());
    for key in ["client:old", "client:a", "client:b", "client:blocked"] {
        let at = if key == "client:old" { 10 } else { 100 };
        assert!(matches!(db.reserve_attempt(key, at, &RULES).await.unwrap(), Reservation::Granted { .. }));
    }
    db.release_attempt("client:b", 100).await.unwrap(); // a success: no failure left
    for at in 101..104 {
        let _ = db.reserve_attempt("client:blocked", at, &RULES).await.unwrap();
    }
    let failing = db.failing_keys(50, 104, 10).await.unwrap();
    let keys: Vec<&str> = failing.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["client:a", "client:blocked"], "in key order; client:old's window is over, client:b released");
    assert_eq!(failing[1].1.blocked_until, 133);
    assert_eq!(db.failing_keys(50, 104, 1).await.unwrap().len(), 1, "at most limit");
    let later = db.failing_keys(1_000, 120, 10).await.unwrap();
    assert_eq!(later.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(), ["client:blocked"], "blocked past now");
}
conformance!(failing_keys, failing_keys_are_those_with_recent_failures_or_a_block);

async fn attempt_slots_run_out_block_double_and_come_back<S: Store + Clone>(db: &S) {
    let key = "user:c:u";
    assert_eq!(db.auth_failures(key).await.unwrap(), None);
    for at in 100..103 {
        assert_eq!(db.reserve_attempt(key, at, &RULES).await.unwrap(), Reservation::Granted { window_start: 100 });
    }
    // No slot left: refused, and a block of base_block starts.
    assert_eq!(db.reserve_attempt(key, 103, &RULES).await.unwrap(), Reservation::Blocked { until: 133 });
    assert_eq!(db.reserve_attempt(key, 120, &RULES).await.unwrap(), Reservation::Blocked { until: 133 });
    let record = db.auth_failures(key).await.unwrap().unwrap();
    assert_eq!((record.failures, record.window_start, record.blocked_until), (2, 100, 133));
    // After the block one more try; when it fails too, the next block is twice as long.
    assert_eq!(db.reserve_attempt(key, 133, &RULES).await.unwrap(), Reservation::Granted { window_start: 100 });
    assert_eq!(db.reserve_attempt(key, 134, &RULES).await.unwrap(), Reservation::Blocked { until: 194 });
    assert_eq!(db.reserve_attempt(key, 194, &RULES).await.unwrap(), Reservation::Granted { window_start: 100 });
    assert_eq!(
        db.reserve_attempt(key, 195, &RULES).await.unwrap(),
        Reservation::Blocked { until: 295 },
        "at most max_block"
    );
    // A released slot (a success) can be taken again.
    assert_eq!(db.reserve_attempt(key, 300, &RULES).await.unwrap(), Reservation::Granted { window_start: 100 });
    db.release_attempt(key, 100).await.unwrap();
    assert_eq!(db.reserve_attempt(key, 301, &RULES).await.unwrap(), Reservation::Granted { window_start: 100 });
    // A release for an older window changes nothing; the next window starts afresh.
    assert_eq!(db.reserve_attempt(key, 1_001, &RULES).await.unwrap(), Reservation::Granted { window_start: 1_001 });
    db.release_attempt(key, 100).await.unwrap();
    assert_eq!(db.auth_failures(key).await.unwrap().unwrap().failures, 1);
    // Keys are independent.
    assert_eq!(
        db.reserve_attempt("client:x", 1_001, &RULES).await.unwrap(),
        Reservation::Granted { window_start: 1_001 }
    );
    // A day after the window, with no block, the record is purged.
    db.purge_expired(1_001 + 86_401).await.unwrap();
    assert_eq!(db.auth_failures(key).await.unwrap(), None);
}
conformance!(attempt_slots, attempt_slots_run_out_block_double_and_come_back);

/// The throttle's bound rests on this: however many reservations race for one key, exactly
/// `threshold` are granted.
async fn concurrent_reservations_grant_exactly_the_threshold<S: Store + Clone>(db: &S) {
    let db = Arc::new(db.clone());
    let rules = AttemptRules { threshold: 10, ..RULES };
    let mut tasks = Vec::new();
    for _ in 0..300 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move { db.reserve_attempt("client:burst", 500, &rules).await.unwrap() }));
    }
    let mut granted = 0;
    for task in tasks {
        if let Reservation::Granted { .. } = task.await.unwrap() {
            granted += 1;
        }
    }
    assert_eq!(granted, 10);
    assert!(db.auth_failures("client:burst").await.unwrap().unwrap().blocked_until > 500);
}
conformance!(attempt_race, concurrent_reservations_grant_exactly_the_threshold);

async fn audit_events_write_in_batches_and_filter<S: Store + Clone>(db: &S) {
    use portero_core::audit::{AuditEvent, AuditQuery};
    let mut events = Vec::new();
    for i in 0..600 {
        let mut event = AuditEvent::new(1_000 + i, if i % 3 == 0 { "token_refused" } else { "token_issued" }, "issued");
        event.client_id = Some(if i % 2 == 0 { "even".into() } else { "odd".into() });
        event.source = Some("192.0.2.7".into());
        events.push(event);
    }
    // More rows than one statement's share of a batch, and a second batch after it.
    db.insert_audit_events(&events[..500]).await.unwrap();
    db.insert_audit_events(&events[500..]).await.unwrap();
    db.insert_audit_events(&[]).await.unwrap();

    let all = db.list_audit_events(&AuditQuery { limit: 1_000, ..AuditQuery::default() }).await.unwrap();
    assert_eq!(all.len(), 600);
    assert_eq!(all[0], events[599], "newest first, every field kept");
    let query = AuditQuery { since: Some(1_590), client_id: Some("even".into()), kind: None, limit: 100 };
    let recent_even = db.list_audit_events(&query).await.unwrap();
    assert_eq!(recent_even.iter().map(|e| e.at).collect::<Vec<_>>(), [1_598, 1_596, 1_594, 1_592, 1_590]);
    let refused = AuditQuery { kind: Some("token_refused".into()), limit: 3, ..AuditQuery::default() };
    assert_eq!(db.list_audit_events(&refused).await.unwrap().len(), 3);
    // Kept 90 days, then purged.
    db.purge_expired(1_000 + 90 * 86_400 + 100).await.unwrap();
    assert_eq!(db.list_audit_events(&AuditQuery { limit: 1_000, ..AuditQuery::default() }).await.unwrap().len(), 500);
}
conformance!(audit, audit_events_write_in_batches_and_filter);

/// Many parents redeemed at once, each three times: the rotations share commit groups, and still
/// exactly one redemption per parent wins, and every winner's child is stored.
async fn grouped_rotations_keep_one_winner_per_parent<S: Store + Clone>(db: &S) {
    for p in 0..60 {
        db.insert_refresh_token(&refresh(&format!("parent{p}"), &format!("fam{p}"))).await.unwrap();
    }
    let db = Arc::new(db.clone());
    let tasks: Vec<_> = (0..180)
        .map(|i| {
            let db = db.clone();
            let parent = format!("parent{}", i % 60);
            let family = format!("fam{}", i % 60);
            tokio::spawn(async move {
                let new = child(&format!("kid{i}"), &family, 60);
                (i % 60, format!("kid{i}"), db.rotate_refresh_token(&parent, &new).await.unwrap())
            })
        })
        .collect();
    let mut winners = [0; 60];
    for task in tasks {
        let (parent, kid, rotation) = task.await.unwrap();
        let stored = db.find_refresh_token(&kid).await.unwrap();
        if rotation == Rotation::Rotated {
            winners[parent] += 1;
            assert!(stored.is_some(), "the winner's child is stored");
        } else {
            assert!(stored.is_none(), "a losing redemption writes nothing");
        }
    }
    assert_eq!(winners, [1; 60]);
}
conformance!(grouped_rotations, grouped_rotations_keep_one_winner_per_parent);

/// Aggregated rows keep their `count` and whether the client id was proven; a full writer batch
/// (5,000 rows) is one statement on both backends, and a retried batch does not duplicate rows.
async fn aggregated_audit_rows_keep_count_and_authenticated<S: Store + Clone>(db: &S) {
    use portero_core::audit::{AuditEvent, AuditQuery, MAX_BATCH};
    let mut presented = AuditEvent::new(5_000, "token_refused", "invalid_client");
    presented.client_id = Some("victim".into());
    presented.authenticated = false;
    presented.count = 41_234;
    presented.source = Some("198.51.100.9".into());
    presented.detail = Some("wrong secret".into());
    let mut issued = AuditEvent::new(5_001, "token_issued", "issued");
    issued.client_id = Some("victim".into());
    issued.subject = Some("victim".into());
    db.insert_audit_events(&[presented.clone(), issued.clone()]).await.unwrap();
    // The same batch again (its first commit's answer was lost): no error, no second copy.
    db.insert_audit_events(&[presented.clone(), issued.clone()]).await.unwrap();

    let query = AuditQuery { client_id: Some("victim".into()), limit: 10, ..AuditQuery::default() };
    assert_eq!(db.list_audit_events(&query).await.unwrap(), [issued, presented.clone()]);
    let refused = AuditQuery { kind: Some("token_refused".into()), ..query };
    let rows = db.list_audit_events(&refused).await.unwrap();
    assert_eq!((rows.len(), rows[0].count, rows[0].authenticated), (1, 41_234, false));

    let batch: Vec<AuditEvent> = (0..MAX_BATCH as i64)
        .map(|i| {
            let mut event = AuditEvent::new(6_000 + i, "token_issued", "issued");
            event.client_id = Some(format!("c{}", i % 7));
            event
        })
        .collect();
    let started = std::time::Instant::now();
    db.insert_audit_events(&batch).await.unwrap();
    println!("{} audit rows in one statement: {:?}", batch.len(), started.elapsed());
    let all = db.list_audit_events(&AuditQuery { limit: 100_000, ..AuditQuery::default() }).await.unwrap();
    assert_eq!(all.len(), MAX_BATCH + 2);
    assert!(all.iter().filter(|e| e.kind == "token_issued").all(|e| e.count == 1 && e.authenticated));
}
conformance!(audit_counts, aggregated_audit_rows_keep_count_and_authenticated);

/// The audit writer keeps up: 50,000 kept events queued as fast as they come (the lane pushes
/// back while it is full) are all written, none dropped, and 50,000 refusals become a few counts.
async fn audit_writer_writes_every_kept_event<S: Store + Clone>(db: &S) {
    use portero_core::audit::{AuditEvent, AuditLog, AuditQuery};
    const EVENTS: i64 = 50_000;
    let log = AuditLog::start(db.clone());
    let started = std::time::Instant::now();
    for i in 0..EVENTS {
        let mut issued = AuditEvent::new(10_000 + i / 1_000, "token_issued", "issued");
        issued.client_id = Some(format!("c{}", i % 10));
        log.keep(issued).await;
        let mut refused = AuditEvent::new(10_000 + i / 1_000, "token_refused", "invalid_client");
        refused.client_id = Some(format!("c{}", i % 10));
        refused.authenticated = false;
        log.record(refused);
    }
    let queued = started.elapsed();
    log.flush_and_stop().await;
    let written = started.elapsed();
    println!("audit writer: {EVENTS} kept + {EVENTS} counted events queued in {queued:?}, all written in {written:?}");
    assert_eq!((log.dropped(), log.backlog()), (0, 0));
    let all = db.list_audit_events(&AuditQuery { limit: 100_000, ..AuditQuery::default() }).await.unwrap();
    let sum = |kind: &str| all.iter().filter(|e| e.kind == kind).map(|e| e.count).sum::<i64>();
    assert_eq!((sum("token_issued"), sum("token_refused")), (EVENTS, EVENTS));
    assert!(all.len() < EVENTS as usize + 1_000, "refusals are counted, not one row each");
}
conformance!(audit_writer, audit_writer_writes_every_kept_event);

/// While the database takes no audit writes, kept events wait instead of being dropped: the lane
/// fills, a token request's `reserve` then finds no room (it would be answered 503 and issue
/// nothing), and once the database is back every event that was queued is written.
async fn stalled_database_pushes_back_and_drops_nothing(t: &TestDb) {
    use portero_core::audit::{AuditEvent, AuditLog, AuditQuery};
    use sqlx::Connection;
    const ROOM: usize = 50;
    let issued = |i: usize| {
        let mut event = AuditEvent::new(20_000 + i as i64, "token_issued", "issued");
        event.client_id = Some("stalled".into());
        event
    };
    // A writer that holds the audit table (SQLite: the file's write lock; PostgreSQL: a table lock).
    let mut sqlite_lock = None;
    let mut postgres_lock = None;
    match (&t._dir, t.db.postgres_pool()) {
        (Some(dir), _) => {
            let url = format!("sqlite://{}", dir.path().join("portero.db").display());
            let mut connection = sqlx::SqliteConnection::connect(&url).await.unwrap();
            sqlx::raw_sql("BEGIN IMMEDIATE").execute(&mut connection).await.unwrap();
            sqlite_lock = Some(connection);
        }
        (None, Some(pool)) => {
            let mut tx = pool.begin().await.unwrap();
            sqlx::query("LOCK TABLE audit_events IN EXCLUSIVE MODE").execute(&mut *tx).await.unwrap();
            postgres_lock = Some(tx);
        }
        (None, None) => unreachable!(),
    }
    let log = AuditLog::with_capacity(t.db.clone(), ROOM);
    let mut queued = 0;
    let full = loop {
        match log.reserve(std::time::Duration::from_millis(100)).await {
            Some(permit) => {
                permit.record(issued(queued));
                queued += 1;
            }
            None => break true,
        }
        if queued > 100 * ROOM {
            break false;
        }
    };
    assert!(full, "the lane fills while the database is stalled ({queued} queued)");
    // The lane and the batch in flight, and a little more: on a machine under heavy load (a
    // release build beside the suite) PostgreSQL once let 154 in before the 100 ms reserve gave up.
    // What must hold is that the queue is bounded and that nothing is dropped (checked below).
    assert!(queued <= 4 * ROOM, "at most the lane and the batch in flight wait ({queued})");
    assert!(log.backlog() >= ROOM as u64);
    // The database comes back (well within SQLite's 10 s busy timeout).
    if let Some(mut connection) = sqlite_lock {
        sqlx::raw_sql("ROLLBACK").execute(&mut connection).await.unwrap();
    }
    if let Some(tx) = postgres_lock {
        tx.rollback().await.unwrap();
    }
    log.reserve(std::time::Duration::from_secs(5)).await.expect("room again").record(issued(queued));
    queued += 1;
    log.flush_and_stop().await;
    assert_eq!((log.dropped(), log.backlog()), (0, 0));
    let query = AuditQuery { client_id: Some("stalled".into()), limit: 10_000, ..AuditQuery::default() };
    assert_eq!(t.db.list_audit_events(&query).await.unwrap().len(), queued);
}

mod audit_stall {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn sqlite() {
        let t = super::TestDb::sqlite().await;
        super::stalled_database_pushes_back_and_drops_nothing(&t).await;
        t.cleanup().await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn postgres() {
        if let Some(t) = super::TestDb::postgres().await {
            super::stalled_database_pushes_back_and_drops_nothing(&t).await;
            t.cleanup().await;
        }
    }
}

/// Issue 14: a legacy hash replaced at first success, once however many succeed at once.
async fn legacy_hashes_are_upgraded_once<S: Store + Clone>(db: &S) {
    db.create_tenant(&Tenant { id: "t1".into(), name: "one".into(), created_at: 0 }).await.unwrap();
    let legacy = "$2b$04$abcdefghijklmnopqrstuuAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    db.create_client(&Client { secret_hash: legacy.into(), ..client("old", vec!["t1".into()]) }).await.unwrap();
    let user = User {
        id: "u1".into(),
        tenant_id: "t1".into(),
        username: "bob".into(),
        password_hash: legacy.into(),
        disabled_at: None,
        last_seen_at: None,
        created_at: 0,
    };
    db.create_user(&user).await.unwrap();
    for owner in [TokenOwner::Client("old"), TokenOwner::User("u1")] {
        let attempts: Vec<_> = (0..8)
            .map(|i| {
                let db = db.clone();
                let id = owner.id().to_owned();
                let client = owner.kind() == "client";
                tokio::spawn(async move {
                    let owner = if client { TokenOwner::Client(&id) } else { TokenOwner::User(&id) };
                    db.upgrade_hash(owner, legacy, &format!("$argon2id$v=19$new{i}"), 50).await.unwrap()
                })
            })
            .collect();
        let mut winners = 0;
        for attempt in attempts {
            winners += usize::from(attempt.await.unwrap());
        }
        assert_eq!(winners, 1, "{owner:?}: one conditional write wins");
        assert!(!db.upgrade_hash(owner, legacy, "$argon2id$v=19$late", 60).await.unwrap());
    }
    let stored = db.find_client("old").await.unwrap().unwrap();
    assert!(stored.secret_hash.starts_with("$argon2id$v=19$new"));
    assert_eq!(stored.last_seen_at, Some(50), "a rehash is a first success");
    let stored = db.find_user("u1").await.unwrap().unwrap();
    assert!(stored.password_hash.starts_with("$argon2id$v=19$new"));
    assert_eq!(stored.last_seen_at, Some(50));
    // First sight is written once.
    db.create_client(&client("native", vec![])).await.unwrap();
    db.mark_seen(TokenOwner::Client("native"), 70).await.unwrap();
    db.mark_seen(TokenOwner::Client("native"), 80).await.unwrap();
    assert_eq!(db.find_client("native").await.unwrap().unwrap().last_seen_at, Some(70));
    // Neither is counted as migrated: they were not imported.
    assert!(db.migration_counts().await.unwrap().is_empty());
}
conformance!(legacy_upgrade, legacy_hashes_are_upgraded_once);

/// Issue 14: an import is written whole or not at all, in chunks larger than one statement.
async fn imports_are_written_whole_or_not_at_all<S: Store + Clone>(db: &S) {
    use portero_core::store::{ImportBatch, ImportedClient, ImportedUser, Origin};
    let tenant = |id: &str, name: &str| Tenant { id: id.into(), name: name.into(), created_at: 5 };
    let user = |id: String, username: String| User {
        id,
        tenant_id: "t1".into(),
        username,
        password_hash: "$2b$04$abcdefghijklmnopqrstuuAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into(),
        disabled_at: None,
        last_seen_at: None,
        created_at: 5,
    };
    let imported = |u: User| ImportedUser { digest: format!("d-{}", u.username), user: u, replaces: false };
    let legacy_client = Client {
        secret_hash: "$pbkdf2-sha256$i=1000,l=32$c2FsdHNhbHQ$1RWAS5YYkIY9nckTZesthMF5e49TOFXt8bOwrxWRD7s".into(),
        ..client("imported", vec!["t1".into()])
    };
    let batch = ImportBatch {
        tenants: vec![tenant("t1", "one")],
        clients: vec![ImportedClient { client: legacy_client.clone(), digest: "dc".into(), replaces: false }],
        users: (0..12_000).map(|i| imported(user(format!("u{i}"), format!("user{i}")))).collect(),
        at: 5,
    };
    db.write_import(&batch).await.unwrap();
    assert_eq!(db.list_users("t1").await.unwrap().len(), 12_000);
    assert_eq!(db.find_client("imported").await.unwrap().unwrap(), legacy_client);
    assert_eq!(db.client_import_digests().await.unwrap().get("imported").map(String::as_str), Some("dc"));
    let existing = db.users_for_import(&["t1".into()]).await.unwrap();
    let u7 = existing.iter().find(|u| u.username == "user7").unwrap();
    assert_eq!((u7.id.as_str(), u7.digest.as_deref()), ("u7", Some("d-user7")));

    // A clash with what exists fails the whole batch: the new tenant is not written either.
    let clash = ImportBatch {
        tenants: vec![tenant("t2", "two")],
        clients: vec![],
        users: vec![imported(user("fresh".into(), "fresh".into())), imported(user("other-id".into(), "user3".into()))],
        at: 6,
    };
    assert!(matches!(db.write_import(&clash).await, Err(StoreError::Conflict(_))));
    assert!(db.find_tenant("two").await.unwrap().is_none(), "nothing of a failed import is written");
    assert!(db.find_user("fresh").await.unwrap().is_none());

    // A replacing row keeps the user's id and creation; a rehash and first sight are counted.
    assert!(
        db.upgrade_hash(
            TokenOwner::User("u1"),
            &user("u1".into(), "user1".into()).password_hash,
            "$argon2id$v=19$x",
            7
        )
        .await
        .unwrap()
    );
    db.mark_seen(TokenOwner::User("u2"), 7).await.unwrap();
    let counts = db.migration_counts().await.unwrap();
    let users = |legacy: bool, rehashed: bool, seen: bool| {
        counts
            .iter()
            .filter(|c| c.kind == "user" && c.legacy == legacy && c.rehashed == rehashed && c.seen == seen)
            .map(|c| c.count)
            .sum::<i64>()
    };
    assert_eq!((users(true, false, false), users(false, true, true), users(true, false, true)), (11_998, 1, 1));
    assert!(counts.iter().all(|c| c.origin == Origin::Import && (c.kind == "client" || c.tenants == ["t1"])));
    let replace = ImportBatch {
        tenants: vec![],
        clients: vec![],
        users: vec![ImportedUser {
            user: User { password_hash: "$2b$new".into(), ..user("u2".into(), "user2".into()) },
            digest: "d2".into(),
            replaces: true,
        }],
        at: 8,
    };
    db.write_import(&replace).await.unwrap();
    let u2 = db.find_user("u2").await.unwrap().unwrap();
    assert_eq!((u2.password_hash.as_str(), u2.last_seen_at, u2.created_at), ("$2b$new", None, 5));
}
conformance!(import_batches, imports_are_written_whole_or_not_at_all);

/// The CLI and the server are two processes on one SQLite file: a change one announces reaches
/// the other's feed through `change_log`, within the poll interval.
#[tokio::test]
async fn sqlite_changes_reach_another_process_within_a_second() {
    use portero_core::store::{Change, ChangeFeed};
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("portero.db").display());
    let server = Database::connect(&url).await.unwrap();
    let cli = Database::connect(&url).await.unwrap();
    cli.announce(&Change::Client("before".into())).await; // older than the feed: not replayed
    let mut changes = server.changes().expect("SQLite has a change feed");
    let within = std::time::Duration::from_secs(3);
    let live = tokio::time::timeout(within, changes.recv()).await.expect("in time").expect("a change");
    assert_eq!(live, Change::Everything, "the feed says when it is live: what was read before is stale");
    cli.announce(&Change::Client("merchant-1".into())).await;
    cli.announce(&Change::Keys).await;
    let first = tokio::time::timeout(within, changes.recv()).await.expect("in time").expect("a change");
    let second = tokio::time::timeout(within, changes.recv()).await.expect("in time").expect("a change");
    assert_eq!((first, second), (Change::Client("merchant-1".into()), Change::Keys));
}

/// Two nodes on one PostgreSQL database: the feed says when its LISTEN is in place (a change
/// made before that could have been missed), and a change announced after it arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_changes_reach_another_node_once_the_feed_is_live() {
    use portero_core::store::{Change, ChangeFeed};
    let Some(t) = TestDb::postgres().await else { return };
    let (base, name) = t.pg_admin.clone().expect("a PostgreSQL test database");
    let url = format!("{}/{name}", base.rsplit_once('/').expect("a database in the URL").0);
    let other = Database::connect(&url).await.unwrap();
    let mut changes = t.db.changes().expect("PostgreSQL has a change feed");
    let within = std::time::Duration::from_secs(5);
    let live = tokio::time::timeout(within, changes.recv()).await.expect("in time").expect("a change");
    assert_eq!(live, Change::Everything, "the feed says when it is live: what was read before is stale");
    other.announce(&Change::Client("merchant-1".into())).await;
    other.announce(&Change::Blocked { key: "client:merchant-1".into(), until: 99 }).await;
    let first = tokio::time::timeout(within, changes.recv()).await.expect("in time").expect("a change");
    let second = tokio::time::timeout(within, changes.recv()).await.expect("in time").expect("a change");
    assert_eq!(
        (first, second),
        (Change::Client("merchant-1".into()), Change::Blocked { key: "client:merchant-1".into(), until: 99 })
    );

    // The listener's connection dies and cannot come back for a while. The feed stays silent
    // until it listens again (a node that re-read its state at the moment of the loss would miss
    // what is announced in between), then says it is live again, and what follows arrives.
    let admin = sqlx::PgPool::connect(&base).await.unwrap();
    let allow = |yes: bool| format!("ALTER DATABASE {name} ALLOW_CONNECTIONS {yes}");
    sqlx::query(sqlx::AssertSqlSafe(allow(false))).execute(&admin).await.unwrap();
    let kill =
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = $1 AND query LIKE 'LISTEN%'";
    let killed: i64 = sqlx::query_scalar(kill).bind(&name).fetch_one(&admin).await.unwrap();
    assert_eq!(killed, 1, "one listening connection");
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(changes.try_recv().is_err(), "no claim to be live while the LISTEN is gone");
    other.announce(&Change::Client("lost while away".into())).await;
    sqlx::query(sqlx::AssertSqlSafe(allow(true))).execute(&admin).await.unwrap();
    admin.close().await;
    let again = tokio::time::timeout(within, changes.recv()).await.expect("in time").expect("a change");
    assert_eq!(again, Change::Everything, "live again: what was read before is stale");
    other.announce(&Change::Keys).await;
    let after = tokio::time::timeout(within, changes.recv()).await.expect("in time").expect("a change");
    assert_eq!(after, Change::Keys);
    other.close().await;
    t.cleanup().await;
}
