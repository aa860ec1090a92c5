//! Administration: tenants, clients, users, keys, secret rotation. One implementation behind
//! both the `portero` CLI and the admin HTTP API, so both validate the same way.

use crate::client_auth::AuthMethod;
use crate::grant::GrantType;
use crate::keys::{Alg, KeyError, MasterKey, SigningKey, next_activation};
use crate::secret::{generate_client_secret, hash_generated_secret, hash_password_async};
use crate::store::{Change, Client, RefreshPolicy, Store, StoreError, StoredKey, Tenant, TokenOwner, User};
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
    /// Refused because something still depends on it (names what).
    #[error("{0}")]
    InUse(String),
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
pub(crate) fn check_word(what: &str, value: &str) -> Result<(), AdminError> {
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
    /// `client_secret_basic`, `client_secret_post` or `private_key_jwt`; `None` accepts both
    /// secret methods.
    pub token_endpoint_auth_method: Option<String>,
    /// The public JWK Set of a `private_key_jwt` client (it or `jwks_uri` required for it,
    /// refused otherwise).
    pub jwks: Option<serde_json::Value>,
    /// Where a `private_key_jwt` client publishes its JWK Set: `https`, or `http` to loopback.
    pub jwks_uri: Option<String>,
    /// Every token request must carry a DPoP proof (RFC 9449 §5.2's client metadata name).
    #[serde(default, alias = "require_dpop")]
    pub dpop_bound_access_tokens: bool,
    /// The subject DN (RFC 4514) of a `tls_client_auth` client's certificate (required for it,
    /// refused otherwise).
    pub tls_client_auth_subject_dn: Option<String>,
    /// Bind access tokens to the request's TLS client certificate (RFC 8705 §3).
    #[serde(default)]
    pub tls_client_certificate_bound_access_tokens: bool,
}

/// Creates a client; returns it and the generated secret, if one was generated.
pub async fn create_client<S: Store>(db: &S, new: NewClient, now: i64) -> Result<(Client, Option<String>), AdminError> {
    check_word("the client id", &new.id)?;
    if new.id.contains(':') {
        return Err(invalid("the client id must not contain ':' (it could not travel in a Basic header)"));
    }
    let method = new.token_endpoint_auth_method.as_deref().map(auth_method).transpose()?;
    let jwks = new.jwks.as_ref().map(jwks_text).transpose()?;
    let jwks_uri = new.jwks_uri.clone().map(jwks_uri).transpose()?;
    check_keys(method, jwks.as_deref(), jwks_uri.as_deref())?;
    let tls_subject_dn = new.tls_client_auth_subject_dn.clone().map(subject_dn).transpose()?;
    check_subject_dn(method, tls_subject_dn.as_deref())?;
    let secretless = method.is_some_and(|m| !matches!(m, AuthMethod::ClientSecretBasic | AuthMethod::ClientSecretPost));
    let (secret_hash, generated) = match &new.secret {
        Some(_) if secretless => {
            return Err(invalid("a client that authenticates with a key or a certificate has no secret"));
        }
        // Never shown to anyone: the secret methods are refused for this client anyway.
        None if secretless => (hash_generated_secret(&generate_client_secret()), None),
        Some(secret) if secret.is_empty() || secret.len() > 512 => {
            return Err(invalid("the secret must be 1 to 512 characters"));
        }
        Some(secret) => (hash_password_async(secret).await, None),
        None => {
            let secret = generate_client_secret();
            (hash_generated_secret(&secret), Some(secret))
        }
    };
    let mut client = build_client(db, new, secret_hash, method, (jwks, jwks_uri), now).await?;
    client.tls_subject_dn = tls_subject_dn;
    db.create_client(&client).await.map_err(conflict("a client with this id"))?;
    Ok((client, generated))
}

/// Creates a client whose secret is already hashed (argon2id, off the async threads): a client
/// migrated from an old provider with the secret it presented there. `new.secret` is ignored.
pub async fn create_client_with_hash<S: Store>(
    db: &S,
    new: NewClient,
    secret_hash: String,
    now: i64,
) -> Result<Client, AdminError> {
    check_word("the client id", &new.id)?;
    if new.id.contains(':') {
        return Err(invalid("the client id must not contain ':' (it could not travel in a Basic header)"));
    }
    let method = new.token_endpoint_auth_method.as_deref().map(auth_method).transpose()?;
    if method == Some(AuthMethod::PrivateKeyJwt) {
        return Err(invalid("a private_key_jwt client has no secret"));
    }
    let client = build_client(db, new, secret_hash, method, (None, None), now).await?;
    db.create_client(&client).await.map_err(conflict("a client with this id"))?;
    Ok(client)
}

