//! The audit trail's records: one event (or a count of alike events) and the query that lists
//! them. Leaf types, so storage can hold them without depending on the writer in `audit`.

/// One audited event, or (`count` > 1) a count of alike events. Never holds a secret, password or
/// token value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    pub id: String,
    /// When it happened (for a count: when the first of them happened).
    pub at: i64,
    /// `token_issued`, `token_refused`, `throttled`, `refresh_reuse`, `token_revoked`,
    /// `introspection_refused`, `revocation_refused` or `admin_action`.
    pub kind: String,
    /// `issued`, `revoked`, or the RFC error code.
    pub outcome: String,
    /// The authenticated client (or for reuse, the token's owner); or, with `authenticated`
    /// false, the id a caller presented without proving it.
    pub client_id: Option<String>,
    pub subject: Option<String>,
    pub grant_type: Option<String>,
    pub source: Option<String>,
    pub detail: Option<String>,
    /// How many events this row stands for (1 unless aggregated).
    pub count: i64,
    /// False when `client_id` was presented but not proven.
    pub authenticated: bool,
}

impl AuditEvent {
    pub fn new(at: i64, kind: &str, outcome: impl Into<String>) -> Self {
        Self {
            id: uuid::Uuid::now_v7().to_string(),
            at,
            kind: kind.to_owned(),
            outcome: outcome.into(),
            client_id: None,
            subject: None,
            grant_type: None,
            source: None,
            detail: None,
            count: 1,
            authenticated: true,
        }
    }

    /// Whether this kind of event is kept one row per event (else it may be aggregated).
    pub fn is_kept(&self) -> bool {
        !COUNTED.contains(&self.kind.as_str())
    }
}

/// Kinds recorded one row per event, never dropped while the database takes writes.
pub const KEPT: [&str; 4] = ["token_issued", "refresh_reuse", "token_revoked", "admin_action"];
/// Kinds that may be aggregated into counts. Any kind not listed here is kept.
pub const COUNTED: [&str; 4] = ["token_refused", "throttled", "introspection_refused", "revocation_refused"];

/// What `portero audit` asks for.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub since: Option<i64>,
    pub client_id: Option<String>,
    pub kind: Option<String>,
    pub limit: i64,
}
