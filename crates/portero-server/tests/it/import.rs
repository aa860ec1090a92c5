//! `POST /admin/import` (issue 14) on SQLite and PostgreSQL: a NetPay-style client and users
//! whose hashes were made by Python's `bcrypt` and `hashlib` (Keycloak's PBKDF2 credential),
//! imported, verified through the token endpoint (Basic + password grant, as the NetPay
//! document describes), then found rehashed to argon2id in the store. A bad file is refused
//! whole with its line numbers; a re-import changes nothing; `update=true` applies changes.

use portero_core::store::prelude::*;
use serde_json::{Value, json};

use crate::harness::*;
use crate::legacy::{python_hashes, urlencode};

const TENANT_ID: &str = "3d2c1b0a-9f8e-4d7c-8b6a-5f4e3d2c1b0a";

fn jsonl(rows: &[Value]) -> String {
    rows.iter().map(|r| r.to_string() + "\n").collect()
}

async fn import(server: &Server, query: &str, body: &str) -> (u16, Value) {
    let request = server
        .http
        .post(server.url(&format!("/admin/import{query}")))
        .bearer_auth(ADMIN_TOKEN)
        .header("Content-Type", "application/x-ndjson")
        .body(body.to_owned());
    let (status, _, body) = send(request).await;
    (status, body)
}

fn counts(report: &Value, which: &str) -> (u64, u64, u64) {
    let c = &report[which];
    (c["tenants"].as_u64().unwrap(), c["clients"].as_u64().unwrap(), c["users"].as_u64().unwrap())
}

