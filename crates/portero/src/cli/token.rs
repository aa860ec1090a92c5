//! `portero token`: get an access token in any of the four dialects (through `portero-client`)
//! and print it.

use std::io::BufRead;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use portero_client::{ClientConfig, Grant, SigningKey, TokenClient};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Dialect {
    /// HTTP Basic + form body (NetPay, Zertiban, RFC 6749 client_secret_basic).
    #[value(alias = "netpay", alias = "zertiban", alias = "client_secret_basic")]
    Basic,
    /// client_id/client_secret in the form body (client_secret_post).
    #[value(alias = "client_secret_post")]
    Post,
    /// JSON body with `action` and credentials (Pay-me).
    #[value(alias = "payme", alias = "pay-me")]
    Json,
    /// grant_type in the query string, Basic auth, form content type (Nequi).
    #[value(alias = "nequi")]
    Query,
}

impl From<Dialect> for portero_client::Dialect {
    fn from(dialect: Dialect) -> Self {
        match dialect {
            Dialect::Basic => Self::Basic,
            Dialect::Post => Self::Post,
            Dialect::Json => Self::Json,
            Dialect::Query => Self::Query,
        }
    }
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The token endpoint, e.g. http://127.0.0.1:8080/oauth2/token.
    #[arg(long)]
    pub url: String,
    /// The client id to authenticate as.
    #[arg(long, env = "PORTERO_CLIENT_ID")]
    pub client_id: String,
    /// The client's secret (prefer the variable: a flag shows in the process list). Only this
    /// command reads PORTERO_CLIENT_SECRET; `client create` reads PORTERO_CLIENT_CREATE_SECRET.
    #[arg(
        long,
        env = "PORTERO_CLIENT_SECRET",
        hide_env_values = true,
        allow_hyphen_values = true,
        required_unless_present = "private_key"
    )]
    pub client_secret: Option<String>,
    /// Authenticate with private_key_jwt instead of a secret: a private key file (PEM or JWK)
    /// whose public key is in the client's JWK Set; each request carries a fresh assertion.
    #[arg(long, value_name = "FILE", conflicts_with = "client_secret")]
    pub private_key: Option<std::path::PathBuf>,
    /// The `kid` to put in assertions (default: the JWK's own `kid`, or none).
    #[arg(long, requires = "private_key")]
    pub kid: Option<String>,
    /// Ask for DPoP-bound tokens (RFC 9449): a private key file (PEM or JWK) to make a proof
    /// with on every request; the answer's token_type is then DPoP.
    #[arg(long, value_name = "FILE")]
    pub dpop_key: Option<std::path::PathBuf>,
    /// How the request is written: basic, post, json (Pay-me) or query (Nequi).
    #[arg(long, value_enum, default_value_t = Dialect::Basic)]
    pub dialect: Dialect,
    /// client_credentials, or password (the password is read from standard input).
    #[arg(long, default_value = "client_credentials")]
    pub grant: String,
    /// The user, for --grant password (the password is read from standard input).
    #[arg(long)]
    pub username: Option<String>,
    /// Scopes to ask for, space-separated (default: the client's).
    #[arg(long)]
    pub scope: Option<String>,
    /// The audience (API) the token is for, one of the client's.
    #[arg(long)]
    pub audience: Option<String>,
    /// A header to send, 'NAME: VALUE' (NAME=VALUE also works); repeatable. It adds to, or
    /// overrides, the dialect's own (the Pay-me dialect sends ALG-API-VERSION: 1618440906);
    /// 'NAME:' with no value sends no NAME at all.
    #[arg(long = "header", value_name = "NAME: VALUE")]
    pub headers: Vec<String>,
    /// Print the whole JSON response instead of the access token alone.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: TokenArgs) -> anyhow::Result<()> {
    let grant = match args.grant.as_str() {
        "client_credentials" => Grant::ClientCredentials,
        "password" => {
            let username = args.username.context("--username is required for the password grant")?;
            let mut password = String::new();
            std::io::stdin().lock().read_line(&mut password).context("reading the password from standard input")?;
            Grant::Password { username, password: password.trim_end_matches(['\r', '\n']).to_owned() }
        }
        other => anyhow::bail!("--grant must be client_credentials or password, not {other:?}"),
    };
    let secret = args.client_secret.unwrap_or_default();
    let mut config =
        ClientConfig::client_credentials(args.url, args.client_id, secret, args.dialect.into()).with_grant(grant);
    if let Some(path) = &args.private_key {
        let mut key = read_key(path)?;
        if let Some(kid) = args.kid {
            key = key.with_kid(kid);
        }
        config = config.with_private_key(key);
    }
    if let Some(path) = &args.dpop_key {
        config = config.with_dpop(read_key(path)?);
    }
    if let Some(scope) = args.scope {
        config = config.with_scope(scope);
    }
    if let Some(audience) = args.audience {
        config = config.with_audience(audience);
    }
    for header in &args.headers {
        let (name, value) = parse_header(header)?;
        config = config.with_header(name, value);
    }
    config.request_headers()?;
    let answer = TokenClient::new(config)?.fetch().await?;
    if args.json {
        println!("{}", answer.raw());
    } else {
        println!("{}", answer.access_token());
    }
    Ok(())
}

/// A private key file; the error names the file, never its contents.
fn read_key(path: &std::path::Path) -> anyhow::Result<SigningKey> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    SigningKey::from_text(&text).with_context(|| format!("{} holds no usable private key", path.display()))
}

/// `NAME: VALUE` (as curl takes it) or `NAME=VALUE`: neither `:` nor `=` can be in a header name,
/// so the first of them ends the name.
fn parse_header(text: &str) -> anyhow::Result<(String, String)> {
    let at = text.find([':', '=']).context("--header must be 'NAME: VALUE'")?;
    let (name, value) = (text[..at].trim(), text[at + 1..].trim());
    anyhow::ensure!(!name.is_empty(), "--header must be 'NAME: VALUE'");
    Ok((name.to_owned(), value.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::parse_header;

    #[test]
    fn headers_as_curl_writes_them_or_name_equals_value() {
        let pair = |n: &str, v: &str| (n.to_owned(), v.to_owned());
        assert_eq!(parse_header("ALG-API-VERSION: 1618440906").unwrap(), pair("ALG-API-VERSION", "1618440906"));
        assert_eq!(parse_header("ALG-API-VERSION=1618440906").unwrap(), pair("ALG-API-VERSION", "1618440906"));
        assert_eq!(parse_header("X-Url: http://a=b").unwrap(), pair("X-Url", "http://a=b"));
        assert_eq!(parse_header("ALG-API-VERSION:").unwrap(), pair("ALG-API-VERSION", ""));
        assert!(parse_header("no separator").is_err());
        assert!(parse_header(": value").is_err());
    }
}
