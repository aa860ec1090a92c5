//! Credentials kept from another provider (issue 14): hashes made by independent tools (Python's
//! `bcrypt` package and `hashlib.pbkdf2_hmac` in Keycloak's credential form) verified through
//! the token endpoint, then found rehashed to argon2id in the store; wrong ones refused exactly
//! as for Portero's own hashes.

use std::io::Write as _;
use std::process::Command;

use portero_core::grant::GrantType;
use portero_core::legacy_hash::{LegacyHash, is_legacy_stored};
use portero_core::store::prelude::*;
use portero_core::store::{Tenant, User};
use serde_json::Value;

use crate::harness::*;

/// Prints one JSON object: for each `[name, secret]` argument pair, a bcrypt (`$2b$`), a Spring
/// `{bcrypt}` (`$2a$`) and a Keycloak PBKDF2-SHA256 credential of the secret.
const HASHER: &str = r#"
import base64, hashlib, json, os, sys
import bcrypt
out = {}
args = sys.argv[1:]
for name, secret in zip(args[0::2], args[1::2]):
    data = secret.encode()
    salt = os.urandom(16)
    value = hashlib.pbkdf2_hmac("sha256", data, salt, 27500)
    out[name] = {
        "bcrypt": bcrypt.hashpw(data, bcrypt.gensalt(8)).decode(),
        "spring": "{bcrypt}" + bcrypt.hashpw(data, bcrypt.gensalt(8, prefix=b"2a")).decode(),
        "keycloak": {"algorithm": "pbkdf2-sha256", "iterations": 27500,
                     "salt": base64.b64encode(salt).decode(), "value": base64.b64encode(value).decode()},
    }
print(json.dumps(out))
"#;

/// The hashes of each `(name, secret)` made by Python, or `None` (said loudly) without Python's
/// `bcrypt`.
pub fn python_hashes(test: &str, secrets: &[(&str, &str)]) -> Option<Value> {
    let args: Vec<&str> = secrets.iter().flat_map(|(name, secret)| [*name, *secret]).collect();
    let output = Command::new("python3").arg("-c").arg(HASHER).args(&args).output();
    match output {
        Ok(output) if output.status.success() => serde_json::from_slice(&output.stdout).ok(),
        Ok(output) => {
            let why = String::from_utf8_lossy(&output.stderr).lines().last().unwrap_or_default().to_owned();
            let _ = writeln!(std::io::stderr(), "SKIPPED: {test}: python3 with bcrypt is needed ({why})");
            None
        }
        Err(error) => {
            let _ = writeln!(std::io::stderr(), "SKIPPED: {test}: python3 could not run ({error})");
            None
        }
    }
}

/// The stored (canonical) form of an import row's hash.
pub fn stored(hash: &Value) -> String {
    LegacyHash::from_json(hash).unwrap().to_stored().unwrap()
}

const TENANT: &str = "5b0d4b6e-8a51-4a43-9e5e-2b1b9a3c1d10";

