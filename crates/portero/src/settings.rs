//! Settings: defaults, then `portero.toml`, then `PORTERO_*` variables and flags (clap reads
//! both), each overriding the one before.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use portero_core::params::FieldLimits;
use portero_server::{ServerConfig, TokenPath};
use serde::Deserialize;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_DATABASE_URL: &str = "sqlite://portero.db";

/// The configuration file. Every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<String>,
    pub database_url: Option<String>,
    pub issuer: Option<String>,
    /// `NAME=V1[,V2...]`, e.g. `ALG-API-VERSION=1618440906`.
    pub api_version_header: Option<String>,
    pub access_token_ttl: Option<i64>,
    pub refresh_token_ttl: Option<i64>,
    /// Seconds after a rotation in which the old refresh token may be redeemed again for the
    /// same new one (a retry after a lost answer); 0, the default, treats it as reuse.
    pub refresh_retry_window_seconds: Option<i64>,
    pub signing_alg: Option<String>,
    pub default_locale: Option<String>,
    pub max_body_bytes: Option<usize>,
    pub key_reload_seconds: Option<u64>,
    /// Seconds a client read from the database is reused (0: read on every request).
    pub client_cache_seconds: Option<u64>,
    /// Bearer token of the admin HTTP API (prefer `PORTERO_ADMIN_TOKEN`); unset keeps it off.
    pub admin_token: Option<String>,
    /// PEM certificate chain and private key: serve HTTPS instead of HTTP.
    pub tls_cert: Option<std::path::PathBuf>,
    pub tls_key: Option<std::path::PathBuf>,
    /// Seconds a connection may take to send its headers, and then its body (default 10).
    pub read_timeout_seconds: Option<u64>,
    /// Seconds a request may take once read before it is answered 503 (default 5).
    pub request_timeout_seconds: Option<u64>,
    /// Header a trusted reverse proxy sets to the caller's address (e.g. "X-Forwarded-For").
    pub client_address_header: Option<String>,
    /// Failed authentications from one address before it is blocked (default 50; 0 = off).
    pub address_failure_threshold: Option<i64>,
    /// Serve `/metrics` on this address of its own (plain HTTP), not on `listen`.
    pub metrics_listen: Option<String>,
    /// Bearer token `/metrics` requires (prefer `PORTERO_METRICS_TOKEN`). With no `metrics_listen`,
    /// it puts `/metrics` on the main listener; with neither, `/metrics` is not served.
    pub metrics_token: Option<String>,
    /// Limits for every token path: `default_max_chars`, `max_params`, and per-parameter caps.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// Extra token paths, or other limits for a built-in one.
    #[serde(default)]
    pub token_path: Vec<TokenPathConfig>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    pub default_max_chars: Option<usize>,
    pub max_params: Option<usize>,
    #[serde(default)]
    pub fields: HashMap<String, usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenPathConfig {
    pub path: String,
    #[serde(default)]
    pub limits: LimitsConfig,
}

impl FileConfig {
    pub fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        let Some(path) = path else {
            return Ok(Self::default());
        };
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("in {}", path.display()))
    }

    /// The token paths: the built-in ones, with configured limits applied, plus extras.
    pub fn server_config(&self) -> anyhow::Result<ServerConfig> {
        let mut config = ServerConfig::default();
        let base = self.limits.apply(FieldLimits::default());
        for entry in &mut config.token_paths {
            entry.limits = base.clone();
        }
        for extra in &self.token_path {
            if !extra.path.starts_with('/') || extra.path.contains(['{', '}', '*']) {
                bail!("token_path {:?} must be a plain path starting with /", extra.path);
            }
            let limits = extra.limits.apply(base.clone());
            match config.token_paths.iter_mut().find(|p| p.path == extra.path) {
                Some(existing) => existing.limits = limits,
                None => config.token_paths.push(TokenPath { path: extra.path.clone(), limits }),
            }
        }
        if let Some(seconds) = self.client_cache_seconds {
            config.client_cache_ttl = std::time::Duration::from_secs(seconds.min(300));
        }
        config.client_address_header = self.client_address_header.clone().filter(|h| !h.is_empty());
        if let Some(threshold) = self.address_failure_threshold {
            config.throttle.address_threshold = threshold.max(0);
        }
        if let Some(seconds) = self.request_timeout_seconds {
            config.request_timeout = std::time::Duration::from_secs(seconds.clamp(1, 120));
        }
        if let Some(seconds) = self.read_timeout_seconds {
            config.read_timeout = std::time::Duration::from_secs(seconds.clamp(1, 300));
        }
        if let Some(max) = self.max_body_bytes {
            config.max_body_bytes = max.clamp(256, 1024 * 1024);
        }
        Ok(config)
    }
}

impl LimitsConfig {
    fn apply(&self, mut limits: FieldLimits) -> FieldLimits {
        if let Some(max) = self.default_max_chars {
            limits.default_max_chars = max;
        }
        if let Some(max) = self.max_params {
            limits.max_params = max;
        }
        limits.per_field.extend(self.fields.iter().map(|(k, v)| (k.clone(), *v)));
        limits
    }
}

/// The database URL from flag/env, else the file, else the default.
pub fn database_url(flag: Option<&str>, file: &FileConfig) -> String {
    flag.map(str::to_owned).or_else(|| file.database_url.clone()).unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned())
}

/// Where the master key file lives when none is named: beside the SQLite file, else `./portero.key`.
pub fn default_master_key_file(database_url: &str) -> PathBuf {
    let sqlite_path = database_url
        .strip_prefix("sqlite://")
        .or_else(|| database_url.strip_prefix("sqlite:"))
        .map(|rest| rest.split('?').next().unwrap_or(rest));
    match sqlite_path {
        Some(path) if !path.is_empty() && path != ":memory:" => PathBuf::from(format!("{path}.key")),
        _ => PathBuf::from("portero.key"),
    }
}
