//! `portero serve`.

use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use portero_core::clock::unix_now;
use portero_core::dialect::{ApiVersionRule, DEFAULT_LOCALE};
use portero_core::keys::Alg;
use portero_core::token_endpoint::Policy;
use portero_server::AppState;
use tokio::net::TcpListener;

use super::Global;
use crate::settings::{self, FileConfig};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (default 127.0.0.1:8080).
    #[arg(long, env = "PORTERO_LISTEN")]
    pub listen: Option<String>,
    /// Issuer (`iss`) of every token (default http://LISTEN).
    #[arg(long, env = "PORTERO_ISSUER")]
    pub issuer: Option<String>,
    /// Require this header on Pay-me-style (JSON with `action`) requests: NAME=V1[,V2...].
    #[arg(long, env = "PORTERO_API_VERSION_HEADER")]
    pub api_version_header: Option<String>,
    /// Algorithm of the signing key generated on first start: RS256, ES256 or EdDSA.
    #[arg(long, env = "PORTERO_SIGNING_ALG")]
    pub signing_alg: Option<String>,
    /// Default access-token lifetime in seconds, for clients without their own.
    #[arg(long, env = "PORTERO_ACCESS_TOKEN_TTL")]
    pub access_token_ttl: Option<i64>,
    /// Seconds after a refresh in which the same refresh token may be sent again and get the same
    /// answer (its response was lost); 0 (default) treats any second use as reuse.
    #[arg(long, env = "PORTERO_REFRESH_RETRY_WINDOW_SECONDS", value_name = "SECONDS")]
    pub refresh_retry_window_seconds: Option<i64>,
    /// DPoP proofs must carry a nonce this server issued: a proof without one is answered
    /// `use_dpop_nonce` with the nonce in a `DPoP-Nonce` header (RFC 9449 §8).
    #[arg(long, env = "PORTERO_DPOP_NONCE")]
    pub dpop_nonce: bool,
    /// PEM certificate chain to serve HTTPS with (needs --tls-key).
    #[arg(long, env = "PORTERO_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "PORTERO_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
    /// PEM CA bundle for TLS client certificates (RFC 8705): connections are asked for one
    /// (optional), and tls_client_auth clients need one that chains to this CA.
    #[arg(long, env = "PORTERO_TLS_CLIENT_CA", requires = "tls_cert")]
    pub tls_client_ca: Option<std::path::PathBuf>,
    /// Read client certificates from this header, set by a trusted TLS-terminating proxy
    /// (RFC 9440 `Client-Cert`). The proxy must strip it from client requests.
    #[arg(long, env = "PORTERO_TLS_CLIENT_CERT_HEADER")]
    pub tls_client_cert_header: Option<String>,
    /// Serve /metrics on this address (plain HTTP) instead of the main one.
    #[arg(long, env = "PORTERO_METRICS_LISTEN")]
    pub metrics_listen: Option<String>,
    /// Require `Authorization: Bearer TOKEN` on /metrics (at least 24 characters). Without
    /// --metrics-listen this serves /metrics on the main address; with neither, /metrics is off.
    #[arg(long, env = "PORTERO_METRICS_TOKEN", hide_env_values = true, allow_hyphen_values = true)]
    pub metrics_token: Option<String>,
}

