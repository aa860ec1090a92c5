//! Row types as the database returns them, and their conversion to the core's types.

use portero_core::audit::AuditEvent;
use portero_core::client_auth::AuthMethod;
use portero_core::grant::GrantType;
use portero_core::store::{
    Client, PreviousSecret, RefreshPolicy, RefreshTokenRecord, StoreError, StoredKey, Tenant, User,
};

/// Lists are stored space-separated.
pub(crate) fn join(values: &[String]) -> String {
    values.join(" ")
}

fn split(value: &str) -> Vec<String> {
    value.split(' ').filter(|v| !v.is_empty()).map(str::to_owned).collect()
}

#[derive(sqlx::FromRow)]
pub(crate) struct TenantRow {
    id: String,
    name: String,
    created_at: i64,
}

impl From<TenantRow> for Tenant {
    fn from(row: TenantRow) -> Self {
        Self { id: row.id, name: row.name, created_at: row.created_at }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ClientRow {
    id: String,
    secret_hash: String,
    grants: String,
    scopes: String,
    audiences: String,
    tenants: String,
    token_ttl: Option<i64>,
    refresh_policy: String,
    ignore_unknown_scopes: bool,
    locale: Option<String>,
    created_at: i64,
    previous_secret_hash: Option<String>,
    previous_secret_expires_at: Option<i64>,
    refresh_retry_window: Option<i64>,
    token_endpoint_auth_method: Option<String>,
    disabled_at: Option<i64>,
    jwks: Option<String>,
    require_dpop: bool,
    tls_client_auth_subject_dn: Option<String>,
    tls_client_certificate_bound_access_tokens: bool,
    jwks_uri: Option<String>,
    last_seen_at: Option<i64>,
}

impl TryFrom<ClientRow> for Client {
    type Error = StoreError;

    fn try_from(row: ClientRow) -> Result<Self, StoreError> {
        let corrupt = |what: &str| StoreError::Other(format!("client {:?} has an invalid {what}", row.id));
        let grants = split(&row.grants)
            .iter()
            .map(|g| GrantType::parse(g).ok_or_else(|| corrupt("grant type")))
            .collect::<Result<Vec<_>, _>>()?;
        let refresh_policy = RefreshPolicy::parse(&row.refresh_policy).ok_or_else(|| corrupt("refresh policy"))?;
        let auth_method = match row.token_endpoint_auth_method.as_deref() {
            None => None,
            Some(name) => Some(AuthMethod::parse(name).ok_or_else(|| corrupt("authentication method"))?),
        };
        Ok(Self {
            grants,
            refresh_policy,
            scopes: split(&row.scopes),
            audiences: split(&row.audiences),
            tenants: split(&row.tenants),
            id: row.id,
            secret_hash: row.secret_hash,
            token_ttl: row.token_ttl,
            ignore_unknown_scopes: row.ignore_unknown_scopes,
            locale: row.locale,
            refresh_retry_window: row.refresh_retry_window,
            disabled_at: row.disabled_at,
            jwks: row.jwks,
            require_dpop: row.require_dpop,
            tls_subject_dn: row.tls_client_auth_subject_dn,
            tls_bound_tokens: row.tls_client_certificate_bound_access_tokens,
            jwks_uri: row.jwks_uri,
            last_seen_at: row.last_seen_at,
            auth_method,
            created_at: row.created_at,
            previous_secret: match (row.previous_secret_hash, row.previous_secret_expires_at) {
                (Some(hash), Some(expires_at)) => Some(PreviousSecret { hash, expires_at }),
                _ => None,
            },
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct UserRow {
    id: String,
    tenant_id: String,
    username: String,
    password_hash: String,
    disabled_at: Option<i64>,
    created_at: i64,
    last_seen_at: Option<i64>,
}

impl From<UserRow> for User {
    fn from(row: UserRow) -> Self {
        Self {
            id: row.id,
            tenant_id: row.tenant_id,
            username: row.username,
            password_hash: row.password_hash,
            disabled_at: row.disabled_at,
            last_seen_at: row.last_seen_at,
            created_at: row.created_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct RefreshRow {
    hash: String,
    family_id: String,
    client_id: String,
    subject: String,
    user_id: Option<String>,
    tenants: String,
    scopes: String,
    audiences: String,
    auth_time: i64,
    created_at: i64,
    expires_at: i64,
    used_at: Option<i64>,
    revoked_at: Option<i64>,
    jkt: Option<String>,
}

impl RefreshRow {
    /// The columns of `sqlite_reads::FIND_REFRESH`, in its order.
    pub(crate) fn from_rusqlite(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            hash: row.get(0)?,
            family_id: row.get(1)?,
            client_id: row.get(2)?,
            subject: row.get(3)?,
            user_id: row.get(4)?,
            tenants: row.get(5)?,
            scopes: row.get(6)?,
            audiences: row.get(7)?,
            auth_time: row.get(8)?,
            created_at: row.get(9)?,
            expires_at: row.get(10)?,
            used_at: row.get(11)?,
            revoked_at: row.get(12)?,
            jkt: row.get(13)?,
        })
    }
}

impl From<RefreshRow> for RefreshTokenRecord {
    fn from(row: RefreshRow) -> Self {
        Self {
            tenants: split(&row.tenants),
            scopes: split(&row.scopes),
            audiences: split(&row.audiences),
            hash: row.hash,
            family_id: row.family_id,
            client_id: row.client_id,
            subject: row.subject,
            user_id: row.user_id,
            auth_time: row.auth_time,
            created_at: row.created_at,
            expires_at: row.expires_at,
            used_at: row.used_at,
            revoked_at: row.revoked_at,
            jkt: row.jkt,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct KeyRow {
    kid: String,
    alg: String,
    sealed_private_key: String,
    created_at: i64,
    activate_at: i64,
    retired_at: Option<i64>,
}

impl From<KeyRow> for StoredKey {
    fn from(row: KeyRow) -> Self {
        Self {
            kid: row.kid,
            alg: row.alg,
            sealed_private_key: row.sealed_private_key,
            created_at: row.created_at,
            activate_at: row.activate_at,
            retired_at: row.retired_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct AuditRow {
    id: String,
    at: i64,
    kind: String,
    outcome: String,
    client_id: Option<String>,
    subject: Option<String>,
    grant_type: Option<String>,
    source: Option<String>,
    detail: Option<String>,
    count: i64,
    authenticated: bool,
}

impl From<AuditRow> for AuditEvent {
    fn from(row: AuditRow) -> Self {
        Self {
            id: row.id,
            at: row.at,
            kind: row.kind,
            outcome: row.outcome,
            client_id: row.client_id,
            subject: row.subject,
            grant_type: row.grant_type,
            source: row.source,
            detail: row.detail,
            count: row.count,
            authenticated: row.authenticated,
        }
    }
}