async fn legacy_credentials_are_rehashed(server: &Server, test: &str) {
    let Some(hashes) = python_hashes(
        test,
        &[("client", "old provider secret"), ("bcrypt", "bcrypt-pass"), ("keycloak", "keycloak pass ✓")],
    ) else {
        return;
    };
    let db = &server.db;
    db.create_tenant(&Tenant { id: TENANT.into(), name: "legacy".into(), created_at: 0 }).await.unwrap();
    // A NetPay-style client whose Spring `{bcrypt}` secret came along, with two users.
    let mut client = base_client(
        "legacy-app",
        stored(&hashes["client"]["spring"]),
        &[GrantType::Password, GrantType::ClientCredentials],
    );
    client.tenants = vec![TENANT.into()];
    db.create_client(&client).await.unwrap();
    let user = |name: &str, hash: String| User {
        id: format!("legacy-{name}"),
        tenant_id: TENANT.into(),
        username: name.into(),
        password_hash: hash,
        disabled_at: None,
        last_seen_at: None,
        created_at: 0,
    };
    db.create_user(&user("bob", stored(&hashes["bcrypt"]["bcrypt"]))).await.unwrap();
    db.create_user(&user("kate", stored(&hashes["keycloak"]["keycloak"]))).await.unwrap();
    for id in ["legacy-bob", "legacy-kate"] {
        assert!(is_legacy_stored(&db.find_user(id).await.unwrap().unwrap().password_hash));
    }

    let basic = Some(("legacy-app", "old provider secret"));
    // Wrong credentials are refused exactly as for native hashes, and change nothing.
    let (status, _, body) =
        server.post_form("/oauth2/token", Some(("legacy-app", "wrong")), "grant_type=client_credentials").await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")), "{body}");
    let (status, _, body) =
        server.post_form("/oauth2/token", basic, "grant_type=password&username=bob&password=wrong").await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
    let (_, _, unknown) =
        server.post_form("/oauth2/token", basic, "grant_type=password&username=nobody&password=x").await;
    assert_eq!(body, unknown, "a wrong legacy password and an unknown user get the same answer");
    assert!(is_legacy_stored(&db.find_user("legacy-bob").await.unwrap().unwrap().password_hash));

    // The right ones work, and each legacy hash is argon2id afterwards.
    for (username, password) in [("bob", "bcrypt-pass"), ("kate", "keycloak pass ✓")] {
        let form = format!("grant_type=password&username={username}&password={}", urlencode(password));
        let (status, _, body) = server.post_form("/oauth2/token", basic, &form).await;
        assert_eq!(status, 200, "{username}: {body}");
        let user = db.find_user(&format!("legacy-{username}")).await.unwrap().unwrap();
        assert!(user.password_hash.starts_with("$argon2id$v=19$"), "{username} was rehashed");
        assert!(!is_legacy_stored(&user.password_hash));
        assert!(user.last_seen_at.is_some());
        // Again, now against the argon2id hash.
        let (status, _, body) = server.post_form("/oauth2/token", basic, &form).await;
        assert_eq!(status, 200, "{username} after the rehash: {body}");
    }
    let client = db.find_client("legacy-app").await.unwrap().unwrap();
    assert!(client.secret_hash.starts_with("$argon2id$v=19$"), "the client secret was rehashed");
    let (status, _, body) = server.post_form("/oauth2/token", basic, "grant_type=client_credentials").await;
    assert_eq!(status, 200, "{body}");
    let (status, _, _) =
        server.post_form("/oauth2/token", Some(("legacy-app", "wrong")), "grant_type=client_credentials").await;
    assert_eq!(status, 401);
}

/// Several nodes' worth of concurrent first logins: all succeed, one rehash is written.
async fn concurrent_first_logins(server: &Server, test: &str) {
    let Some(hashes) = python_hashes(test, &[("pw", "same password")]) else { return };
    let db = &server.db;
    let mut client = base_client("race-app", stored(&hashes["pw"]["bcrypt"]), &[GrantType::ClientCredentials]);
    client.tenants = vec![];
    db.create_client(&client).await.unwrap();
    let tasks: Vec<_> = (0..12)
        .map(|_| {
            let request = server
                .http
                .post(server.url("/oauth2/token"))
                .header("Authorization", basic_header("race-app", "same password"))
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body("grant_type=client_credentials");
            tokio::spawn(send(request))
        })
        .collect();
    for task in tasks {
        let (status, _, body) = task.await.unwrap();
        assert_eq!(status, 200, "{body}");
    }
    let client = db.find_client("race-app").await.unwrap().unwrap();
    assert!(client.secret_hash.starts_with("$argon2id$v=19$"));
}

pub fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn legacy_hashes_are_rehashed_at_first_success_sqlite() {
    let server = Server::start().await;
    legacy_credentials_are_rehashed(&server, "legacy_hashes_are_rehashed_at_first_success_sqlite").await;
    concurrent_first_logins(&server, "legacy_hashes_are_rehashed_at_first_success_sqlite").await;
}

#[tokio::test]
async fn legacy_hashes_are_rehashed_at_first_success_postgres() {
    let test = "legacy_hashes_are_rehashed_at_first_success_postgres";
    let Some(server) = Server::start_postgres(test, short_blocks()).await else { return };
    legacy_credentials_are_rehashed(&server, test).await;
    concurrent_first_logins(&server, test).await;
    server.finish().await;
}