async fn build_client<S: Store>(
    db: &S,
    new: NewClient,
    secret_hash: String,
    method: Option<AuthMethod>,
    (jwks, jwks_uri): (Option<String>, Option<String>),
    now: i64,
) -> Result<Client, AdminError> {
    Ok(Client {
        id: new.id,
        secret_hash,
        grants: grants(&new.grants)?,
        scopes: scopes(&new.scopes)?,
        audiences: audiences(new.audiences)?,
        tenants: tenant_ids(db, &new.tenants).await?,
        token_ttl: token_ttl(new.token_ttl)?,
        refresh_policy: refresh_policy(new.refresh_tokens.as_deref().unwrap_or(DEFAULT_REFRESH_TOKENS))?,
        ignore_unknown_scopes: new.ignore_unknown_scopes,
        locale: new.locale.map(locale).transpose()?,
        refresh_retry_window: new.refresh_retry_window.map(retry_window).transpose()?,
        auth_method: method,
        jwks,
        jwks_uri,
        require_dpop: new.dpop_bound_access_tokens,
        tls_subject_dn: None,
        tls_bound_tokens: new.tls_client_certificate_bound_access_tokens,
        disabled_at: None,
        created_at: now,
        last_seen_at: None,
        previous_secret: None,
    })
}

/// What `client update` (`PATCH /admin/clients/{id}`) may change: any of create's settings but
/// the id and the secret. Absent fields stay as they are.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientChanges {
    pub grants: Option<Vec<String>>,
    pub scopes: Option<String>,
    pub audiences: Option<Vec<String>>,
    pub tenants: Option<Vec<String>>,
    /// Seconds; 0 goes back to the server's default.
    pub token_ttl: Option<i64>,
    pub refresh_tokens: Option<String>,
    pub ignore_unknown_scopes: Option<bool>,
    pub locale: Option<String>,
    pub refresh_retry_window: Option<i64>,
    pub token_endpoint_auth_method: Option<String>,
    /// A new public JWK Set for a `private_key_jwt` client (its `jwks_uri` is dropped).
    pub jwks: Option<serde_json::Value>,
    /// A new `jwks_uri` for a `private_key_jwt` client (its registered `jwks` is dropped).
    pub jwks_uri: Option<String>,
    #[serde(alias = "require_dpop")]
    pub dpop_bound_access_tokens: Option<bool>,
    /// A new subject DN for a `tls_client_auth` client.
    pub tls_client_auth_subject_dn: Option<String>,
    pub tls_client_certificate_bound_access_tokens: Option<bool>,
}

/// Applies `changes` to client `id`, checked as create checks them; returns the client as stored.
pub async fn update_client<S: Store>(db: &S, id: &str, changes: ClientChanges) -> Result<Client, AdminError> {
    let mut client = show_client(db, id).await?;
    if let Some(names) = &changes.grants {
        client.grants = grants(names)?;
    }
    if let Some(text) = &changes.scopes {
        client.scopes = scopes(text)?;
    }
    if let Some(values) = changes.audiences {
        client.audiences = audiences(values)?;
    }
    if let Some(names) = &changes.tenants {
        client.tenants = tenant_ids(db, names).await?;
    }
    if let Some(ttl) = changes.token_ttl {
        client.token_ttl = if ttl == 0 { None } else { token_ttl(Some(ttl))? };
    }
    if let Some(policy) = &changes.refresh_tokens {
        client.refresh_policy = refresh_policy(policy)?;
    }
    if let Some(ignore) = changes.ignore_unknown_scopes {
        client.ignore_unknown_scopes = ignore;
    }
    if let Some(text) = changes.locale {
        client.locale = Some(locale(text)?);
    }
    if let Some(window) = changes.refresh_retry_window {
        client.refresh_retry_window = Some(retry_window(window)?);
    }
    if let Some(method) = &changes.token_endpoint_auth_method {
        client.auth_method = Some(auth_method(method)?);
        if !matches!(client.auth_method, Some(AuthMethod::PrivateKeyJwt | AuthMethod::SelfSignedTlsClientAuth)) {
            // Its keys go with the method; it authenticates with a rotated secret from now on.
            client.jwks = None;
            client.jwks_uri = None;
        }
        if client.auth_method != Some(AuthMethod::TlsClientAuth) {
            client.tls_subject_dn = None;
        }
    }
    if let Some(set) = &changes.jwks {
        client.jwks = Some(jwks_text(set)?);
        client.jwks_uri = None;
    }
    if let Some(uri) = changes.jwks_uri {
        client.jwks_uri = Some(jwks_uri(uri)?);
        client.jwks = None;
    }
    if let Some(required) = changes.dpop_bound_access_tokens {
        client.require_dpop = required;
    }
    if let Some(dn) = changes.tls_client_auth_subject_dn {
        client.tls_subject_dn = Some(subject_dn(dn)?);
    }
    if let Some(bound) = changes.tls_client_certificate_bound_access_tokens {
        client.tls_bound_tokens = bound;
    }
    check_keys(client.auth_method, client.jwks.as_deref(), client.jwks_uri.as_deref())?;
    check_subject_dn(client.auth_method, client.tls_subject_dn.as_deref())?;
    db.update_client(&client).await?;
    db.announce(&Change::Client(client.id.clone())).await;
    Ok(client)
}

