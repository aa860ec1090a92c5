//! `portero token`: get an access token in any of the four dialects (through `portero-client`)
//! and print it.

use std::io::BufRead;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use portero_client::{ClientConfig, Grant, TokenClient};

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
    #[arg(long, env = "PORTERO_CLIENT_ID")]
    pub client_id: String,
    #[arg(long, env = "PORTERO_CLIENT_SECRET", hide_env_values = true, allow_hyphen_values = true)]
    pub client_secret: String,
    #[arg(long, value_enum, default_value_t = Dialect::Basic)]
    pub dialect: Dialect,
    /// client_credentials, or password (the password is read from standard input).
    #[arg(long, default_value = "client_credentials")]
    pub grant: String,
    #[arg(long)]
    pub username: Option<String>,
    #[arg(long)]
    pub scope: Option<String>,
    #[arg(long)]
    pub audience: Option<String>,
    /// A header to send, NAME=VALUE (e.g. ALG-API-VERSION=1618440906); repeatable.
    #[arg(long = "header")]
    pub headers: Vec<String>,
    /// Print the whole JSON response instead of the access token alone.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: TokenArgs) -> anyhow::Result<()> {
    let mut config =
        ClientConfig::client_credentials(args.url, args.client_id, args.client_secret, args.dialect.into());
    config.grant = match args.grant.as_str() {
        "client_credentials" => Grant::ClientCredentials,
        "password" => {
            let username = args.username.context("--username is required for the password grant")?;
            let mut password = String::new();
            std::io::stdin().lock().read_line(&mut password).context("reading the password from standard input")?;
            Grant::Password { username, password: password.trim_end_matches(['\r', '\n']).to_owned() }
        }
        other => anyhow::bail!("--grant must be client_credentials or password, not {other:?}"),
    };
    config.scope = args.scope;
    config.audience = args.audience;
    for header in &args.headers {
        let (name, value) = header.split_once('=').context("--header must be NAME=VALUE")?;
        config.headers.push((name.to_owned(), value.to_owned()));
    }
    let answer = TokenClient::new(config).fetch().await?;
    if args.json {
        println!("{}", answer.raw);
    } else {
        println!("{}", answer.access_token);
    }
    Ok(())
}
