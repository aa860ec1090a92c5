//! Bulk import (issue 14): a provider's tenants, clients and users, with the hashes it already
//! has, as JSON Lines named as the admin API's bodies:
//!
//! ```text
//! {"kind":"tenant","name":"netpay","id":"0f8fad5b-d9cb-469f-a165-70867728950e"}
//! {"kind":"client","id":"trusted-app","grants":["password"],"scopes":"sale","tenants":["netpay"],"secret_hash":"{bcrypt}$2a$10$..."}
//! {"kind":"user","tenant":"netpay","username":"merchant01","password_hash":{"algorithm":"pbkdf2-sha256","iterations":27500,"salt":"..","value":".."}}
//! ```
//!
//! The whole file is checked before anything is written, and written in one transaction
//! (`MigrationStore::write_import`) or not at all: every bad row is reported with its line
//! number and why. Checking runs no slow hash: hashes are parsed and bounded by `legacy_hash`,
//! and kept as they are until the first successful login replaces them (`crate::rehash`).
//! The exception is `plain:` secrets, which are hashed with argon2id here, on a few threads
//! (about 30 ms each, so they are for a handful of clients, not for 100,000 users).
//!
//! Re-importing the same file changes nothing: each row's digest (SHA-256 of the row as read,
//! its hash in stored form; never of a plaintext) is kept beside it, and a row whose digest is
//! unchanged is `unchanged`, even after its user logged in and was rehashed. A row that differs
//! from what exists is an error unless `update` is set, when it replaces it (the user keeps its
//! id; its tokens are not ended). A `plain:` row is unchanged when its secret still verifies.

mod status;

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use status::{TenantStatus, status};

use crate::admin::{self, AdminError};
use crate::client_auth::AuthMethod;
use crate::legacy_hash::LegacyHash;
use crate::password_hash::{S256_PREFIX, is_s256};
use crate::secret::{hash_password, sha256_b64, verify_blocking};
use crate::store::{Change, Client, ExistingUser, ImportBatch, ImportedClient, ImportedUser, Store, Tenant, User};

/// Longest line accepted, in bytes.
pub const MAX_LINE_BYTES: usize = 64 * 1024;
/// Most rows in one file.
pub const MAX_ROWS: usize = 2_000_000;
/// Most errors listed in a report (the rest are counted).
pub const MAX_ERRORS_SHOWN: usize = 1_000;

/// How to import.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Check and report, write nothing.
    pub dry_run: bool,
    /// Apply rows that differ from what exists (otherwise each is an error).
    pub update: bool,
}

/// Rows per kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub tenants: u64,
    pub clients: u64,
    pub users: u64,
}

/// A row that cannot be imported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowError {
    pub line: usize,
    pub error: String,
}

/// What an import did, or (dry run, or errors) would do.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    pub dry_run: bool,
    /// Whether anything was written (false with errors, on a dry run, and when nothing changed).
    pub written: bool,
    pub created: Counts,
    pub updated: Counts,
    pub unchanged: Counts,
    /// `plain:` secrets hashed with argon2id (or on a dry run, to hash).
    pub plain_hashed: u64,
    pub errors: Vec<RowError>,
    /// Errors beyond the first [`MAX_ERRORS_SHOWN`].
    pub errors_not_shown: u64,
}

impl Report {
    fn error(&mut self, line: usize, error: impl Into<String>) {
        if self.errors.len() < MAX_ERRORS_SHOWN {
            self.errors.push(RowError { line, error: error.into() });
        } else {
            self.errors_not_shown += 1;
        }
    }