/// The client as stored (`NotFound` for an unknown id).
pub async fn show_client<S: Store>(db: &S, id: &str) -> Result<Client, AdminError> {
    db.find_client(id).await?.ok_or_else(|| AdminError::NotFound(format!("no client {id:?}")))
}

/// Disables a client (it is refused as unknown, its refresh tokens are revoked and its access
/// tokens are inactive at introspection) or enables it again (old tokens stay ended).
pub async fn set_client_enabled<S: Store>(db: &S, id: &str, enabled: bool, now: i64) -> Result<Client, AdminError> {
    let mut client = show_client(db, id).await?;
    client.disabled_at = if enabled { None } else { client.disabled_at.or(Some(now)) };
    db.update_client(&client).await?;
    if !enabled {
        end_tokens(db, TokenOwner::Client(id), now).await?;
    }
    db.announce(&Change::Client(client.id.clone())).await;
    Ok(client)
}

/// Deletes a client and ends its tokens; a client made later with the same id does not revive them.
pub async fn delete_client<S: Store>(db: &S, id: &str, now: i64) -> Result<(), AdminError> {
    show_client(db, id).await?;
    end_tokens(db, TokenOwner::Client(id), now).await?;
    db.delete_client(id).await?;
    db.announce(&Change::Client(id.to_owned())).await;
    Ok(())
}

/// A client as the admin API and `portero client show` print it (never its secret).
pub fn client_view(c: &Client) -> serde_json::Value {
    serde_json::json!({
        "client_id": c.id,
        "grants": c.grants.iter().map(|g| g.as_str()).collect::<Vec<_>>(),
        "scopes": c.scopes.join(" "),
        "audiences": c.audiences,
        "tenants": c.tenants,
        "token_ttl": c.token_ttl,
        "refresh_tokens": c.refresh_policy.as_str(),
        "ignore_unknown_scopes": c.ignore_unknown_scopes,
        "locale": c.locale,
        "token_endpoint_auth_method": c.auth_method.map(|m| m.as_str()),
        "jwks": c.jwks.as_deref().and_then(|text| serde_json::from_str::<serde_json::Value>(text).ok()),
        "jwks_uri": c.jwks_uri,
        "refresh_retry_window": c.refresh_retry_window,
        "dpop_bound_access_tokens": c.require_dpop,
        "tls_client_auth_subject_dn": c.tls_subject_dn,
        "tls_client_certificate_bound_access_tokens": c.tls_bound_tokens,
        "disabled": c.disabled_at.is_some(),
        "created_at": c.created_at,
    })
}

/// A user as the admin API and `portero user list` print it (never its password hash).
pub fn user_view(u: &User) -> serde_json::Value {
    serde_json::json!({ "id": u.id, "tenant_id": u.tenant_id, "username": u.username,
            "disabled": u.disabled_at.is_some(), "created_at": u.created_at })
}

/// Ends every token of a client or user: refresh tokens revoked, access tokens issued up to
/// `now` inactive at introspection. Returns how many refresh tokens were still unrevoked.
pub async fn end_tokens<S: Store>(db: &S, owner: TokenOwner<'_>, now: i64) -> Result<u64, AdminError> {
    db.revoke_issued_before(owner, now).await?;
    Ok(db.revoke_refresh_tokens_of(owner, now).await?)
}

