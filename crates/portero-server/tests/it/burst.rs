//! Defences under a burst: hundreds of guesses for one key sent at once, on SQLite and on
//! PostgreSQL. However they race, at most the threshold of them is checked (answered 400/401);
//! the rest are refused unchecked (429), and afterwards even the right credentials wait out the
//! block. A flood at one key does not deny service to others, and a refusal for lack of
//! capacity (503) counts as no failure.

use std::collections::BTreeMap;
use std::sync::Arc;

use portero_core::keys::Alg;
use portero_core::store::prelude::*;
use portero_core::throttle::ThrottleRules;
use serde_json::json;

use crate::harness::*;

/// The harness's per-key threshold (`ThrottleRules.threshold`).
const THRESHOLD: usize = 5;
const BURST: usize = 250;

/// The harness's thresholds with blocks longer than any burst takes, so that every refusal in a
/// burst comes from the slots running out, not from a block that ended mid-burst.
fn long_blocks() -> ThrottleRules {
    ThrottleRules { base_block: 120, max_block: 240, ..short_blocks() }
}

/// One token request, optionally from `address` (through the harness's trusted proxy header).
async fn post(server: &Server, address: Option<&str>, basic: (&str, &str), body: String) -> u16 {
    let mut request = server
        .http
        .post(server.url("/oauth2/token"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("Authorization", basic_header(basic.0, basic.1))
        .body(body);
    if let Some(address) = address {
        request = request.header("X-Forwarded-For", address);
    }
    send(request).await.0
}

/// Sends every request of `bodies` at once and counts the answers by status.
async fn burst(
    server: &Arc<Server>,
    requests: Vec<(Option<String>, (String, String), String)>,
) -> BTreeMap<u16, usize> {
    let tasks: Vec<_> = requests
        .into_iter()
        .map(|(address, (id, secret), body)| {
            let server = server.clone();
            tokio::spawn(async move { post(&server, address.as_deref(), (&id, &secret), body).await })
        })
        .collect();
    let mut counts = BTreeMap::new();
    for task in tasks {
        *counts.entry(task.await.unwrap()).or_default() += 1;
    }
    println!("burst answers by status: {counts:?}");
    counts
}

async fn wrong_passwords_for_one_user(server: Arc<Server>) {
    let requests = (0..BURST)
        .map(|i| {
            let body = format!("grant_type=password&username={NETPAY_USER}&password=guess-{i}");
            (None, (NETPAY_CLIENT.to_owned(), NETPAY_SECRET.to_owned()), body)
        })
        .collect();
    let counts = burst(&server, requests).await;
    let checked = counts.get(&400).copied().unwrap_or(0);
    assert!((1..=THRESHOLD).contains(&checked), "wrong passwords checked: {counts:?}");
    assert_eq!(checked + counts.get(&429).copied().unwrap_or(0), BURST, "{counts:?}");
    let right = format!("grant_type=password&username={NETPAY_USER}&password={NETPAY_PASSWORD}");
    assert_eq!(post(&server, None, (NETPAY_CLIENT, NETPAY_SECRET), right).await, 429, "the right password waits");
}

async fn wrong_secrets_for_one_client(server: Arc<Server>, client: &str, right_secret: &str, grant: &str) {
    let requests = (0..BURST).map(|i| (None, (client.to_owned(), format!("guess-{i}")), grant.to_owned())).collect();
    let counts = burst(&server, requests).await;
    let checked = counts.get(&401).copied().unwrap_or(0);
    assert!((1..=THRESHOLD).contains(&checked), "wrong secrets checked for {client}: {counts:?}");
    assert_eq!(checked + counts.get(&429).copied().unwrap_or(0), BURST, "{counts:?}");
    assert_eq!(post(&server, None, (client, right_secret), grant.to_owned()).await, 429, "the right secret waits");
}

async fn one_address_guessing_many_clients(server: Arc<Server>) {
    let attacker = "203.0.113.77";
    let requests = (0..BURST)
        .map(|i| {
            (
                Some(attacker.to_owned()),
                (format!("ghost-{i}"), "guess".to_owned()),
                "grant_type=client_credentials".into(),
            )
        })
        .collect();
    let counts = burst(&server, requests).await;
    let checked = counts.get(&401).copied().unwrap_or(0);
    assert!((1..=ADDRESS_THRESHOLD as usize).contains(&checked), "guesses checked from one address: {counts:?}");
    assert_eq!(checked + counts.get(&429).copied().unwrap_or(0), BURST, "{counts:?}");
    // A client untouched by the other bursts: refused from the attacker's address, served from another.
    let nequi = (NEQUI_CLIENT, server.nequi_secret.as_str());
    let grant = || "grant_type=client_credentials".to_owned();
    assert_eq!(post(&server, Some(attacker), nequi, grant()).await, 429);
    assert_eq!(post(&server, Some("203.0.113.78"), nequi, grant()).await, 200);
}

async fn every_burst(server: Server) {
    let server = Arc::new(server);
    wrong_passwords_for_one_user(server.clone()).await;
    let netpay_password = format!("grant_type=password&username={PAYME_USER}&password={PAYME_PASSWORD}");
    wrong_secrets_for_one_client(server.clone(), NETPAY_CLIENT, NETPAY_SECRET, &netpay_password).await;
    let zertiban_secret = server.zertiban_secret.clone();
    wrong_secrets_for_one_client(server.clone(), ZERTIBAN_CLIENT, &zertiban_secret, "grant_type=client_credentials")
        .await;
    one_address_guessing_many_clients(server.clone()).await;
    if let Ok(server) = Arc::try_unwrap(server) {
        server.finish().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bursts_check_at_most_the_threshold_on_sqlite() {
    every_burst(Server::start_sqlite(Alg::Rs256, long_blocks()).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bursts_check_at_most_the_threshold_on_postgres() {
    if let Some(server) = Server::start_postgres("burst throttling", long_blocks()).await {
        every_burst(server).await;
    }
}

/// A flood of wrong secrets for one argon2 client while another client's users log in: the
/// flood is refused before it reaches the argon2 workers, so the others are served.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flood_at_one_client_does_not_deny_others() {
    let server = Arc::new(Server::start().await);
    let flood = {
        let requests = (0..600)
            .map(|i| {
                (None, (NETPAY_CLIENT.to_owned(), format!("flood-{i}")), "grant_type=client_credentials".to_owned())
            })
            .collect();
        let server = server.clone();
        tokio::spawn(async move { burst(&server, requests).await })
    };
    let login = json!({ "grant_type": "password", "client_id": PAYME_CLIENT, "client_secret": PAYME_SECRET,
                        "username": PAYME_USER, "password": PAYME_PASSWORD });
    for _ in 0..10 {
        let (status, _, body) = server.post_json("/oauth2/token", &[], &login).await;
        assert_eq!(status, 200, "another client's login during the flood: {body}");
    }
    let counts = flood.await.unwrap();
    let checked = counts.get(&401).copied().unwrap_or(0);
    assert!((1..=THRESHOLD).contains(&checked), "{counts:?}");
    assert_eq!(checked + counts.get(&429).copied().unwrap_or(0), 600, "no 503 for the flood either: {counts:?}");
}

/// More slow checks than the argon2 workers can take (alone: the queue is the process's): some are refused with 503 and
/// `Retry-After`, and those refusals count as no failed login.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn capacity_refusals_are_503_and_count_no_failure() {
    let server = Arc::new(Server::start_alone().await);
    let tasks: Vec<_> = (0..800)
        .map(|i| {
            let server = server.clone();
            tokio::spawn(async move {
                let login = json!({ "grant_type": "password", "client_id": PAYME_CLIENT, "client_secret": PAYME_SECRET,
                                "username": format!("ghost-{i}"), "password": "x" });
                let (status, headers, body) = server.post_json("/oauth2/token", &[], &login).await;
                (i, status, headers.contains_key("retry-after"), body)
            })
        })
        .collect();
    let mut unavailable = 0;
    for task in tasks {
        let (i, status, retry_after, body) = task.await.unwrap();
        match status {
            400 => assert_eq!(body["error"], "invalid_grant"),
            503 => {
                assert_eq!(body["error"], "temporarily_unavailable");
                assert!(retry_after, "503 carries Retry-After");
                let key = portero_core::throttle::user_key(PAYME_CLIENT, &format!("ghost-{i}"));
                let failures = server.db.auth_failures(&key).await.unwrap().map_or(0, |r| r.failures);
                // A refusal at the full queue gives its slot back; one at the request deadline (a
                // loaded machine) may keep it, since the check was under way. Neither blocks anyone.
                assert!(failures <= 1, "ghost-{i}: {failures} failures after a 503");
                unavailable += 1;
            }
            other => panic!("ghost-{i}: {other} {body}"),
        }
    }
    assert!(unavailable > 0, "800 checks at once should exceed the workers' queue");
}

/// Many terminals logging in as one merchant user at the same moment, all with the right
/// password: identical attempts share one check and one slot, so none is taken for guessing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_correct_logins_is_not_throttled() {
    let server = Arc::new(Server::start_sqlite(Alg::Rs256, long_blocks()).await);
    let right = format!("grant_type=password&username={NETPAY_USER}&password={NETPAY_PASSWORD}");
    for round in 0..3 {
        let requests =
            (0..40).map(|_| (None, (NETPAY_CLIENT.to_owned(), NETPAY_SECRET.to_owned()), right.clone())).collect();
        let counts = burst(&server, requests).await;
        assert_eq!(counts.get(&200).copied(), Some(40), "round {round}: {counts:?}");
    }
}
