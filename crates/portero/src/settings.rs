//! Settings: defaults, then `portero.toml` (`--config`, else `./portero.toml` when it exists),
//! then `PORTERO_*` variables and flags (clap reads both), each overriding the one before.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use portero_core::params::FieldLimits;
use portero_server::{ServerConfig, TokenPath};
use serde::Deserialize;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_DATABASE_URL: &str = "sqlite://portero.db";
/// Read when `--config` (`PORTERO_CONFIG`) is not given and this file exists.
pub const DEFAULT_CONFIG_FILE: &str = "portero.toml";

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
    /// DPoP proofs must carry a nonce the server issued (`DPoP-Nonce`, RFC 9449 §8).
    pub dpop_nonce: Option<bool>,
    pub signing_alg: Option<String>,
    pub default_locale: Option<String>,
    pub max_body_bytes: Option<usize>,
    pub key_reload_seconds: Option<u64>,
    /// Days a signing key signs before the next one, made ahead of time, takes over (0: off).
    pub key_rotation_days: Option<i64>,
    /// Seconds a client read from the database is reused (0: read on every request).
    pub client_cache_seconds: Option<u64>,
    /// Clients kept in memory at most (default 100000, ~1 KiB each); past it the oldest goes.
    pub client_cache_entries: Option<usize>,
    /// Bearer token of the admin HTTP API (prefer `PORTERO_ADMIN_TOKEN`); unset keeps it off.
    pub admin_token: Option<String>,
    /// PEM certificate chain and private key: serve HTTPS instead of HTTP.
    pub tls_cert: Option<std::path::PathBuf>,
    pub tls_key: Option<std::path::PathBuf>,
    /// PEM CA bundle: ask TLS clients for a certificate (optional) and accept `tls_client_auth`
    /// for those that chain to it (RFC 8705).
    pub tls_client_ca: Option<std::path::PathBuf>,
    /// Header a trusted TLS-terminating proxy passes the client certificate in (RFC 9440,
    /// e.g. "Client-Cert"); off by default. The proxy must remove it from client requests.
    pub tls_client_cert_header: Option<String>,
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
    /// Old providers that unknown clients and users are migrated from, lazily, until a cutoff.
    #[serde(default)]
    pub upstream: Vec<UpstreamConfig>,
}

/// `[[upstream]]`: see `portero_server::upstream`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// The old provider's token endpoint (https; plain http only to a loopback address).
    pub token_url: String,
    /// The Portero token paths it stands behind.
    pub paths: Vec<String>,
    /// After this (RFC 3339 date-time, or a TOML date or date-time), nothing is forwarded.
    pub cutoff: toml::Value,
    /// Grants a migrated client gets.
    pub grants: Vec<String>,
    /// Scopes a migrated client may have (space-separated).
    #[serde(default)]
    pub scopes: String,
    /// Tenant (id or name) of migrated clients and users.
    pub tenant: Option<String>,
    /// Longest access-token lifetime of a migrated client, in seconds.
    pub token_ttl: Option<i64>,
    #[serde(default)]
    pub audiences: Vec<String>,
}

