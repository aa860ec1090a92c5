//! `client_secret_basic` and `client_secret_post`: the presented secret against the stored
//! hash (or, during a rotation's overlap, the previous one). Every miss costs one argon2 check,
//! real or dummy, whether the client is unknown, has a generated secret or a chosen one. A
//! secret imported with another provider's hash is checked on the same workers, and the first
//! match replaces that hash by argon2id (see `crate::rehash`).

use std::net::IpAddr;

use super::{ClientCredentials, throttled};
use crate::context::Context;
use crate::error::OAuthError;
use crate::secret::Verdict;
use crate::single_flight::flight_key;
use crate::store::{Client, Store};

/// Checks the secret of `credentials` for `client` (`None`: unknown id). A right secret known
/// without a slow check (see `Verifier::known_client_secret`) is accepted without a slot while
/// `key` has no recent failures; any other check runs throttled under `key`,
/// and identical attempts in flight at once share one check.
pub(super) async fn authenticate<S: Store>(
    ctx: &Context<S>,
    key: &str,
    client: Option<Client>,
    credentials: &ClientCredentials,
    source: Option<IpAddr>,
    now: i64,
) -> Result<Client, OAuthError> {
    let Some(secret) = credentials.secret.as_deref() else {
        return Err(OAuthError::invalid_client().with_detail("public clients are not supported: no client_secret"));
    };
    let presented = presented_secrets(secret, credentials);
    let stored = client.as_ref().map(|c| stored_hashes(c, now)).unwrap_or_default();
    if let Some(client) = &client
        && ctx.throttle.is_clean(key)
        && presented.iter().any(|p| stored.iter().any(|h| ctx.verifier.known_client_secret(&client.id, p, h)))
    {
        return Ok(client.clone());
    }
    let check = async {
        let (verdict, matched) = check(ctx, client.as_ref().map(|c| c.id.as_str()), &presented, &stored).await;
        if let (Some(client), Some((hash, upgrade))) = (&client, matched) {
            // Only the current secret is rehashed: a rotation's previous one is on its way out.
            let upgrade = upgrade.filter(|_| hash == client.secret_hash);
            let owner = crate::store::TokenOwner::Client(&client.id);
            crate::rehash::after_success(ctx, owner, &hash, upgrade, client.last_seen_at, now).await;
        }
        verdict
    };
    let attempt = throttled(ctx, key, source, now, check);
    let parts: Vec<&str> = std::iter::once(key).chain(presented.iter().copied()).collect();
    match ctx.verifier.client_checks.run(flight_key(&parts), attempt).await? {
        Verdict::Match => client.ok_or_else(|| OAuthError::server_error("matched an unknown client")),
        Verdict::Unavailable => Err(OAuthError::temporarily_unavailable("secret verification is at capacity")),
        Verdict::NoMatch => Err(OAuthError::invalid_client().with_detail(match &client {
            Some(client) => format!("wrong secret for client {:?}", client.id),
            None => format!("unknown client {:?}", credentials.client_id),
        })),
    }
}

/// The secret as decoded, then as sent when decoding changed it (see `decode_basic`).
fn presented_secrets<'a>(secret: &'a str, credentials: &'a ClientCredentials) -> Vec<&'a str> {
    let raw = credentials.undecoded.as_ref().map(|(_, raw)| raw.as_str()).filter(|raw| *raw != secret);
    std::iter::once(secret).chain(raw).collect()
}

/// The hashes a client's secret may match: the current one, and the previous during its overlap.
fn stored_hashes(client: &Client, now: i64) -> Vec<&str> {
    let previous = client.previous_secret.as_ref().filter(|p| p.expires_at > now).map(|p| p.hash.as_str());
    std::iter::once(client.secret_hash.as_str()).chain(previous).collect()
}

/// A stored hash that matched, and the argon2id hash to replace it with if it was a legacy one.
type Matched = (String, Option<String>);

/// Every presented secret against every stored hash, with a dummy argon2 check when no slow
/// check ran, so that every miss costs the same.
async fn check<S: Store>(
    ctx: &Context<S>,
    client_id: Option<&str>,
    presented: &[&str],
    stored: &[&str],
) -> (Verdict, Option<Matched>) {
    let mut verdict = Verdict::NoMatch;
    let mut slow = false;
    'check: for candidate in presented {
        for hash in stored {
            let Some(client_id) = client_id else { break 'check };
            let (answer, was_slow) = ctx.verifier.check_client_secret(client_id, candidate, hash).await;
            slow |= was_slow;
            verdict = answer.verdict;
            if verdict == Verdict::Match {
                return (verdict, Some(((*hash).to_owned(), answer.upgrade)));
            }
            if verdict != Verdict::NoMatch {
                break 'check;
            }
        }
    }
    if verdict == Verdict::NoMatch && !slow {
        verdict = ctx.verifier.slow_miss(presented[0]).await;
    }
    (verdict, None)
}
