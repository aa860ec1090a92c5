//! What a successful secret or password check leaves behind (issue 14): a legacy hash that
//! matched is replaced at once by the argon2id hash the worker computed beside the check, and
//! the first success of a client or user is recorded (for `portero import status`).
//!
//! Both writes are conditional and happen once: the rehash only while the stored hash is still
//! the one that matched (concurrent successes on any node: one write wins, the others change
//! nothing, and the winner's hash verifies the same secret), first sight only while none is
//! recorded, and only when the record read says so. A native hash that was seen before costs
//! nothing here: the hot path is unchanged. A failed write is logged (never the hash) and the
//! login still succeeds: the next success tries again.

use crate::audit_event::AuditEvent;
use crate::context::Context;
use crate::store::{Change, Store, TokenOwner};

/// After a match of `owner`'s stored hash `matched`: stores `upgrade` in its place if the worker
/// computed one, else records the first success when `last_seen_at` is `None`.
pub(crate) async fn after_success<S: Store>(
    ctx: &Context<S>,
    owner: TokenOwner<'_>,
    matched: &str,
    upgrade: Option<String>,
    last_seen_at: Option<i64>,
    now: i64,
) {
    let written = match upgrade {
        Some(new) => ctx.store.upgrade_hash(owner, matched, &new, now).await.inspect(|replaced| {
            if *replaced {
                rehashed(ctx, owner, now);
            }
        }),
        None if last_seen_at.is_none() => ctx.store.mark_seen(owner, now).await.map(|()| true),
        None => Ok(false),
    };
    match written {
        // This node's cached client would keep the old hash (or the unseen mark); the other
        // nodes hear of it and drop theirs.
        Ok(true) => {
            if let TokenOwner::Client(id) = owner {
                ctx.clients.invalidate(id);
                ctx.store.announce(&Change::Client(id.to_owned())).await;
            }
        }
        Ok(false) => {}
        Err(error) => tracing::warn!(%error, owner = owner.kind(), id = owner.id(), "could not record a first success"),
    }
}

/// The audit event and log line of a replaced hash (never the hash).
fn rehashed<S: Store>(ctx: &Context<S>, owner: TokenOwner<'_>, now: i64) {
    let mut event = AuditEvent::new(now, "rehashed", "argon2id");
    let what = match owner {
        TokenOwner::Client(id) => {
            event.client_id = Some(id.to_owned());
            "secret"
        }
        TokenOwner::User(id) => {
            event.subject = Some(id.to_owned());
            "password"
        }
    };
    event.detail =
        Some(format!("the imported {what} hash of {} {} was replaced by argon2id", owner.kind(), owner.id()));
    ctx.audit.record(event);
    tracing::info!(owner = owner.kind(), id = owner.id(), "legacy hash replaced by argon2id");
}