/// Unix seconds of `2027-03-31`, `2027-03-31T23:59:59Z` or `2027-03-31T23:59:59-05:00` (a date
/// or a date-time without offset is read as UTC).
pub fn parse_cutoff(value: &toml::Value) -> anyhow::Result<i64> {
    let text = match value {
        toml::Value::String(text) => text.clone(),
        toml::Value::Datetime(datetime) => datetime.to_string(),
        _ => bail!("upstream cutoff must be a date or date-time, e.g. 2027-03-31T23:59:59Z"),
    };
    let bad = || anyhow::anyhow!("upstream cutoff {text:?} is not an RFC 3339 date-time or a date");
    let number = |part: &str| part.parse::<i64>().map_err(|_| bad());
    let (date, time) = match text.split_once(['T', 't', ' ']) {
        Some((date, time)) => (date, Some(time)),
        None => (text.as_str(), None),
    };
    let mut fields = date.split('-');
    let (year, month, day) = match (fields.next(), fields.next(), fields.next(), fields.next()) {
        (Some(y), Some(m), Some(d), None) if y.len() == 4 && m.len() == 2 && d.len() == 2 => {
            (number(y)?, number(m)?, number(d)?)
        }
        _ => return Err(bad()),
    };
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return Err(bad());
    }
    // Days since 1970-01-01 (Howard Hinnant's days_from_civil).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let mut seconds = days * 86_400;
    if let Some(time) = time {
        let (clock, offset) = match time.find(['Z', 'z', '+', '-']) {
            Some(at) => time.split_at(at),
            None => (time, ""),
        };
        let clock = clock.split('.').next().unwrap_or_default();
        let parts: Vec<&str> = clock.split(':').collect();
        let [h, m, s] = parts.as_slice() else { return Err(bad()) };
        let (h, m, s) = (number(h)?, number(m)?, number(s)?);
        if h > 23 || m > 59 || s > 60 {
            return Err(bad());
        }
        seconds += h * 3600 + m * 60 + s;
        if let Some(rest) = offset.strip_prefix(['+', '-']) {
            let (oh, om) = rest.split_once(':').ok_or_else(bad)?;
            let shift = number(oh)? * 3600 + number(om)? * 60;
            seconds += if offset.starts_with('+') { -shift } else { shift };
        } else if !offset.is_empty() && !offset.eq_ignore_ascii_case("z") {
            return Err(bad());
        }
    }
    Ok(seconds)
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
    /// Reads `path`, or `./portero.toml` when no path is given and that file exists.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        let default = Path::new(DEFAULT_CONFIG_FILE);
        let path = match path {
            Some(path) => path,
            None if default.is_file() => {
                tracing::info!(path = DEFAULT_CONFIG_FILE, "reading the configuration file in the current directory");
                default
            }
            None => return Ok(Self::default()),
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
        for upstream in &self.upstream {
            portero_server::upstream::check_token_url(&upstream.token_url).map_err(anyhow::Error::msg)?;
            if upstream.paths.is_empty() || upstream.grants.is_empty() {
                bail!("upstream {:?} needs paths and grants", upstream.token_url);
            }
            for path in &upstream.paths {
                if !config.token_paths.iter().any(|p| &p.path == path) {
                    bail!("upstream path {path:?} is not a token path (add it with [[token_path]])");
                }
            }
            config.upstreams.push(portero_server::Upstream {
                token_url: upstream.token_url.clone(),
                paths: upstream.paths.clone(),
                cutoff: parse_cutoff(&upstream.cutoff)?,
                grants: upstream.grants.clone(),
                scopes: upstream.scopes.split(' ').filter(|s| !s.is_empty()).map(str::to_owned).collect(),
                tenant: upstream.tenant.clone(),
                token_ttl: upstream.token_ttl,
                audiences: upstream.audiences.clone(),
            });
        }
        if let Some(days) = self.key_rotation_days {
            if !(0..=3650).contains(&days) {
                bail!("key_rotation_days must be 0 (off) to 3650");
            }
            config.key_rotation_days = days;
        }
        if let Some(seconds) = self.client_cache_seconds {
            config.client_cache_ttl = std::time::Duration::from_secs(seconds.min(300));
        }
        if let Some(entries) = self.client_cache_entries {
            config.client_cache_entries = entries;
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

/// The file of a `sqlite:` URL (`None` for PostgreSQL and in-memory databases).
pub fn sqlite_file(database_url: &str) -> Option<PathBuf> {
    let rest = database_url.strip_prefix("sqlite://").or_else(|| database_url.strip_prefix("sqlite:"))?;
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let memory = path.is_empty() || path == ":memory:" || query.split('&').any(|kv| kv == "mode=memory");
    (!memory).then(|| PathBuf::from(path))
}

/// Where the master key file lives when none is named: beside the SQLite file, else `./portero.key`.
pub fn default_master_key_file(database_url: &str) -> PathBuf {
    match sqlite_file(database_url) {
        Some(path) => PathBuf::from(format!("{}.key", path.display())),
        None => PathBuf::from("portero.key"),
    }
}

/// The database as an error message may name it: the SQLite file (absolute), or the PostgreSQL
/// URL without its password and query string.
pub fn describe_database(database_url: &str) -> String {
    if let Some(path) = sqlite_file(database_url) {
        let shown = std::path::absolute(&path).unwrap_or(path);
        return format!("SQLite file {}", shown.display());
    }
    let Some((scheme, rest)) = database_url.split_once("://") else {
        return database_url.split('?').next().unwrap_or_default().to_owned();
    };
    let rest = rest.split('?').next().unwrap_or_default();
    let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
    let host = match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{user}@{host}")
        }
        None => authority.to_owned(),
    };
    if scheme.starts_with("sqlite") {
        return format!("{scheme}://{rest}");
    }
    format!("PostgreSQL {scheme}://{host}/{path}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_descriptions_never_carry_a_password() {
        let pg = describe_database("postgres://portero:s3cret@db.internal:5433/portero?sslmode=require&password=x");
        assert_eq!(pg, "PostgreSQL postgres://portero@db.internal:5433/portero");
        assert_eq!(describe_database("postgresql://db/p"), "PostgreSQL postgresql://db/p");
        let sqlite = describe_database("sqlite:///var/lib/portero/portero.db?mode=rwc");
        assert_eq!(sqlite, "SQLite file /var/lib/portero/portero.db");
        assert!(describe_database("sqlite://portero.db").ends_with("/portero.db"));
        assert_eq!(sqlite_file("sqlite::memory:"), None);
        assert_eq!(sqlite_file("sqlite://x.db?mode=memory"), None);
        assert_eq!(default_master_key_file("sqlite://data/p.db"), PathBuf::from("data/p.db.key"));
        assert_eq!(default_master_key_file("postgres://h/d"), PathBuf::from("portero.key"));
    }

    #[test]
    fn cutoffs() {
        let at = |text: &str| parse_cutoff(&toml::Value::String(text.into())).unwrap();
        assert_eq!(at("1970-01-01"), 0);
        assert_eq!(at("2026-12-02T16:40:03Z"), 1_796_229_603);
        assert_eq!(at("2026-12-02T11:40:03-05:00"), 1_796_229_603);
        assert_eq!(at("2026-12-02T16:40:03.5Z"), 1_796_229_603);
        let date: toml::Value = toml::from_str::<toml::Table>("d = 2026-12-02").unwrap()["d"].clone();
        assert_eq!(parse_cutoff(&date).unwrap(), 1_796_169_600);
        for bad in ["2026-13-01", "tomorrow", "2026-12-02T25:00:00Z", "2026-12-02T10:00:00X"] {
            assert!(parse_cutoff(&toml::Value::String(bad.into())).is_err(), "{bad}");
        }
    }

    #[test]
    fn upstreams_are_checked_at_start() {
        let file = |url: &str| {
            let text = format!(
                "[[upstream]]\ntoken_url = \"{url}\"\npaths = [\"/oauth-service/oauth/token\"]\n\
                 cutoff = 2026-12-02T16:40:03Z\ngrants = [\"password\"]\nscopes = \"sale reprint\"\ntenant = \"netpay\"\n"
            );
            toml::from_str::<FileConfig>(&text).unwrap().server_config()
        };
        let config = file("https://old.example.com/oauth/token").unwrap();
        assert_eq!(config.upstreams[0].cutoff, 1_796_229_603);
        assert_eq!(config.upstreams[0].scopes, ["sale", "reprint"]);
        assert!(file("http://127.0.0.1:9000/token").is_ok());
        assert!(file("http://old.example.com/token").is_err(), "plain http only to loopback");
        assert!(file("ftp://old.example.com/token").is_err());
    }

    /// `key = value` with a plain (possibly dotted) key: a setting, not prose.
    fn setting_key(line: &str) -> Option<&str> {
        let (key, _) = line.split_once(" = ")?;
        let plain = !key.is_empty() && key.chars().all(|c| c.is_ascii_lowercase() || c == '_' || c == '.');
        plain.then_some(key)
    }

    /// `deploy/portero.toml` sets every key (or shows it commented out, `# key = value`): it
    /// parses as it is and with every such line uncommented, and then every key is set.
    #[test]
    fn the_sample_configuration_is_complete_and_parses() {
        let sample = include_str!("../../../deploy/portero.toml");
        toml::from_str::<FileConfig>(sample).expect("deploy/portero.toml as shipped");
        let uncommented: String = sample
            .lines()
            .map(|line| {
                let rest = line.strip_prefix("# ").unwrap_or(line);
                if rest.starts_with('[') || setting_key(rest).is_some() { rest } else { line }
            })
            .collect::<Vec<_>>()
            .join("\n");
        let all: FileConfig = toml::from_str(&uncommented).expect("deploy/portero.toml with its examples uncommented");
        // No `..`: a new field fails to compile here until the sample (and this list) has it.
        let FileConfig {
            listen,
            database_url,
            issuer,
            api_version_header,
            access_token_ttl,
            refresh_token_ttl,
            refresh_retry_window_seconds,
            dpop_nonce,
            signing_alg,
            default_locale,
            max_body_bytes,
            key_reload_seconds,
            key_rotation_days,
            client_cache_seconds,
            client_cache_entries,
            admin_token,
            tls_cert,
            tls_key,
            tls_client_ca,
            tls_client_cert_header,
            read_timeout_seconds,
            request_timeout_seconds,
            client_address_header,
            address_failure_threshold,
            metrics_listen,
            metrics_token,
            limits,
            token_path,
            upstream,
        } = all;
        let set = [
            ("listen", listen.is_some()),
            ("database_url", database_url.is_some()),
            ("issuer", issuer.is_some()),
            ("api_version_header", api_version_header.is_some()),
            ("access_token_ttl", access_token_ttl.is_some()),
            ("refresh_token_ttl", refresh_token_ttl.is_some()),
            ("refresh_retry_window_seconds", refresh_retry_window_seconds.is_some()),
            ("dpop_nonce", dpop_nonce.is_some()),
            ("signing_alg", signing_alg.is_some()),
            ("default_locale", default_locale.is_some()),
            ("max_body_bytes", max_body_bytes.is_some()),
            ("key_reload_seconds", key_reload_seconds.is_some()),
            ("key_rotation_days", key_rotation_days.is_some()),
            ("client_cache_seconds", client_cache_seconds.is_some()),
            ("client_cache_entries", client_cache_entries.is_some()),
            ("admin_token", admin_token.is_some()),
            ("tls_cert", tls_cert.is_some()),
            ("tls_key", tls_key.is_some()),
            ("tls_client_ca", tls_client_ca.is_some()),
            ("tls_client_cert_header", tls_client_cert_header.is_some()),
            ("read_timeout_seconds", read_timeout_seconds.is_some()),
            ("request_timeout_seconds", request_timeout_seconds.is_some()),
            ("client_address_header", client_address_header.is_some()),
            ("address_failure_threshold", address_failure_threshold.is_some()),
            ("metrics_listen", metrics_listen.is_some()),
            ("metrics_token", metrics_token.is_some()),
            ("limits.default_max_chars", limits.default_max_chars.is_some()),
            ("limits.max_params", limits.max_params.is_some()),
            ("token_path", !token_path.is_empty()),
            ("upstream", !upstream.is_empty()),
        ];
        let missing: Vec<&str> = set.iter().filter(|(_, set)| !set).map(|(key, _)| *key).collect();
        assert!(missing.is_empty(), "deploy/portero.toml lacks {missing:?}");
        // The defaults the sample states are the ones the code uses.
        let shipped: FileConfig = toml::from_str(sample).unwrap();
        assert_eq!(shipped.listen.as_deref(), Some(DEFAULT_LISTEN));
        assert_eq!(shipped.database_url.as_deref(), Some(DEFAULT_DATABASE_URL));
        let defaults = ServerConfig::default();
        let config = shipped.server_config().unwrap();
        assert_eq!(config.max_body_bytes, defaults.max_body_bytes);
        assert_eq!(config.read_timeout, defaults.read_timeout);
        assert_eq!(config.request_timeout, defaults.request_timeout);
        assert_eq!(config.client_cache_ttl, defaults.client_cache_ttl);
        assert_eq!(config.key_rotation_days, defaults.key_rotation_days);
        assert_eq!(config.throttle.address_threshold, defaults.throttle.address_threshold);
        let limits = FieldLimits::default();
        assert_eq!(shipped.limits.default_max_chars, Some(limits.default_max_chars));
        assert_eq!(shipped.limits.max_params, Some(limits.max_params));
    }

    /// Every file key of the sample is in the README's configuration reference, and back.
    #[test]
    fn the_readme_reference_names_every_key_of_the_sample() {
        let sample = include_str!("../../../deploy/portero.toml");
        let readme = include_str!("../../../README.md");
        let table = readme.split("## Configuration reference").nth(1).expect("README has the reference");
        // The top-level keys: those before the first table.
        for line in sample.lines().take_while(|line| !line.trim_start_matches("# ").starts_with('[')) {
            let rest = line.strip_prefix("# ").unwrap_or(line);
            if let Some(key) = setting_key(rest) {
                assert!(table.contains(&format!("`{key}`")), "README's configuration reference lacks `{key}`");
            }
        }
    }
}