pub async fn run(global: &Global, args: ServeArgs) -> anyhow::Result<()> {
    // A panic's message may quote what a request sent: log where it happened, not what it said.
    std::panic::set_hook(Box::new(|info| {
        let location = info.location().map(|l| format!("{}:{}", l.file(), l.line())).unwrap_or_default();
        tracing::error!(%location, "panicked (the message is withheld from the log: it may quote request data)");
    }));
    let file = FileConfig::load(global.config.as_deref())?;
    let listen = args.listen.or(file.listen.clone()).unwrap_or_else(|| settings::DEFAULT_LISTEN.to_owned());
    let database_url = settings::database_url(global.database_url.as_deref(), &file);
    let issuer = args.issuer.or(file.issuer.clone()).unwrap_or_else(|| format!("http://{listen}"));
    let api_version = args
        .api_version_header
        .or(file.api_version_header.clone())
        .map(|spec| ApiVersionRule::parse(&spec).map_err(|e| anyhow::anyhow!("--api-version-header: {e}")))
        .transpose()?;
    let alg = Alg::parse(args.signing_alg.as_deref().or(file.signing_alg.as_deref()).unwrap_or("RS256"))?;
    let access_token_ttl = args.access_token_ttl.or(file.access_token_ttl).unwrap_or(3600);
    anyhow::ensure!((1..=30 * 86_400).contains(&access_token_ttl), "the access-token lifetime must be 1 s to 30 days");
    let refresh_retry_window = args.refresh_retry_window_seconds.or(file.refresh_retry_window_seconds).unwrap_or(0);
    anyhow::ensure!(
        (0..=portero_server::admin::MAX_REFRESH_RETRY_WINDOW).contains(&refresh_retry_window),
        "the refresh retry window must be 0 to 3600 seconds"
    );
    let policy = Policy {
        issuer,
        access_token_ttl,
        refresh_token_ttl: file.refresh_token_ttl.unwrap_or(30 * 86_400),
        refresh_retry_window,
        api_version,
        default_locale: file.default_locale.clone().unwrap_or_else(|| DEFAULT_LOCALE.to_owned()),
        dpop_nonce: args.dpop_nonce || file.dpop_nonce.unwrap_or(false),
    };
    let mut server_config = file.server_config()?;
    server_config.admin_token =
        std::env::var("PORTERO_ADMIN_TOKEN").ok().or(file.admin_token.clone()).filter(|t| !t.is_empty());
    if let Some(token) = &server_config.admin_token {
        anyhow::ensure!(token.len() >= 24, "PORTERO_ADMIN_TOKEN must be at least 24 characters");
        tracing::info!("the admin API is on at /admin");
    }
    let metrics_listen = args.metrics_listen.or(file.metrics_listen.clone()).filter(|a| !a.is_empty());
    server_config.metrics_token = args.metrics_token.or(file.metrics_token.clone()).filter(|t| !t.is_empty());
    if let Some(token) = &server_config.metrics_token {
        anyhow::ensure!(token.len() >= 24, "the metrics token must be at least 24 characters");
    }
    server_config.metrics_on_main = metrics_listen.is_none() && server_config.metrics_token.is_some();

    let client_ca = args.tls_client_ca.or(file.tls_client_ca.clone());
    let tls_files = (args.tls_cert.or(file.tls_cert.clone()), args.tls_key.or(file.tls_key.clone()));
    let (tls, ca) = tls_config(tls_files, client_ca)?;
    server_config.client_ca = ca;
    server_config.client_cert_header = args
        .tls_client_cert_header
        .or(file.tls_client_cert_header.clone())
        .filter(|h| !h.is_empty())
        .map(|name| {
            portero_server::tls::header_name(&name)
                .ok_or_else(|| anyhow::anyhow!("tls_client_cert_header: {name:?} is not a header name"))
        })
        .transpose()?;
    if let Some(name) = &server_config.client_cert_header {
        tracing::info!(header = %name, "client certificates are read from a header: the proxy must strip it from clients");
    }
    let master_key = super::admin::master_key(global, &database_url)?;
    let bind = || async { TcpListener::bind(&listen).await.with_context(|| format!("listening on {listen}")) };
    let start = Start { database_url: &database_url, master_key, policy, server_config, alg };
    // The port opens once the state is built; only while PostgreSQL is unreachable does it open
    // before, to answer 503.
    let (state, listener) = match start.attempt().await {
        Ok(state) => (state, bind().await?),
        Err(error) if unreachable(&error) && settings::sqlite_file(&database_url).is_none() => {
            match wait_for_database(&start, bind().await?, tls.clone(), error).await? {
                Some(started) => started,
                None => return Ok(()),
            }
        }
        Err(error) => return Err(error),
    };
    // Nodes on one database drop what they cached of a change as soon as it is made; the client
    // cache warms once that feed is live.
    state.follow_changes();
    let local = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        address = %local,
        scheme,
        issuer = %state.ctx.policy.issuer,
        "portero is serving"
    );
    if tls.is_none() && !local.ip().is_loopback() {
        tracing::warn!(
            "serving plain HTTP on a non-loopback address: credentials and tokens cross the network in clear; \
             use --tls-cert/--tls-key or a TLS-terminating proxy"
        );
    }
    let metrics = match metrics_listen {
        Some(address) => Some(serve_metrics(&address, &state).await?),
        None if state.config.metrics_on_main => {
            tracing::info!("/metrics is served on the main address and needs the metrics token");
            None
        }
        None => {
            tracing::info!("/metrics is off: set --metrics-listen or --metrics-token to serve it");
            None
        }
    };
    let reload = Duration::from_secs(file.key_reload_seconds.unwrap_or(10).max(1));
    let served = portero_server::run(listener, tls, state, reload, shutdown_signal()).await;
    if let Some(metrics) = metrics {
        metrics.abort();
    }
    served?;
    tracing::info!("portero stopped");
    Ok(())
}

/// What building the state needs; kept so a failed start can be tried again.
struct Start<'a> {
    database_url: &'a str,
    master_key: portero_core::keys::MasterKey,
    policy: Policy,
    server_config: portero_server::ServerConfig,
    alg: Alg,
}