async fn import_verify_rehash(server: &Server, test: &str) {
    let Some(h) = python_hashes(
        test,
        &[("app", "netpay app secret"), ("ana", "ana-pass"), ("kc", "kc pass ✓"), ("ana2", "ana-new")],
    ) else {
        return;
    };
    let tenant = json!({"kind": "tenant", "name": "netpay-legacy", "id": TENANT_ID});
    let client = json!({"kind": "client", "id": "netpay-app", "grants": ["password", "refresh_token"],
        "scopes": "sale reprint cancel", "tenants": ["netpay-legacy"], "token_ttl": 300,
        "secret_hash": h["app"]["spring"]});
    let ana =
        json!({"kind": "user", "tenant": "netpay-legacy", "username": "ana", "password_hash": h["ana"]["bcrypt"]});
    let kc = json!({"kind": "user", "tenant": TENANT_ID, "username": "kc", "password_hash": h["kc"]["keycloak"]});
    let plain =
        json!({"kind": "user", "tenant": "netpay-legacy", "username": "pat", "password_hash": "plain:pat-pass"});
    let good = jsonl(&[tenant.clone(), client.clone(), ana.clone(), kc.clone(), plain.clone()]);

    // A bad file: every bad row named by its line, nothing written.
    let bad = [
        tenant.to_string(),
        client.to_string(),
        json!({"kind": "user", "tenant": "nowhere", "username": "x", "password_hash": h["ana"]["bcrypt"]}).to_string(),
        ana.to_string(),
        json!({"kind": "user", "tenant": "netpay-legacy", "username": "md5", "password_hash": "{MD5}abc"}).to_string(),
        "{\"kind\": \"user\",".to_owned(),
        ana.to_string(),
        json!({"kind": "client", "id": "x", "grants": ["implicit"], "secret_hash": "plain:x"}).to_string(),
    ]
    .join("\n");
    let (status, report) = import(server, "", &bad).await;
    assert_eq!(status, 400, "{report}");
    assert_eq!(report["error"], "invalid_request");
    let lines: Vec<u64> = report["errors"].as_array().unwrap().iter().map(|e| e["line"].as_u64().unwrap()).collect();
    assert_eq!(lines, [3, 5, 6, 7, 8], "{report}");
    assert!(!report.to_string().contains("$2b$"), "no hash is quoted back: {report}");
    assert!(server.db.find_tenant("netpay-legacy").await.unwrap().is_none(), "nothing written");
    assert!(server.db.find_client("netpay-app").await.unwrap().is_none(), "nothing written");

    // A dry run reports and writes nothing.
    let (status, report) = import(server, "?dry_run=true", &good).await;
    assert_eq!((status, report["written"].as_bool()), (200, Some(false)), "{report}");
    assert_eq!(counts(&report, "created"), (1, 1, 3));
    assert!(server.db.find_client("netpay-app").await.unwrap().is_none());

    // The import.
    let (status, report) = import(server, "", &good).await;
    assert_eq!((status, report["written"].as_bool()), (200, Some(true)), "{report}");
    assert_eq!(counts(&report, "created"), (1, 1, 3));
    assert_eq!(report["plain_hashed"], 1);
    let stored = server.db.find_client("netpay-app").await.unwrap().unwrap();
    assert!(stored.secret_hash.starts_with("$2a$"), "kept as imported until the first login");

    // Again: nothing changes.
    let (status, report) = import(server, "", &good).await;
    assert_eq!((status, report["written"].as_bool()), (200, Some(false)), "{report}");
    assert_eq!((counts(&report, "created"), counts(&report, "unchanged")), ((0, 0, 0), (1, 1, 3)));

    // Through the token endpoint, NetPay style: Basic with the client's old secret, the users'
    // old passwords. Wrong ones are refused as Portero's own are.
    let basic = Some(("netpay-app", "netpay app secret"));
    let wrong = server.post_form("/oauth2/token", basic, "grant_type=password&username=ana&password=nope").await;
    assert_eq!((wrong.0, wrong.2["error"].as_str()), (400, Some("invalid_grant")));
    for (username, password) in [("ana", "ana-pass"), ("kc", "kc pass ✓"), ("pat", "pat-pass")] {
        let form = format!("grant_type=password&username={username}&password={}", urlencode(password));
        let (status, _, body) = server.post_form("/oauth2/token", basic, &form).await;
        assert_eq!((status, body["expires_in"].as_i64()), (200, Some(300)), "{username}: {body}");
        let claims = server.verify(body["access_token"].as_str().unwrap(), &server.base).await;
        assert_eq!(claims["tenants"], json!([TENANT_ID]));
    }
    let users = server.db.list_users(TENANT_ID).await.unwrap();
    assert_eq!(users.len(), 3);
    for user in &users {
        assert!(user.password_hash.starts_with("$argon2id$v=19$"), "{} rehashed", user.username);
    }
    let stored = server.db.find_client("netpay-app").await.unwrap().unwrap();
    assert!(stored.secret_hash.starts_with("$argon2id$v=19$"), "the client secret was rehashed");

    // What is left: nothing on a legacy hash, nobody unseen.
    let request = server.http.get(server.url("/admin/import/status")).bearer_auth(ADMIN_TOKEN);
    let (status, _, lines) = send(request).await;
    assert_eq!(status, 200, "{lines}");
    let line = lines.as_array().unwrap().iter().find(|l| l["tenant"] == "netpay-legacy").unwrap().clone();
    assert_eq!(
        line["users"],
        json!({"imported": 3, "migrated_lazily": 0, "legacy_hash": 0, "rehashed": 2, "never_seen": 0})
    );
    assert_eq!(line["clients"]["legacy_hash"], 0);
    assert_eq!(line["clients"]["rehashed"], 1);

    // Re-importing after the logins still changes nothing (the rehashed users are not reset).
    let (status, report) = import(server, "", &good).await;
    assert_eq!((status, counts(&report, "unchanged")), (200, (1, 1, 3)), "{report}");

    // A changed row is refused without update, applied with it.
    let ana_changed =
        json!({"kind": "user", "tenant": "netpay-legacy", "username": "ana", "password_hash": h["ana2"]["bcrypt"]});
    let changed = jsonl(&[tenant, client, ana_changed, kc, plain]);
    let (status, report) = import(server, "", &changed).await;
    assert_eq!(status, 400, "{report}");
    assert_eq!(report["errors"][0]["line"], 3);
    assert!(report["errors"][0]["error"].as_str().unwrap().contains("update"), "{report}");
    let (status, report) = import(server, "?update=true", &changed).await;
    assert_eq!((status, counts(&report, "updated")), (200, (0, 0, 1)), "{report}");
    assert_eq!(counts(&report, "unchanged"), (1, 1, 2));
    let old = server.post_form("/oauth2/token", basic, "grant_type=password&username=ana&password=ana-pass").await;
    assert_eq!(old.0, 400, "the old password no longer works");
    let new = server.post_form("/oauth2/token", basic, "grant_type=password&username=ana&password=ana-new").await;
    assert_eq!(new.0, 200, "{}", new.2);
}

