//! `portero import status`: per tenant, what came from another provider and how far its move
//! has gone: imported or lazily migrated, still on a legacy hash, rehashed at a first login,
//! never seen since it came.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::admin::AdminError;
use crate::store::{MigrationCount, Origin, Store};

/// Counts of one kind (clients or users) in one tenant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct KindStatus {
    /// Came by `portero import`.
    pub imported: i64,
    /// Came through the old provider's token endpoint.
    pub migrated_lazily: i64,
    /// Still on the old provider's hash (until their first successful login).
    pub legacy_hash: i64,
    /// Whose legacy hash was replaced by argon2id at a first login.
    pub rehashed: i64,
    /// Never authenticated since they came.
    pub never_seen: i64,
}

/// One tenant's line of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TenantStatus {
    /// The tenant's name; `-` for clients of no tenant.
    pub tenant: String,
    pub tenant_id: Option<String>,
    pub clients: KindStatus,
    pub users: KindStatus,
}

/// The report, by tenant name. A client of several tenants counts in each.
pub async fn status<S: Store>(db: &S) -> Result<Vec<TenantStatus>, AdminError> {
    let names: BTreeMap<String, String> = db.list_tenants().await?.into_iter().map(|t| (t.id, t.name)).collect();
    let mut lines: BTreeMap<String, TenantStatus> = BTreeMap::new();
    for count in db.migration_counts().await? {
        let tenants = if count.tenants.is_empty() { vec![None] } else { count.tenants.iter().map(Some).collect() };
        for tenant in tenants {
            let name = tenant.map_or_else(|| "-".to_owned(), |id| names.get(id).cloned().unwrap_or_else(|| id.clone()));
            let line = lines.entry(name.clone()).or_insert_with(|| TenantStatus {
                tenant: name,
                tenant_id: tenant.cloned(),
                clients: KindStatus::default(),
                users: KindStatus::default(),
            });
            add(if count.kind == "client" { &mut line.clients } else { &mut line.users }, &count);
        }
    }
    Ok(lines.into_values().collect())
}

fn add(status: &mut KindStatus, count: &MigrationCount) {
    match count.origin {
        Origin::Import => status.imported += count.count,
        Origin::Upstream => status.migrated_lazily += count.count,
    }
    if count.legacy {
        status.legacy_hash += count.count;
    }
    if count.rehashed {
        status.rehashed += count.count;
    }
    if !count.seen {
        status.never_seen += count.count;
    }
}
