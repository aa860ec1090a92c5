//! PostgreSQL outage under load. A TCP proxy stands between Portero and PostgreSQL; the test
//! first cuts every connection and refuses new ones (the database stopped), then lets
//! connections hang without an answer (the database or network stalled). Throughout, every
//! answer is 200 or 503 `temporarily_unavailable` with `Retry-After`, none takes longer than the
//! request deadline, `/readyz` follows the database, and Portero recovers by itself. No refresh
//! token answered with 200 is lost. Runs when `PORTERO_TEST_POSTGRES_URL` is set.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Mutex, watch};

use super::crash::provision;
use super::nodes::{Database, Node, start_node, token};

const MASTER_KEY: &str = "b3V0YWdlLXRlc3QtMzItYnl0ZXMtbWFzdGVyLWtleSE=";
const WORKERS: usize = 8;
/// Portero's default request deadline (5 s) plus what the client side adds.
const LONGEST_ALLOWED: Duration = Duration::from_secs(7);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Link {
    Up,
    /// Every connection cut, new ones refused: the database process is gone.
    Down,
    /// Connections stay open and nothing comes back: a hung database or a dead network path.
    Stalled,
}

/// Forwards loopback connections to PostgreSQL while the link is up.
pub(super) struct Proxy {
    pub(super) address: SocketAddr,
    link: watch::Sender<Link>,
}

impl Proxy {
    pub(super) async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (link, _) = watch::channel(Link::Up);
        let watcher = link.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(relay(client, upstream, watcher.subscribe()));
            }
        });
        Self { address, link }
    }

    pub(super) fn set(&self, link: Link) {
        self.link.send_replace(link);
    }
}

async fn relay(mut client: TcpStream, upstream: SocketAddr, mut link: watch::Receiver<Link>) {
    let state = *link.borrow_and_update();
    match state {
        Link::Down => {}
        Link::Stalled => {
            // Hold the socket open, answer nothing, until the link is back.
            let _ = link.wait_for(|l| *l == Link::Up).await;
        }
        Link::Up => {
            let Ok(mut server) = TcpStream::connect(upstream).await else { return };
            let stalled = tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut client, &mut server) => false,
                changed = link.wait_for(|l| *l != Link::Up) => changed.map(|l| *l == Link::Stalled).unwrap_or(false),
            };
            if stalled {
                let _ = link.wait_for(|l| *l == Link::Up).await;
            }
        }
    }
}

#[derive(Default)]
struct Tally {
    ok: usize,
    unavailable: usize,
    other: Vec<String>,
    longest: Duration,
}

impl Tally {
    fn record(&mut self, status: u16, body: &Value, retry_after: bool, took: Duration) {
        self.longest = self.longest.max(took);
        match status {
            200 => self.ok += 1,
            503 if body["error"] == "temporarily_unavailable" && retry_after => self.unavailable += 1,
            _ => self.other.push(format!("{status} {body}")),
        }
    }
}