#[tokio::test]
async fn import_verify_and_rehash_sqlite() {
    let server = Server::start().await;
    import_verify_rehash(&server, "import_verify_and_rehash_sqlite").await;
}

#[tokio::test]
async fn import_verify_and_rehash_postgres() {
    let test = "import_verify_and_rehash_postgres";
    let Some(server) = Server::start_postgres(test, short_blocks()).await else { return };
    import_verify_rehash(&server, test).await;
    server.finish().await;
}

/// `$s256$<salt>$<SHA-256(salt‖secret)>`, made here from the definition rather than by Portero.
fn s256(salt: &[u8], secret: &str) -> String {
    use base64::Engine;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    ctx.update(salt);
    ctx.update(secret.as_bytes());
    format!("$s256${}${}", b64(salt), b64(ctx.finish().as_ref()))
}

/// A client moved from another Portero keeps its `$s256$` hash as it is (no rehash: it is the
/// native form of a random secret); a malformed one is refused by line, and a user's password
/// cannot come as `$s256$` (a fast hash is only for random secrets).
#[tokio::test]
async fn s256_client_hashes_import_as_they_are() {
    let server = Server::start().await;
    let hash = s256(b"sixteen byte salt", "moved client secret 0123456789");
    let tenant = json!({"kind": "tenant", "name": "moved"});
    let client = json!({"kind": "client", "id": "moved-app", "grants": ["client_credentials"], "scopes": "api",
        "tenants": ["moved"], "secret_hash": hash});
    let bad = jsonl(&[
        tenant.clone(),
        json!({"kind": "client", "id": "short-salt", "grants": ["client_credentials"],
            "secret_hash": s256(b"short", "x")}),
        json!({"kind": "client", "id": "no-digest", "grants": ["client_credentials"], "secret_hash": "$s256$c2FsdA"}),
        json!({"kind": "user", "tenant": "moved", "username": "u", "password_hash": s256(b"sixteen byte salt", "p")}),
    ]);
    let (status, report) = import(&server, "", &bad).await;
    assert_eq!(status, 400, "{report}");
    let lines: Vec<u64> = report["errors"].as_array().unwrap().iter().map(|e| e["line"].as_u64().unwrap()).collect();
    assert_eq!(lines, [2, 3, 4], "{report}");

    let (status, report) = import(&server, "", &jsonl(&[tenant, client])).await;
    assert_eq!((status, counts(&report, "created")), (200, (1, 1, 0)), "{report}");
    assert_eq!(server.db.find_client("moved-app").await.unwrap().unwrap().secret_hash, hash);
    let good = Some(("moved-app", "moved client secret 0123456789"));
    let (status, _, body) = server.post_form("/oauth2/token", good, "grant_type=client_credentials").await;
    assert_eq!(status, 200, "{body}");
    let wrong = Some(("moved-app", "moved client secret 012345678"));
    let (status, _, body) = server.post_form("/oauth2/token", wrong, "grant_type=client_credentials").await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")), "{body}");
    assert_eq!(server.db.find_client("moved-app").await.unwrap().unwrap().secret_hash, hash, "not rehashed");
}
