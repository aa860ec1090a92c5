//! `portero audit`: the audit trail, newest first, filtered by time, client and kind.

use clap::Args;
use portero_core::audit::AuditQuery;
use portero_core::clock::unix_now;
use portero_core::store::prelude::*;
use portero_server::admin::parse_duration;

use super::Global;

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Only events this recent: 90s, 15m, 24h, 7d.
    #[arg(long)]
    pub since: Option<String>,
    /// Only events of this client.
    #[arg(long)]
    pub client: Option<String>,
    /// Only this kind: token_issued, token_refused, throttled, refresh_reuse, token_revoked,
    /// introspection_refused, revocation_refused, admin_action.
    #[arg(long)]
    pub kind: Option<String>,
    /// At most this many events.
    #[arg(long, default_value_t = 100)]
    pub limit: i64,
    /// One JSON object per line instead of tab-separated columns.
    #[arg(long)]
    pub json: bool,
}

const KINDS: [&str; 8] = [
    "token_issued",
    "token_refused",
    "throttled",
    "refresh_reuse",
    "token_revoked",
    "introspection_refused",
    "revocation_refused",
    "admin_action",
];

pub async fn run(global: &Global, args: AuditArgs) -> anyhow::Result<()> {
    if let Some(kind) = &args.kind {
        anyhow::ensure!(KINDS.contains(&kind.as_str()), "unknown kind {kind:?}; one of: {}", KINDS.join(", "));
    }
    anyhow::ensure!((1..=100_000).contains(&args.limit), "--limit must be 1 to 100000");
    let since = args.since.as_deref().map(parse_duration).transpose()?.map(|ago| unix_now() - ago);
    let (db, _) = super::admin::open(global).await?;
    let query = AuditQuery { since, client_id: args.client, kind: args.kind, limit: args.limit };
    for event in db.list_audit_events(&query).await? {
        if args.json {
            let line = serde_json::json!({
                "id": event.id, "at": event.at, "time": super::rfc3339(event.at), "kind": event.kind, "outcome": event.outcome,
                "client_id": event.client_id, "subject": event.subject, "grant_type": event.grant_type,
                "source": event.source, "detail": event.detail, "count": event.count,
                "authenticated": event.authenticated,
            });
            println!("{line}");
        } else {
            let or_dash = |value: &Option<String>| value.clone().unwrap_or_else(|| "-".to_owned());
            // A presented id that was not proven is marked; an aggregated row says how many.
            let client = match (&event.client_id, event.authenticated) {
                (Some(id), false) => format!("{id} (unauthenticated)"),
                (id, _) => or_dash(id),
            };
            let count = if event.count > 1 { format!("\tcount={}", event.count) } else { String::new() };
            println!(
                "{}\t{}\t{}\tclient={}\tsub={}\tgrant={}\tfrom={}\t{}{}",
                super::rfc3339(event.at),
                event.kind,
                event.outcome,
                client,
                or_dash(&event.subject),
                or_dash(&event.grant_type),
                or_dash(&event.source),
                or_dash(&event.detail),
                count
            );
        }
    }
    Ok(())
}