/// Refreshes one chain (and asks for a client-credentials token) until told to stop; returns the
/// last refresh token answered with 200.
async fn drive(node_base: String, first: String, stop: Arc<AtomicBool>, tally: Arc<Mutex<Tally>>) -> String {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let mut refresh_token = first;
    while !stop.load(Ordering::Relaxed) {
        let current = refresh_token.clone();
        for form in [
            vec![("grant_type", "refresh_token"), ("refresh_token", current.as_str())],
            vec![("grant_type", "client_credentials")],
        ] {
            let started = Instant::now();
            let response = http
                .post(format!("{node_base}/oauth2/token"))
                .basic_auth("app", Some("app-secret"))
                .form(&form)
                .send()
                .await;
            let took = started.elapsed();
            let response = match response {
                Ok(response) => response,
                Err(error) => {
                    tally.lock().await.other.push(format!("transport error: {error}"));
                    continue;
                }
            };
            let status = response.status().as_u16();
            let retry_after = response.headers().contains_key("retry-after");
            let body: Value = response.json().await.unwrap_or(Value::Null);
            tally.lock().await.record(status, &body, retry_after, took);
            if status == 200
                && let Some(next) = body["refresh_token"].as_str()
            {
                refresh_token = next.to_owned();
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    refresh_token
}

async fn readyz(http: &reqwest::Client, node: &Node) -> (u16, Duration) {
    let started = Instant::now();
    let status = http.get(format!("{}/readyz", node.base)).send().await.map(|r| r.status().as_u16()).unwrap_or(0);
    (status, started.elapsed())
}

/// Waits until `/readyz` says ready again; returns how long that took.
async fn recovery(http: &reqwest::Client, node: &Node) -> Duration {
    let started = Instant::now();
    while readyz(http, node).await.0 != 200 {
        assert!(started.elapsed() < Duration::from_secs(15), "Portero did not recover within 15 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_outage_under_load_gives_503_and_recovers() {
    let Ok(admin_url) = std::env::var("PORTERO_TEST_POSTGRES_URL") else {
        use std::io::Write as _;
        let _ =
            writeln!(std::io::stderr(), "SKIPPED: PostgreSQL outage test (set PORTERO_TEST_POSTGRES_URL to run it)");
        return;
    };
    let db = Database::create(&admin_url, "outage").await;
    let upstream = url_address(&db.url);
    let proxy = Proxy::start(upstream).await;
    let proxied_url = db.url.replacen(&upstream.to_string(), &proxy.address.to_string(), 1);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("portero.toml"), "").unwrap();
    let node = start_node(dir.path(), &proxied_url, MASTER_KEY);
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    provision(&http, &node).await;

    let login = [("grant_type", "password"), ("username", "alice"), ("password", "alice-pw")];
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let mut workers = Vec::new();
    for _ in 0..WORKERS {
        let (status, answer) = token(&http, &node, ("app", "app-secret"), &login).await;
        assert_eq!(status, 200, "{answer}");
        let first = answer["refresh_token"].as_str().unwrap().to_owned();
        workers.push(tokio::spawn(drive(node.base.clone(), first, stop.clone(), tally.clone())));
    }

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut outage_readyz = Vec::new();
    let mut recoveries = Vec::new();
    for outage in [Link::Down, Link::Stalled] {
        proxy.set(outage);
        tokio::time::sleep(Duration::from_secs(2)).await;
        outage_readyz.push(readyz(&http, &node).await);
        tokio::time::sleep(Duration::from_secs(4)).await;
        proxy.set(Link::Up);
        recoveries.push(recovery(&http, &node).await);
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut last_tokens = Vec::new();
    for worker in workers {
        last_tokens.push(worker.await.unwrap());
    }

    // Tokens lost: every chain's last acknowledged refresh token must still redeem.
    let mut lost = 0;
    for refresh_token in &last_tokens {
        let form = [("grant_type", "refresh_token"), ("refresh_token", refresh_token.as_str())];
        let (status, _) = token(&http, &node, ("app", "app-secret"), &form).await;
        lost += usize::from(status != 200);
    }
    let tally = tally.lock().await;
    eprintln!(
        "outage figures: {} answers 200, {} answers 503 temporarily_unavailable, {} other; longest {:?}; \
         /readyz during outages {:?}; recovered after {:?}; tokens lost {lost} of {}",
        tally.ok,
        tally.unavailable,
        tally.other.len(),
        tally.longest,
        outage_readyz,
        recoveries,
        last_tokens.len()
    );
    assert!(
        tally.other.is_empty(),
        "answers other than 200 or 503, e.g. {:?}",
        &tally.other[..tally.other.len().min(5)]
    );
    assert!(tally.unavailable > 0, "the outage was not noticed");
    assert!(tally.ok > 0);
    assert!(tally.longest < LONGEST_ALLOWED, "a request took {:?}", tally.longest);
    for (status, took) in &outage_readyz {
        assert_eq!(*status, 503, "/readyz during the outage");
        assert!(*took < Duration::from_secs(3), "/readyz took {took:?}");
    }
    assert_eq!(lost, 0, "refresh tokens answered with 200 were lost");
    drop(node);
    db.drop_it().await;
}

/// `host:port` of a `postgres://user@host:port/db` URL, as a socket address.
pub(super) fn url_address(url: &str) -> SocketAddr {
    let after_scheme = url.split_once("://").unwrap().1;
    let host_port = after_scheme.rsplit_once('@').map_or(after_scheme, |(_, rest)| rest);
    let host_port = host_port.split('/').next().unwrap();
    let host_port = if host_port.contains(':') { host_port.to_owned() } else { format!("{host_port}:5432") };
    host_port.parse().expect("the test expects PostgreSQL at an IP address, e.g. 127.0.0.1:5432")
}
