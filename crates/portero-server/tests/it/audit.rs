//! The audit trail under a flood, on SQLite and on PostgreSQL: 50,000 refused requests over many
//! connections while tokens are issued beside them. Afterwards every issued token has its own
//! `token_issued` row, the refusals' counts add up to exactly the refused requests, and nothing
//! was dropped.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use portero_core::audit::{AuditEvent, AuditQuery, COUNTED};
use portero_core::keys::Alg;
use portero_core::store::prelude::*;

use crate::harness::*;

const FLOOD: usize = 50_000;
/// Of the flood, wrong secrets for one client (throttled once its key is blocked); the rest name
/// a grant the server does not support and are refused before any client is looked up.
const WRONG_SECRETS: usize = 5_000;
const CONNECTIONS: usize = 64;
const ISSUERS: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn flood_of_refusals_loses_no_audit_event_sqlite() {
    flood_of_refusals_loses_no_audit_event(Server::start_sqlite(Alg::Es256, short_blocks()).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn flood_of_refusals_loses_no_audit_event_postgres() {
    if let Some(server) = Server::start_postgres("audit flood", short_blocks()).await {
        flood_of_refusals_loses_no_audit_event(server).await;
    }
}

async fn post(server: &Server, basic: Option<(&str, &str)>, body: String, address: Option<String>) -> u16 {
    let mut request = server
        .http
        .post(server.url("/oauth2/token"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body);
    if let Some((id, secret)) = basic {
        request = request.header("Authorization", basic_header(id, secret));
    }
    if let Some(address) = address {
        request = request.header("X-Forwarded-For", address);
    }
    request.send().await.unwrap().status().as_u16()
}

async fn flood_of_refusals_loses_no_audit_event(server: Server) {
    let server = Arc::new(server);
    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let flooding = Arc::new(AtomicBool::new(true));

    // Tokens issued for as long as the flood lasts.
    let issuers: Vec<_> = (0..ISSUERS)
        .map(|_| {
            let (server, flooding) = (server.clone(), flooding.clone());
            tokio::spawn(async move {
                let mut answers = BTreeMap::<u16, usize>::new();
                while flooding.load(Ordering::Relaxed) {
                    let basic = Some((ZERTIBAN_CLIENT, server.zertiban_secret.as_str()));
                    let status = post(&server, basic, "grant_type=client_credentials".into(), None).await;
                    *answers.entry(status).or_default() += 1;
                }
                answers
            })
        })
        .collect();
    let flooders: Vec<_> = (0..CONNECTIONS)
        .map(|_| {
            let (server, next) = (server.clone(), next.clone());
            tokio::spawn(async move {
                let mut answers = BTreeMap::<u16, usize>::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= FLOOD {
                        return answers;
                    }
                    let status = if i % (FLOOD / WRONG_SECRETS) == 0 {
                        let body = "grant_type=client_credentials".to_owned();
                        post(&server, Some((NEQUI_CLIENT, "not-the-secret")), body, None).await
                    } else {
                        let body = format!("grant_type=urn:example:flood&client_id=flooder-{}", i % 500);
                        post(&server, None, body, Some(format!("203.0.113.{}", i % 200))).await
                    };
                    *answers.entry(status).or_default() += 1;
                }
            })
        })
        .collect();
    let mut refused = BTreeMap::<u16, usize>::new();
    for task in flooders {
        for (status, n) in task.await.unwrap() {
            *refused.entry(status).or_default() += n;
        }
    }
    flooding.store(false, Ordering::Relaxed);
    let flood_took = started.elapsed();
    let mut issued = BTreeMap::<u16, usize>::new();
    for task in issuers {
        for (status, n) in task.await.unwrap() {
            *issued.entry(status).or_default() += n;
        }
    }
    assert_eq!(refused.values().sum::<usize>(), FLOOD);
    assert!(!refused.contains_key(&200), "{refused:?}");
    let tokens = issued.get(&200).copied().unwrap_or(0);
    assert!(tokens > 0, "{issued:?}");
    let refused_total = FLOOD + issued.iter().filter(|(s, _)| **s != 200).map(|(_, n)| n).sum::<usize>();

    // Everything is written shortly after: counts about every second, issued tokens at once.
    let totals = |events: &[AuditEvent]| {
        let issued = events.iter().filter(|e| e.kind == "token_issued").map(|e| e.count).sum::<i64>();
        let refused = events.iter().filter(|e| COUNTED.contains(&e.kind.as_str())).map(|e| e.count).sum::<i64>();
        (issued as usize, refused as usize)
    };
    let query = AuditQuery { limit: 100_000, ..AuditQuery::default() };
    let waited = Instant::now();
    let events = loop {
        let events = server.db.list_audit_events(&query).await.unwrap();
        if totals(&events) == (tokens, refused_total) || waited.elapsed() > Duration::from_secs(30) {
            break events;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let written_after = waited.elapsed();
    let rows = events.len();
    println!(
        "audit flood: {FLOOD} refused in {flood_took:?} ({:.0}/s) beside {tokens} tokens issued; answers {refused:?} / \
         {issued:?}; {rows} rows; all written {written_after:?} after the flood",
        FLOOD as f64 / flood_took.as_secs_f64()
    );
    assert_eq!(totals(&events), (tokens, refused_total), "every issued token has its row; refusals add up");
    let issued_rows: Vec<_> = events.iter().filter(|e| e.kind == "token_issued").collect();
    assert!(
        issued_rows.iter().all(|e| e.count == 1 && e.authenticated && e.client_id.as_deref() == Some(ZERTIBAN_CLIENT))
    );
    assert!(rows < 20_000 + tokens, "refusals are aggregated, not one row each ({rows} rows)");

    // The wrong secrets are found under the client they named, marked as not proven.
    let nequi = AuditQuery { client_id: Some(NEQUI_CLIENT.into()), limit: 100_000, ..AuditQuery::default() };
    let nequi = server.db.list_audit_events(&nequi).await.unwrap();
    assert!(nequi.iter().all(|e| !e.authenticated && COUNTED.contains(&e.kind.as_str())), "{nequi:?}");
    assert_eq!(nequi.iter().map(|e| e.count).sum::<i64>(), WRONG_SECRETS as i64);

    let metrics = server.http.get(server.url("/metrics")).bearer_auth(METRICS_TOKEN).send().await.unwrap();
    let metrics = metrics.text().await.unwrap();
    assert!(metrics.contains("portero_audit_events_dropped 0"), "{metrics}");
    assert!(metrics.contains("portero_audit_backlog "), "{metrics}");
    Arc::into_inner(server).unwrap().finish().await;
}