    pub fn has_errors(&self) -> bool {
        !self.errors.is_empty()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantRow {
    name: String,
    id: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientRow {
    id: String,
    secret_hash: Value,
    grants: Vec<String>,
    #[serde(default)]
    scopes: String,
    #[serde(default)]
    audiences: Vec<String>,
    #[serde(default)]
    tenants: Vec<String>,
    token_ttl: Option<i64>,
    refresh_tokens: Option<String>,
    #[serde(default)]
    ignore_unknown_scopes: bool,
    locale: Option<String>,
    refresh_retry_window: Option<i64>,
    token_endpoint_auth_method: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserRow {
    tenant: String,
    username: String,
    password_hash: Value,
}

enum Row {
    Tenant(TenantRow),
    Client(Box<ClientRow>),
    User(UserRow),
}

/// One line: a JSON object with a `kind`.
fn parse_line(text: &str) -> Result<Row, String> {
    if text.len() > MAX_LINE_BYTES {
        return Err(format!("the line is longer than {MAX_LINE_BYTES} bytes"));
    }
    let mut value: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let object = value.as_object_mut().ok_or("not a JSON object")?;
    let kind = object.remove("kind").ok_or("no \"kind\" (tenant, client or user)")?;
    // Serde's messages name the field at fault, never quote a value (a hash or secret).
    let typed = |e: serde_json::Error| e.to_string();
    match kind.as_str() {
        Some("tenant") => serde_json::from_value(value).map(Row::Tenant).map_err(typed),
        Some("client") => serde_json::from_value(value).map(|row| Row::Client(Box::new(row))).map_err(typed),
        Some("user") => serde_json::from_value(value).map(Row::User).map_err(typed),
        _ => Err("\"kind\" must be tenant, client or user".to_owned()),
    }
}

/// A hash as the store keeps it, or a plaintext still to hash.
enum Secret {
    Stored(String),
    Plain(crate::legacy_hash::PlainSecret),
}

/// A client's `secret_hash`: what a user's password may be, or Portero's own `$s256$` (a
/// client moved from another Portero, or whose random secret its provider hashed that way).
/// Only clients: a fast hash suits a random secret, not a password someone chose.
fn client_secret(value: &Value) -> Result<Secret, String> {
    match value.as_str().filter(|text| text.starts_with(S256_PREFIX)) {
        Some(text) if is_s256(text) => Ok(Secret::Stored(text.to_owned())),
        Some(_) => {
            Err("malformed $s256$ hash: expected $s256$<base64url salt of 16-64 bytes>$<base64url SHA-256>".into())
        }
        None => secret(value),
    }
}

/// A legacy hash in the form it is kept in, or a plaintext to hash.
fn secret(value: &Value) -> Result<Secret, String> {
    let hash = LegacyHash::from_json(value).map_err(|e| e.to_string())?;
    match (hash.to_stored(), hash) {
        (Some(stored), _) => Ok(Secret::Stored(stored)),
        (None, LegacyHash::Plain(plain)) => Ok(Secret::Plain(plain)),
        (None, _) => Err("this hash has no stored form".to_owned()),
    }
}

/// The digest a row is recognised by on the next import: SHA-256 of its fields as read (the
/// hash in stored form, a plaintext as the word `plain`).
fn digest(fields: Value) -> String {
    sha256_b64(fields.to_string().as_bytes())
}

/// What the file asks for a client or user, against what exists.
enum Plan {
    Create,
    Replace,
    Unchanged,
    /// A `plain:` row whose digest is unchanged: unchanged if the stored hash verifies it.
    VerifyPlain(String),
}

fn plan(exists: bool, stored_digest: Option<&str>, digest: &str, plain: Option<&str>) -> Plan {
    match (exists, stored_digest == Some(digest), plain) {
        (false, _, _) => Plan::Create,
        (true, true, Some(hash)) => Plan::VerifyPlain(hash.to_owned()),
        (true, true, None) => Plan::Unchanged,
        (true, false, _) => Plan::Replace,
    }
}

/// A client or user row, checked, waiting for its plaintext (if any) to be verified or hashed.
struct Pending<T> {
    line: usize,
    item: T,
    digest: String,
    plain: Option<crate::legacy_hash::PlainSecret>,
    plan: Plan,
}

/// Reads `text` and imports it into `db` (see the module documentation). `Ok` with errors in
/// the report for a bad file (nothing written); `Err` when the store fails.
pub async fn import<S: Store>(db: &S, text: &str, options: Options, now: i64) -> Result<Report, AdminError> {
    let mut report = Report { dry_run: options.dry_run, ..Report::default() };
    let mut rows = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line_number = index + 1;
        if line.trim().is_empty() {
            continue;
        }
        if rows.len() >= MAX_ROWS {
            report.error(line_number, format!("more than {MAX_ROWS} rows: split the file"));
            return Ok(report);
        }
        match parse_line(line) {
            Ok(row) => rows.push((line_number, row)),
            Err(error) => report.error(line_number, error),
        }
    }

    // Tenants: those that exist, and the new ones of the file.
    let known = db.list_tenants().await?;
    let mut by_name: HashMap<String, String> = known.iter().map(|t| (t.name.clone(), t.id.clone())).collect();
    let mut by_id: HashMap<String, String> = known.iter().map(|t| (t.id.clone(), t.name.clone())).collect();
    let mut new_tenants = Vec::new();
    let mut seen_tenants = HashSet::new();
    for (line, row) in &rows {
        let Row::Tenant(row) = row else { continue };
        match check_tenant(row, &by_name, &by_id) {
            Err(error) => report.error(*line, error),
            Ok(_) if !seen_tenants.insert(row.name.clone()) => {
                report.error(*line, format!("tenant {:?} appears twice in the file", row.name));
            }
            Ok(None) => report.unchanged.tenants += 1,
            Ok(Some(id)) => {
                if by_id.contains_key(&id) {
                    report.error(*line, format!("tenant id {id} appears twice in the file"));
                    continue;
                }
                by_name.insert(row.name.clone(), id.clone());
                by_id.insert(id.clone(), row.name.clone());
                new_tenants.push(Tenant { id, name: row.name.clone(), created_at: now });
            }
        }
    }
    // As `find_tenant` does: an id first, then a name.
    let resolve = |reference: &str| -> Result<String, String> {
        if by_id.contains_key(reference) {
            return Ok(reference.to_owned());
        }
        by_name
            .get(reference)
            .cloned()
            .ok_or_else(|| format!("no tenant {reference:?}: create it first, or add a tenant row"))
    };

    // Clients.
    let existing: HashMap<String, Client> = db.list_clients().await?.into_iter().map(|c| (c.id.clone(), c)).collect();
    let digests = db.client_import_digests().await?;
    let mut clients = Vec::new();
    let mut seen_clients = HashSet::new();
    for (line, row) in &rows {
        let Row::Client(row) = row else { continue };
        if !seen_clients.insert(row.id.clone()) {
            report.error(*line, format!("client {:?} appears twice in the file", row.id));
            continue;
        }
        match check_client(row, &resolve, now) {
            Err(error) => report.error(*line, error),
            Ok((client, secret)) => {
                let (plain, stored) = match secret {
                    Secret::Stored(hash) => (None, hash),
                    Secret::Plain(plain) => (Some(plain), String::new()),
                };
                let digest = digest(client_fields(&client, if plain.is_some() { "plain" } else { &stored }));
                let current = existing.get(&client.id);
                let plan = plan(
                    current.is_some(),
                    digests.get(&client.id).map(String::as_str),
                    &digest,
                    current.filter(|_| plain.is_some()).map(|c| c.secret_hash.as_str()),
                );
                let client =
                    Client { secret_hash: stored, created_at: current.map_or(now, |c| c.created_at), ..client };
                clients.push(Pending { line: *line, item: client, digest, plain, plan });
            }
        }
    }

    // Users.
    let tenant_ids: Vec<String> = rows
        .iter()
        .filter_map(|(_, row)| match row {
            Row::User(user) => resolve(&user.tenant).ok(),
            _ => None,
        })
        .collect::<HashSet<_>>()
        .into_iter()
        .filter(|id| known.iter().any(|t| &t.id == id))
        .collect();
    let existing_users: HashMap<(String, String), ExistingUser> = db
        .users_for_import(&tenant_ids)
        .await?
        .into_iter()
        .map(|u| ((u.tenant_id.clone(), u.username.clone()), u))
        .collect();
    let mut users = Vec::new();
    let mut seen_users = HashSet::new();
    for (line, row) in &rows {
        let Row::User(row) = row else { continue };
        let checked = resolve(&row.tenant).and_then(|tenant_id| {
            admin::check_word("the username", &row.username).map_err(|e| e.to_string())?;
            Ok((tenant_id, secret(&row.password_hash).map_err(|e| format!("password_hash: {e}"))?))
        });
        let (tenant_id, secret) = match checked {
            Ok(checked) => checked,
            Err(error) => {
                report.error(*line, error);
                continue;
            }
        };
        let key = (tenant_id.clone(), row.username.clone());
        if !seen_users.insert(key.clone()) {
            report
                .error(*line, format!("user {:?} of tenant {:?} appears twice in the file", row.username, row.tenant));
            continue;
        }
        let (plain, stored) = match secret {
            Secret::Stored(hash) => (None, hash),
            Secret::Plain(plain) => (Some(plain), String::new()),
        };
        let digest =
            digest(serde_json::json!([tenant_id, row.username, if plain.is_some() { "plain" } else { &stored }]));
        let current = existing_users.get(&key);
        let plan = plan(
            current.is_some(),
            current.and_then(|u| u.digest.as_deref()),
            &digest,
            current.filter(|_| plain.is_some()).map(|u| u.password_hash.as_str()),
        );
        let user = User {
            id: current.map_or_else(|| uuid::Uuid::new_v4().to_string(), |u| u.id.clone()),
            tenant_id,
            username: row.username.clone(),
            password_hash: stored,
            disabled_at: None,
            last_seen_at: None,
            created_at: current.map_or(now, |u| u.created_at),
        };
        users.push(Pending { line: *line, item: user, digest, plain, plan });
    }

    // The slow part, only for `plain:` rows: verify those that may be unchanged.
    let to_verify: Vec<(usize, String, String)> = clients
        .iter()
        .filter_map(|p| match (&p.plan, &p.plain) {
            (Plan::VerifyPlain(hash), Some(plain)) => Some((p.line, plain.expose().to_owned(), hash.clone())),
            _ => None,
        })
        .chain(users.iter().filter_map(|p| match (&p.plan, &p.plain) {
            (Plan::VerifyPlain(hash), Some(plain)) => Some((p.line, plain.expose().to_owned(), hash.clone())),
            _ => None,
        }))
        .collect();
    let verified: HashSet<usize> =
        run_slow(to_verify, |(line, plain, hash)| verify_blocking(&plain, &hash).then_some(line))
            .await?
            .into_iter()
            .flatten()
            .collect();
    let settled =
        clients.iter_mut().map(|p| (&mut p.plan, p.line)).chain(users.iter_mut().map(|p| (&mut p.plan, p.line)));
    for (plan, line) in settled {
        if matches!(plan, Plan::VerifyPlain(_)) {
            *plan = if verified.contains(&line) { Plan::Unchanged } else { Plan::Replace };
        }
    }

    // Differences are errors unless asked for; count the rest.
    let plans = clients
        .iter()
        .map(|p| (p.line, &p.plan, "client", p.item.id.as_str()))
        .chain(users.iter().map(|p| (p.line, &p.plan, "user", p.item.username.as_str())));
    let mut differences = Vec::new();
    for (line, plan, kind, name) in plans {
        let (created, updated, unchanged) = if kind == "client" {
            (&mut report.created.clients, &mut report.updated.clients, &mut report.unchanged.clients)
        } else {
            (&mut report.created.users, &mut report.updated.users, &mut report.unchanged.users)
        };
        match plan {
            Plan::Create => *created += 1,
            Plan::Unchanged | Plan::VerifyPlain(_) => *unchanged += 1,
            Plan::Replace if options.update => *updated += 1,
            Plan::Replace => differences.push((
                line,
                format!("{kind} {name:?} exists and differs from this row: use --update (update=true) to apply it"),
            )),
        }
    }
    for (line, error) in differences {
        report.error(line, error);
    }
    report.created.tenants = new_tenants.len() as u64;
    let to_write = |plan: &Plan| matches!(plan, Plan::Create | Plan::Replace);
    report.plain_hashed = clients.iter().filter(|p| to_write(&p.plan) && p.plain.is_some()).count() as u64
        + users.iter().filter(|p| to_write(&p.plan) && p.plain.is_some()).count() as u64;
    report.errors.sort_by_key(|e| e.line);
    if report.has_errors() || options.dry_run {
        return Ok(report);
    }

    // Hash what is written from a plaintext, then write everything at once.
    let clients: Vec<Pending<Client>> = clients.into_iter().filter(|p| to_write(&p.plan)).collect();
    let users: Vec<Pending<User>> = users.into_iter().filter(|p| to_write(&p.plan)).collect();
    if new_tenants.is_empty() && clients.is_empty() && users.is_empty() {
        return Ok(report);
    }
    let plaintexts: Vec<(usize, String)> = clients
        .iter()
        .enumerate()
        .filter_map(|(i, p)| p.plain.as_ref().map(|s| (i, s.expose().to_owned())))
        .chain(
            users
                .iter()
                .enumerate()
                .filter_map(|(i, p)| p.plain.as_ref().map(|s| (clients.len() + i, s.expose().to_owned()))),
        )
        .collect();
    let hashes: HashMap<usize, String> =
        run_slow(plaintexts, |(i, plain)| (i, hash_password(&plain))).await?.into_iter().collect();
    let client_count = clients.len();
    let batch = ImportBatch {
        tenants: new_tenants,
        clients: clients
            .into_iter()
            .enumerate()
            .map(|(i, p)| {
                let replaces = matches!(p.plan, Plan::Replace);
                let mut client = p.item;
                if let Some(hash) = hashes.get(&i) {
                    client.secret_hash = hash.clone();
                }
                ImportedClient { client, digest: p.digest, replaces }
            })
            .collect(),
        users: users
            .into_iter()
            .enumerate()
            .map(|(i, p)| {
                let replaces = matches!(p.plan, Plan::Replace);
                let mut user = p.item;
                if let Some(hash) = hashes.get(&(client_count + i)) {
                    user.password_hash = hash.clone();
                }
                ImportedUser { user, digest: p.digest, replaces }
            })
            .collect(),
        at: now,
    };
    db.write_import(&batch).await?;
    report.written = true;
    for imported in batch.clients.iter().filter(|c| c.replaces) {
        db.announce(&Change::Client(imported.client.id.clone())).await;
    }
    Ok(report)
}

/// `None` when the tenant exists as the row says (unchanged); `Some(id)` for a new one.
fn check_tenant(
    row: &TenantRow,
    by_name: &HashMap<String, String>,
    by_id: &HashMap<String, String>,
) -> Result<Option<String>, String> {
    admin::check_word("the tenant name", &row.name).map_err(|e| e.to_string())?;
    let id = match &row.id {
        Some(id) => Some(uuid::Uuid::parse_str(id).map_err(|_| "the tenant id must be a UUID")?.to_string()),
        None => None,
    };
    match (by_name.get(&row.name), &id) {
        (Some(existing), Some(id)) if existing != id => {
            Err(format!("tenant {:?} exists with another id ({existing}); import does not change tenant ids", row.name))
        }
        (Some(_), _) => Ok(None),
        (None, Some(id)) if by_id.contains_key(id) => Err(format!(
            "tenant id {id} exists as {:?}; import does not rename tenants",
            by_id.get(id).map_or("", String::as_str)
        )),
        (None, id) => Ok(Some(id.clone().unwrap_or_else(|| uuid::Uuid::new_v4().to_string()))),
    }
}

/// A client row as a client (secret hash left empty) and its secret; the reason when it is bad.
fn check_client(
    row: &ClientRow,
    resolve: &impl Fn(&str) -> Result<String, String>,
    now: i64,
) -> Result<(Client, Secret), String> {
    let text = |e: AdminError| e.to_string();
    admin::check_word("the client id", &row.id).map_err(text)?;
    if row.id.contains(':') {
        return Err("the client id must not contain ':' (it could not travel in a Basic header)".to_owned());
    }
    let auth_method = row.token_endpoint_auth_method.as_deref().map(admin::auth_method).transpose().map_err(text)?;
    if auth_method == Some(AuthMethod::PrivateKeyJwt) {
        return Err("private_key_jwt clients are not imported: create them with their JWK Set".to_owned());
    }
    let secret = client_secret(&row.secret_hash).map_err(|e| format!("secret_hash: {e}"))?;
    let tenants = row.tenants.iter().map(|t| resolve(t)).collect::<Result<Vec<_>, _>>()?;
    let client = Client {
        id: row.id.clone(),
        secret_hash: String::new(),
        grants: admin::grants(&row.grants).map_err(text)?,
        scopes: admin::scopes(&row.scopes).map_err(text)?,
        audiences: admin::audiences(row.audiences.clone()).map_err(text)?,
        tenants,
        token_ttl: admin::token_ttl(row.token_ttl).map_err(text)?,
        refresh_policy: admin::refresh_policy(row.refresh_tokens.as_deref().unwrap_or(admin::DEFAULT_REFRESH_TOKENS))
            .map_err(text)?,
        ignore_unknown_scopes: row.ignore_unknown_scopes,
        locale: row.locale.clone().map(admin::locale).transpose().map_err(text)?,
        auth_method,
        refresh_retry_window: row.refresh_retry_window.map(admin::retry_window).transpose().map_err(text)?,
        disabled_at: None,
        jwks: None,
        jwks_uri: None,
        require_dpop: false,
        tls_subject_dn: None,
        tls_bound_tokens: false,
        last_seen_at: None,
        created_at: now,
        previous_secret: None,
    };
    Ok((client, secret))
}

/// What a client row's digest covers: every setting as resolved, and its hash.
fn client_fields(client: &Client, hash: &str) -> Value {
    serde_json::json!([
        client.id,
        hash,
        client.grants.iter().map(|g| g.as_str()).collect::<Vec<_>>(),
        client.scopes,
        client.audiences,
        client.tenants,
        client.token_ttl,
        client.refresh_policy.as_str(),
        client.ignore_unknown_scopes,
        client.locale,
        client.refresh_retry_window,
        client.auth_method.map(|m| m.as_str()),
    ])
}

/// Runs `work` over `items` on a few blocking threads (argon2: one per core, at most 8).
async fn run_slow<T, R>(items: Vec<T>, work: fn(T) -> R) -> Result<Vec<R>, AdminError>
where
    T: Send + 'static,
    R: Send + 'static,
{
    if items.is_empty() {
        return Ok(Vec::new());
    }
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(1, 8);
    tokio::task::spawn_blocking(move || {
        let queue = std::sync::Mutex::new(items.into_iter());
        let results = std::sync::Mutex::new(Vec::new());
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|| {
                    loop {
                        let next = queue.lock().ok().and_then(|mut q| q.next());
                        let Some(item) = next else { return };
                        let result = work(item);
                        if let Ok(mut results) = results.lock() {
                            results.push(result);
                        }
                    }
                });
            }
        });
        results.into_inner().unwrap_or_default()
    })
    .await
    .map_err(|e| AdminError::Store(crate::store::StoreError::Other(format!("hashing plain secrets failed: {e}"))))
}
