//! Administration: tenants, clients, users, keys, secret rotation. One implementation behind
//! both the `portero` CLI and the admin HTTP API, so both validate the same way.

use crate::client_auth::AuthMethod;
use crate::grant::GrantType;
use crate::keys::{Alg, KeyError, MasterKey, SigningKey, next_activation};
use crate::secret::{generate_client_secret, hash_generated_secret, hash_password};
use crate::store::{Client, RefreshPolicy, Store, StoreError, StoredKey, Tenant, User};
use serde::Deserialize;

/// When a new client gets refresh tokens, unless told otherwise.
pub const DEFAULT_REFRESH_TOKENS: &str = "always";
/// How long a rotated client secret keeps working beside the new one, unless told otherwise.
pub const DEFAULT_SECRET_OVERLAP: &str = "24h";
/// The algorithm of a new signing key, unless told otherwise.
pub const DEFAULT_KEY_ALG: &str = "RS256";
/// Seconds a new signing key is published before it signs: longer than a verifier's JWKS cache
/// lifetime (300 s), so every verifier knows the key before it sees a token signed with it.
pub const DEFAULT_PUBLISH_DELAY_SECONDS: i64 = 360;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0} already exists")]
    Conflict(&'static str),
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Store(StoreError),
    #[error(transparent)]
    Key(#[from] KeyError),
}

impl From<StoreError> for AdminError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound(what) => Self::NotFound(what),
            other => Self::Store(other),
        }
    }
}

fn invalid(message: impl Into<String>) -> AdminError {
    AdminError::Invalid(message.into())
}

fn conflict(what: &'static str) -> impl FnOnce(StoreError) -> AdminError {
    move |error| match error {
        StoreError::Conflict(_) => AdminError::Conflict(what),
        other => other.into(),
    }
}

/// Values that end up in space-separated lists must be one printable word.
fn check_word(what: &str, value: &str) -> Result<(), AdminError> {
    if value.is_empty() || value.len() > 255 || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid(format!("{what} must be 1 to 255 characters without spaces")));
    }
    Ok(())
}

pub async fn create_tenant<S: Store>(db: &S, name: &str, id: Option<&str>, now: i64) -> Result<Tenant, AdminError> {
    check_word("the tenant name", name)?;
    let id = match id {
        Some(id) => uuid::Uuid::parse_str(id).map_err(|_| invalid("the tenant id must be a UUID"))?.to_string(),
        None => uuid::Uuid::new_v4().to_string(),
    };
    let tenant = Tenant { id, name: name.to_owned(), created_at: now };
    db.create_tenant(&tenant).await.map_err(conflict("a tenant with this id or name"))?;
    Ok(tenant)
}

/// The longest refresh retry window a server or client may have: a retry is for a lost answer,
/// not a second life for a stolen token.
pub const MAX_REFRESH_RETRY_WINDOW: i64 = 3600;

/// A client to create, as the CLI flags or the admin API's JSON give it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewClient {
    pub id: String,
    /// Keep this secret (stored as argon2id); `None` generates one (stored as salted SHA-256).
    pub secret: Option<String>,
    pub grants: Vec<String>,
    #[serde(default)]
    pub scopes: String,
    #[serde(default)]
    pub audiences: Vec<String>,
    /// Tenant ids or names.
    #[serde(default)]
    pub tenants: Vec<String>,
    pub token_ttl: Option<i64>,
    /// `always`, `offline_access` or `never`; default `always`.
    pub refresh_tokens: Option<String>,
    #[serde(default)]
    pub ignore_unknown_scopes: bool,
    pub locale: Option<String>,
    /// Seconds in which a lost refresh answer may be retried; `None` takes the server's setting.
    pub refresh_retry_window: Option<i64>,
    /// `client_secret_basic` or `client_secret_post`; `None` accepts both.
    pub token_endpoint_auth_method: Option<String>,
}