pub(crate) fn grants(names: &[String]) -> Result<Vec<GrantType>, AdminError> {
    if names.is_empty() {
        return Err(invalid("give at least one grant: client_credentials, password, refresh_token"));
    }
    names
        .iter()
        .map(|g| {
            GrantType::parse(g.trim())
                .ok_or_else(|| invalid(format!("unknown grant {g:?}: use client_credentials, password, refresh_token")))
        })
        .collect()
}

pub(crate) fn scopes(text: &str) -> Result<Vec<String>, AdminError> {
    crate::scope::parse(text).map_err(|e| invalid(format!("scopes: {}", e.description)))
}

pub(crate) fn audiences(values: Vec<String>) -> Result<Vec<String>, AdminError> {
    for audience in &values {
        check_word("an audience", audience)?;
    }
    Ok(values)
}

/// Tenant ids for ids or names, each of which must exist.
async fn tenant_ids<S: Store>(db: &S, names: &[String]) -> Result<Vec<String>, AdminError> {
    let mut tenants = Vec::new();
    for t in names {
        let tenant = db.find_tenant(t).await?.ok_or_else(|| invalid(format!("no tenant {t:?}: create it first")))?;
        tenants.push(tenant.id);
    }
    Ok(tenants)
}

pub(crate) fn token_ttl(ttl: Option<i64>) -> Result<Option<i64>, AdminError> {
    if ttl.is_some_and(|ttl| !(1..=30 * 86_400).contains(&ttl)) {
        return Err(invalid("the token ttl must be between 1 and 2592000 seconds"));
    }
    Ok(ttl)
}

pub(crate) fn retry_window(window: i64) -> Result<i64, AdminError> {
    if !(0..=MAX_REFRESH_RETRY_WINDOW).contains(&window) {
        return Err(invalid("the refresh retry window must be between 0 and 3600 seconds"));
    }
    Ok(window)
}

pub(crate) fn auth_method(name: &str) -> Result<AuthMethod, AdminError> {
    AuthMethod::parse(name).ok_or_else(|| {
        let known: Vec<&str> = AuthMethod::ALL.iter().map(|m| m.as_str()).collect();
        invalid(format!("unknown authentication method {name:?}: use {}", known.join(", ")))
    })
}

/// A client's JWK Set as stored: a set of public keys Portero can verify with, at least one.
fn jwks_text(set: &serde_json::Value) -> Result<String, AdminError> {
    let keys = set
        .get("keys")
        .and_then(serde_json::Value::as_array)
        .ok_or_else(|| invalid("the JWK Set has no keys array"))?;
    if keys.iter().any(|k| k.get("d").is_some() || k.get("k").is_some()) {
        return Err(invalid("the JWK Set holds a private or symmetric key: register public keys only"));
    }
    let parsed = portero_wire::jws::Jwks::from_json(set).map_err(|e| invalid(format!("invalid JWK Set: {e}")))?;
    if parsed.is_empty() {
        return Err(invalid("the JWK Set has no usable key (RSA, EC P-256 or Ed25519 signature keys with a kid)"));
    }
    Ok(set.to_string())
}

/// Keys belong to `private_key_jwt` clients, and those need them.
fn check_keys(method: Option<AuthMethod>, jwks: Option<&str>, jwks_uri: Option<&str>) -> Result<(), AdminError> {
    let keyed = matches!(method, Some(AuthMethod::PrivateKeyJwt | AuthMethod::SelfSignedTlsClientAuth));
    if jwks_uri.is_some() && method != Some(AuthMethod::PrivateKeyJwt) {
        return Err(invalid("a jwks_uri is only for private_key_jwt clients"));
    }
    match (keyed, jwks.is_some(), jwks_uri.is_some()) {
        (true, false, false) => {
            Err(invalid("a private_key_jwt or self_signed_tls_client_auth client needs a JWK Set (jwks, or jwks_uri)"))
        }
        (_, true, true) => Err(invalid("give jwks or jwks_uri, not both")),
        (false, true, _) => {
            Err(invalid("a JWK Set is only for private_key_jwt and self_signed_tls_client_auth clients"))
        }
        _ => Ok(()),
    }
}

/// A `tls_client_auth` client has a subject DN, and no other client has one.
fn check_subject_dn(method: Option<AuthMethod>, dn: Option<&str>) -> Result<(), AdminError> {
    match (method == Some(AuthMethod::TlsClientAuth), dn.is_some()) {
        (true, false) => Err(invalid("a tls_client_auth client needs a subject DN (tls_client_auth_subject_dn)")),
        (false, true) => Err(invalid("a subject DN is only for tls_client_auth clients")),
        _ => Ok(()),
    }
}

