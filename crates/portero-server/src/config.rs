//! What the HTTP layer needs to know beyond the core's policy.

use portero_core::params::FieldLimits;

/// A path the token endpoint answers on, with its own parameter limits.
#[derive(Debug, Clone)]
pub struct TokenPath {
    pub path: String,
    pub limits: FieldLimits,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Token endpoints: the standard `/oauth2/token`, the seeds' paths, and configured extras.
    pub token_paths: Vec<TokenPath>,
    /// Largest request body accepted on the token endpoint.
    pub max_body_bytes: usize,
    /// Bearer token of the admin HTTP API; `None` (the default) leaves the API off.
    pub admin_token: Option<String>,
    /// How long a client read from the database is trusted before it is read again.
    pub client_cache_ttl: std::time::Duration,
    /// Clients (and their verified secrets) kept in memory; past it the oldest makes room.
    pub client_cache_entries: usize,
    /// Brute-force throttling of failed client and password authentications.
    pub throttle: portero_core::throttle::ThrottleRules,
    /// How long a connection may take to send its request headers, and then its body.
    pub read_timeout: std::time::Duration,
    /// Header a trusted proxy puts the caller's address in (e.g. `X-Forwarded-For`); `None`
    /// means the connection's peer address is the caller's.
    pub client_address_header: Option<String>,
    /// The longest a request may take once read; past it the answer is 503
    /// `temporarily_unavailable` (a database that hangs never hangs the caller).
    pub request_timeout: std::time::Duration,
    /// Whether the main listener answers `/metrics`. Off by default: the series are labelled by
    /// client id, which is not for everyone; serve them with `metrics_app` on a listener of their
    /// own, or turn this on together with `metrics_token`.
    pub metrics_on_main: bool,
    /// Bearer token `/metrics` requires wherever it is served; `None` requires none.
    pub metrics_token: Option<String>,
    /// Days a signing key signs before the next one takes over (made ahead of time, published
    /// longer than the JWKS cache lifetime first); 0 turns scheduled rotation off.
    pub key_rotation_days: i64,
    /// The CA bundle TLS client certificates are checked against for `tls_client_auth`
    /// (`tls_client_ca`; RFC 8705 §2.1); set when this server terminates TLS with it.
    pub client_ca: Option<crate::tls::ClientCa>,
    /// Header a trusted TLS-terminating proxy passes the client certificate in (RFC 9440
    /// `Client-Cert`); when set, it is the only source of client certificates, and the proxy
    /// must remove it from what clients send.
    pub client_cert_header: Option<String>,
    /// Old providers that clients and users unknown to Portero are checked against until a
    /// cutoff (lazy migration, see `upstream`).
    pub upstreams: Vec<Upstream>,
}

/// `[[upstream]]`: an old provider's token endpoint that stands behind some token paths.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// Where requests are forwarded: `https://...`, or `http://` to a loopback address only.
    pub token_url: String,
    /// The Portero token paths it stands behind.
    pub paths: Vec<String>,
    /// Unix seconds after which nothing is forwarded.
    pub cutoff: i64,
    /// What a migrated client gets.
    pub grants: Vec<String>,
    pub scopes: Vec<String>,
    /// The tenant (id or name) migrated clients act for and migrated users belong to.
    pub tenant: Option<String>,
    pub token_ttl: Option<i64>,
    pub audiences: Vec<String>,
}

/// The paths every Portero answers on: RFC-style, NetPay's (Spring) and Zertiban's.
pub const DEFAULT_TOKEN_PATHS: [&str; 3] = ["/oauth2/token", "/oauth-service/oauth/token", "/idp/oauth2/token"];

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            token_paths: DEFAULT_TOKEN_PATHS
                .iter()
                .map(|p| TokenPath { path: (*p).to_owned(), limits: FieldLimits::default() })
                .collect(),
            max_body_bytes: 16 * 1024,
            admin_token: None,
            client_cache_ttl: std::time::Duration::from_secs(60),
            client_cache_entries: portero_core::client_cache::DEFAULT_CAPACITY,
            throttle: portero_core::throttle::ThrottleRules::default(),
            read_timeout: std::time::Duration::from_secs(10),
            client_address_header: None,
            request_timeout: std::time::Duration::from_secs(5),
            metrics_on_main: false,
            metrics_token: None,
            key_rotation_days: 90,
            client_ca: None,
            client_cert_header: None,
            upstreams: Vec::new(),
        }
    }
}