/// Creates a client; returns it and the generated secret, if one was generated.
pub async fn create_client<S: Store>(db: &S, new: NewClient, now: i64) -> Result<(Client, Option<String>), AdminError> {
    check_word("the client id", &new.id)?;
    if new.id.contains(':') {
        return Err(invalid("the client id must not contain ':' (it could not travel in a Basic header)"));
    }
    if new.grants.is_empty() {
        return Err(invalid("give at least one grant: client_credentials, password, refresh_token"));
    }
    let grants = new
        .grants
        .iter()
        .map(|g| {
            GrantType::parse(g.trim())
                .ok_or_else(|| invalid(format!("unknown grant {g:?}: use client_credentials, password, refresh_token")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let scopes = crate::scope::parse(&new.scopes).map_err(|e| invalid(format!("scopes: {}", e.description)))?;
    for audience in &new.audiences {
        check_word("an audience", audience)?;
    }
    let mut tenants = Vec::new();
    for t in &new.tenants {
        let tenant = db.find_tenant(t).await?.ok_or_else(|| invalid(format!("no tenant {t:?}: create it first")))?;
        tenants.push(tenant.id);
    }
    if new.token_ttl.is_some_and(|ttl| !(1..=30 * 86_400).contains(&ttl)) {
        return Err(invalid("the token ttl must be between 1 and 2592000 seconds"));
    }
    if new.refresh_retry_window.is_some_and(|window| !(0..=MAX_REFRESH_RETRY_WINDOW).contains(&window)) {
        return Err(invalid("the refresh retry window must be between 0 and 3600 seconds"));
    }
    let auth_method = match new.token_endpoint_auth_method.as_deref() {
        None => None,
        Some(name) => Some(AuthMethod::parse(name).ok_or_else(|| {
            let known: Vec<&str> = AuthMethod::ALL.iter().map(|m| m.as_str()).collect();
            invalid(format!("unknown authentication method {name:?}: use {}", known.join(" or ")))
        })?),
    };
    let refresh_policy = RefreshPolicy::parse(new.refresh_tokens.as_deref().unwrap_or(DEFAULT_REFRESH_TOKENS))
        .ok_or_else(|| invalid("refresh tokens must be always, offline_access or never"))?;
    if let Some(locale) = &new.locale {
        let ok = (2..=16).contains(&locale.len())
            && locale.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !ok {
            return Err(invalid("the locale must look like es_PE or en-US"));
        }
    }
    let (secret_hash, generated) = match &new.secret {
        Some(secret) if secret.is_empty() || secret.len() > 512 => {
            return Err(invalid("the secret must be 1 to 512 characters"));
        }
        Some(secret) => (hash_password(secret), None),
        None => {
            let secret = generate_client_secret();
            (hash_generated_secret(&secret), Some(secret))
        }
    };
    let client = Client {
        id: new.id,
        secret_hash,
        grants,
        scopes,
        audiences: new.audiences,
        tenants,
        token_ttl: new.token_ttl,
        refresh_policy,
        ignore_unknown_scopes: new.ignore_unknown_scopes,
        locale: new.locale,
        refresh_retry_window: new.refresh_retry_window,
        auth_method,
        created_at: now,
        previous_secret: None,
    };
    db.create_client(&client).await.map_err(conflict("a client with this id"))?;
    Ok((client, generated))
}

/// Gives a client a new generated secret; the old one keeps working for `overlap_seconds`.
pub async fn rotate_client_secret<S: Store>(
    db: &S,
    id: &str,
    overlap_seconds: i64,
    now: i64,
) -> Result<String, AdminError> {
    if !(0..=30 * 86_400).contains(&overlap_seconds) {
        return Err(invalid("the overlap must be between 0 and 30 days"));
    }
    let secret = generate_client_secret();
    let previous_expires_at = (overlap_seconds > 0).then_some(now + overlap_seconds);
    db.rotate_client_secret(id, &hash_generated_secret(&secret), previous_expires_at).await?;
    Ok(secret)
}

pub async fn create_user<S: Store>(
    db: &S,
    tenant: &str,
    username: &str,
    password: &str,
    now: i64,
) -> Result<User, AdminError> {
    check_word("the username", username)?;
    if password.is_empty() || password.len() > 1024 {
        return Err(invalid("the password must be 1 to 1024 bytes"));
    }
    let tenant = db.find_tenant(tenant).await?.ok_or_else(|| invalid(format!("no tenant {tenant:?}")))?;
    let user = User {
        id: uuid::Uuid::new_v4().to_string(),
        tenant_id: tenant.id,
        username: username.to_owned(),
        password_hash: hash_password(password),
        created_at: now,
    };
    db.create_user(&user).await.map_err(conflict("a user with this username in this tenant"))?;
    Ok(user)
}

/// Adds a signing key: published at once, signing after `publish_delay` seconds (and after
/// every existing key).
pub async fn rotate_key<S: Store>(
    db: &S,
    master: &MasterKey,
    alg: &str,
    publish_delay: i64,
    now: i64,
) -> Result<StoredKey, AdminError> {
    if !(0..=30 * 86_400).contains(&publish_delay) {
        return Err(invalid("the publish delay must be between 0 and 30 days"));
    }
    let alg = Alg::parse(alg)?;
    let activate_at = next_activation(&db.list_keys().await?, now, publish_delay);
    let key = SigningKey::generate(alg, master, now, activate_at)?;
    db.insert_key(&key).await?;
    Ok(key)
}

/// `90`, `90s`, `15m`, `24h`, `7d` → seconds.
pub fn parse_duration(text: &str) -> Result<i64, AdminError> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let value: i64 =
        number.parse().map_err(|_| invalid(format!("{text:?} is not a duration like 90s, 15m, 24h, 7d")))?;
    let factor = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => {
            return Err(invalid(format!("{text:?} is not a duration like 90s, 15m, 24h, 7d")));
        }
    };
    value.checked_mul(factor).ok_or_else(|| invalid("the duration is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90").unwrap(), 90);
        assert_eq!(parse_duration("15m").unwrap(), 900);
        assert_eq!(parse_duration("24h").unwrap(), 86_400);
        assert_eq!(parse_duration("7d").unwrap(), 604_800);
        assert!(parse_duration("1w").is_err());
        assert!(parse_duration("h").is_err());
    }
}