/// A subject DN as given (trimmed), once it parses as RFC 4514 (it is compared normalized).
fn subject_dn(text: String) -> Result<String, AdminError> {
    crate::mtls::parse_dn(&text).map_err(|e| invalid(format!("tls_client_auth_subject_dn: {e}")))?;
    Ok(text.trim().to_owned())
}

fn jwks_uri(uri: String) -> Result<String, AdminError> {
    if !crate::remote_keys::acceptable_uri(&uri) {
        return Err(invalid("jwks_uri must be an https URL (http only to a loopback host)"));
    }
    Ok(uri)
}

pub(crate) fn refresh_policy(name: &str) -> Result<RefreshPolicy, AdminError> {
    RefreshPolicy::parse(name).ok_or_else(|| invalid("refresh tokens must be always, offline_access or never"))
}

pub(crate) fn locale(text: String) -> Result<String, AdminError> {
    let ok = (2..=16).contains(&text.len()) && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !ok {
        return Err(invalid("the locale must look like es_PE or en-US"));
    }
    Ok(text)
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
    if show_client(db, id).await?.auth_method == Some(AuthMethod::PrivateKeyJwt) {
        return Err(invalid("a private_key_jwt client has no secret: change its keys with jwks instead"));
    }
    let secret = generate_client_secret();
    let previous_expires_at = (overlap_seconds > 0).then_some(now + overlap_seconds);
    db.rotate_client_secret(id, &hash_generated_secret(&secret), previous_expires_at).await?;
    db.announce(&Change::Client(id.to_owned())).await;
    Ok(secret)
}

pub async fn create_user<S: Store>(
    db: &S,
    tenant: &str,
    username: &str,
    password: &str,
    now: i64,
) -> Result<User, AdminError> {
    check_password(password)?;
    create_user_with_hash(db, tenant, username, hash_password_async(password).await, now).await
}

/// Creates a user whose password is already hashed (see [`create_client_with_hash`]).
pub async fn create_user_with_hash<S: Store>(
    db: &S,
    tenant: &str,
    username: &str,
    password_hash: String,
    now: i64,
) -> Result<User, AdminError> {
    check_word("the username", username)?;
    let tenant = db.find_tenant(tenant).await?.ok_or_else(|| invalid(format!("no tenant {tenant:?}")))?;
    let user = User {
        id: uuid::Uuid::new_v4().to_string(),
        tenant_id: tenant.id,
        username: username.to_owned(),
        password_hash,
        disabled_at: None,
        last_seen_at: None,
        created_at: now,
    };
    db.create_user(&user).await.map_err(conflict("a user with this username in this tenant"))?;
    Ok(user)
}

/// The user `username` of tenant `tenant` (id or name).
pub async fn find_user<S: Store>(db: &S, tenant: &str, username: &str) -> Result<User, AdminError> {
    let tenant = db.find_tenant(tenant).await?.ok_or_else(|| AdminError::NotFound(format!("no tenant {tenant:?}")))?;
    let found = db.find_users(username, std::slice::from_ref(&tenant.id)).await?;
    found.into_iter().next().ok_or_else(|| AdminError::NotFound(format!("no user {username:?} in {:?}", tenant.name)))
}

/// The user with this id.
pub async fn user_by_id<S: Store>(db: &S, id: &str) -> Result<User, AdminError> {
    db.find_user(id).await?.ok_or_else(|| AdminError::NotFound(format!("no user {id:?}")))
}

/// The users of a tenant (id or name), by username.
pub async fn list_users<S: Store>(db: &S, tenant: &str) -> Result<Vec<User>, AdminError> {
    let tenant = db.find_tenant(tenant).await?.ok_or_else(|| AdminError::NotFound(format!("no tenant {tenant:?}")))?;
    Ok(db.list_users(&tenant.id).await?)
}

/// Gives a user a new password; every refresh-token family of the user ends.
pub async fn set_password<S: Store>(db: &S, id: &str, password: &str, now: i64) -> Result<User, AdminError> {
    check_password(password)?;
    let mut user = user_by_id(db, id).await?;
    user.password_hash = hash_password_async(password).await;
    db.update_user(&user).await?;
    db.revoke_refresh_tokens_of(TokenOwner::User(id), now).await?;
    Ok(user)
}