impl Start<'_> {
    /// Opens the database (`serve` creates a missing SQLite file) and builds the state.
    async fn attempt(&self) -> anyhow::Result<AppState> {
        let db = crate::database::open(self.database_url, crate::database::Missing::Create).await?;
        let built = AppState::build(
            db,
            self.master_key.clone(),
            self.policy.clone(),
            self.server_config.clone(),
            self.alg,
            unix_now(),
        )
        .await;
        built.with_context(|| format!("starting on {}", settings::describe_database(self.database_url)))
    }
}

/// Whether an error means the database is not reachable (yet), rather than wrong.
fn unreachable(error: &anyhow::Error) -> bool {
    use portero_core::store::StoreError;
    error.chain().any(|cause| {
        matches!(cause.downcast_ref::<StoreError>(), Some(StoreError::Unavailable(_)))
            || matches!(
                cause.downcast_ref::<portero_server::StartError>(),
                Some(portero_server::StartError::Store(StoreError::Unavailable(_)))
            )
    })
}

/// Most time between two attempts to reach a database that is down at start.
const RETRY_AT_MOST: Duration = Duration::from_secs(30);

/// PostgreSQL is down at start: answer on `listener` (`/healthz` 200, everything else 503) and
/// try again with backoff (1 s doubling to 30 s) until it is up, then hand the listener over.
/// `None` when a shutdown signal came first.
async fn wait_for_database(
    start: &Start<'_>,
    listener: TcpListener,
    tls: Option<portero_server::TlsConfig>,
    first: anyhow::Error,
) -> anyhow::Result<Option<(AppState, TcpListener)>> {
    let database = settings::describe_database(start.database_url);
    let listener = listener.into_std()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let waiting = tokio::spawn(portero_server::waiting::serve_waiting(listener.try_clone()?, tls, async {
        let _ = stopped.await;
    }));
    tracing::warn!(
        version = env!("CARGO_PKG_VERSION"),
        address = %listener.local_addr()?,
        error = format!("{first:#}"),
        "{database} is not reachable: answering 503 (and /readyz 503) until it is, retrying"
    );
    let mut delay = Duration::from_secs(1);
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    let state = loop {
        tokio::select! {
            () = &mut shutdown => {
                let _ = stop.send(());
                let _ = waiting.await;
                return Ok(None);
            }
            () = tokio::time::sleep(delay) => {}
        }
        match start.attempt().await {
            Ok(state) => break state,
            Err(error) if unreachable(&error) => {
                delay = (delay * 2).min(RETRY_AT_MOST);
                tracing::warn!(
                    error = format!("{error:#}"),
                    retry_in_seconds = delay.as_secs(),
                    "{database} is still not reachable"
                );
            }
            Err(error) => {
                let _ = stop.send(());
                let _ = waiting.await;
                return Err(error);
            }
        }
    };
    tracing::info!("{database} is reachable: starting");
    let _ = stop.send(());
    let _ = waiting.await;
    Ok(Some((state, TcpListener::from_std(listener)?)))
}

/// Binds the metrics listener (a bad address stops `serve`) and serves `/metrics` on it.
async fn serve_metrics(address: &str, state: &AppState) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let listener = TcpListener::bind(address).await.with_context(|| format!("listening for metrics on {address}"))?;
    let local = listener.local_addr()?;
    let token = state.config.metrics_token.is_some();
    tracing::info!(address = %local, token, "serving /metrics");
    if !token && !local.ip().is_loopback() {
        tracing::warn!("/metrics is served without a token on a non-loopback address: keep that address private");
    }
    let state = state.clone();
    Ok(tokio::spawn(async move {
        if let Err(error) = portero_server::serve_metrics(listener, state).await {
            tracing::error!(%error, "the metrics listener stopped");
        }
    }))
}

/// Loads the certificate, key and client CA up front, so a bad file stops `serve` with a clear
/// error.
fn tls_config(
    files: (Option<std::path::PathBuf>, Option<std::path::PathBuf>),
    client_ca: Option<std::path::PathBuf>,
) -> anyhow::Result<(Option<portero_server::TlsConfig>, Option<portero_server::tls::ClientCa>)> {
    match files {
        (None, None) if client_ca.is_some() => anyhow::bail!("tls_client_ca needs tls_cert and tls_key"),
        (None, None) => Ok((None, None)),
        (Some(cert), Some(key)) => {
            let (tls, ca) = portero_server::tls::load(&cert, &key, client_ca.as_deref()).with_context(|| {
                let ca = client_ca.as_ref().map(|p| format!(" and client CA {}", p.display())).unwrap_or_default();
                format!("loading TLS certificate {} and key {}{ca}", cert.display(), key.display())
            })?;
            Ok((Some(tls), ca))
        }
        _ => anyhow::bail!("TLS needs both tls_cert and tls_key"),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