/// Disables a user (the password grant refuses it as unknown; its tokens end) or enables it.
pub async fn set_user_enabled<S: Store>(db: &S, id: &str, enabled: bool, now: i64) -> Result<User, AdminError> {
    let mut user = user_by_id(db, id).await?;
    user.disabled_at = if enabled { None } else { user.disabled_at.or(Some(now)) };
    db.update_user(&user).await?;
    if !enabled {
        end_tokens(db, TokenOwner::User(id), now).await?;
    }
    Ok(user)
}

/// Deletes a user and ends its tokens.
pub async fn delete_user<S: Store>(db: &S, id: &str, now: i64) -> Result<(), AdminError> {
    user_by_id(db, id).await?;
    end_tokens(db, TokenOwner::User(id), now).await?;
    Ok(db.delete_user(id).await?)
}

/// Deletes a tenant (id or name) that nothing belongs to any more; otherwise names what does.
pub async fn delete_tenant<S: Store>(db: &S, id_or_name: &str) -> Result<Tenant, AdminError> {
    let tenant =
        db.find_tenant(id_or_name).await?.ok_or_else(|| AdminError::NotFound(format!("no tenant {id_or_name:?}")))?;
    let clients: Vec<String> =
        db.list_clients().await?.into_iter().filter(|c| c.tenants.contains(&tenant.id)).map(|c| c.id).collect();
    let users = db.list_users(&tenant.id).await?;
    if !clients.is_empty() || !users.is_empty() {
        let mut parts = Vec::new();
        if !clients.is_empty() {
            parts.push(format!("{} client(s): {}", clients.len(), clients.join(", ")));
        }
        if !users.is_empty() {
            let names: Vec<&str> = users.iter().take(10).map(|u| u.username.as_str()).collect();
            let more = if users.len() > names.len() { ", ..." } else { "" };
            parts.push(format!("{} user(s): {}{more}", users.len(), names.join(", ")));
        }
        return Err(AdminError::InUse(format!(
            "tenant {:?} still has {}; delete them or move the clients to another tenant first",
            tenant.name,
            parts.join(" and ")
        )));
    }
    db.delete_tenant(&tenant.id).await?;
    Ok(tenant)
}

/// Whose tokens `tokens revoke` ends: a client, or a user of a tenant.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Revocation {
    pub client_id: Option<String>,
    pub tenant: Option<String>,
    pub username: Option<String>,
}

/// Ends every refresh family and makes every live access token inactive, of one client or one
/// user. Returns the owner as text and how many refresh tokens were revoked.
pub async fn revoke_tokens<S: Store>(db: &S, revocation: &Revocation, now: i64) -> Result<(String, u64), AdminError> {
    match (&revocation.client_id, &revocation.tenant, &revocation.username) {
        (Some(id), None, None) => {
            show_client(db, id).await?;
            Ok((format!("client {id}"), end_tokens(db, TokenOwner::Client(id), now).await?))
        }
        (None, Some(tenant), Some(username)) => {
            let user = find_user(db, tenant, username).await?;
            Ok((format!("user {}", user.id), end_tokens(db, TokenOwner::User(&user.id), now).await?))
        }
        _ => Err(invalid("give a client id, or a tenant and a username")),
    }
}

/// The emergency path: the key leaves the JWKS and stops signing now, and the tokens it signed
/// stop verifying (inactive at introspection). When it was the signing key, a new key of the
/// same algorithm is made first and signs at once. Returns that new key, if one was made.
pub async fn revoke_key<S: Store>(
    db: &S,
    master: &MasterKey,
    kid: &str,
    now: i64,
) -> Result<Option<StoredKey>, AdminError> {
    let keys = db.list_keys().await?;
    let live: Vec<&StoredKey> = keys.iter().filter(|k| k.retired_at.is_none()).collect();
    let key = live.iter().find(|k| k.kid == kid).ok_or_else(|| AdminError::NotFound(format!("no live key {kid:?}")))?;
    let signing = live.iter().filter(|k| k.activate_at <= now).max_by_key(|k| (k.activate_at, k.created_at));
    let replacement = if signing.is_some_and(|s| s.kid == kid) {
        let fresh = SigningKey::generate(Alg::parse(&key.alg)?, master, now, now)?;
        db.insert_key(&fresh).await?;
        Some(fresh)
    } else {
        None
    };
    db.retire_key(kid, now).await?;
    db.announce(&Change::Keys).await;
    Ok(replacement)
}

fn check_password(password: &str) -> Result<(), AdminError> {
    if password.is_empty() || password.len() > 1024 {
        return Err(invalid("the password must be 1 to 1024 bytes"));
    }
    Ok(())
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
    db.announce(&Change::Keys).await;
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
