//! `portero token`: get an access token in any of the four dialects and print it.

use std::io::BufRead;

use anyhow::{Context as _, bail};
use clap::{Args, ValueEnum};
use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Dialect {
    /// HTTP Basic + form body (NetPay, Zertiban, RFC 6749 client_secret_basic).
    Basic,
    /// client_id/client_secret in the form body (client_secret_post).
    Post,
    /// JSON body with `action` and credentials (Pay-me).
    Json,
    /// grant_type in the query string, Basic auth, form content type (Nequi).
    Query,
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The token endpoint, e.g. http://127.0.0.1:8080/oauth2/token.
    #[arg(long)]
    pub url: String,
    #[arg(long, env = "PORTERO_CLIENT_ID")]
    pub client_id: String,
    #[arg(long, env = "PORTERO_CLIENT_SECRET", hide_env_values = true)]
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

/// RFC 6749 §2.3.1: form-encode id and secret before joining them for Basic.
fn form_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => out.push(byte as char),
            b' ' => out.push('+'),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

pub async fn run(args: TokenArgs) -> anyhow::Result<()> {
    let mut params: Vec<(&str, String)> = vec![("grant_type", args.grant.clone())];
    if args.grant == "password" {
        let username = args.username.clone().context("--username is required for the password grant")?;
        let mut password = String::new();
        std::io::stdin().lock().read_line(&mut password).context("reading the password from standard input")?;
        params.push(("username", username));
        params.push(("password", password.trim_end_matches(['\r', '\n']).to_owned()));
    }
    if let Some(scope) = &args.scope {
        params.push(("scope", scope.clone()));
    }
    if let Some(audience) = &args.audience {
        params.push(("audience", audience.clone()));
    }
    let http = reqwest::Client::builder().timeout(std::time::Duration::from_secs(30)).build()?;
    let basic = || {
        use base64::Engine;
        let raw = format!("{}:{}", form_encode(&args.client_id), form_encode(&args.client_secret));
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(raw))
    };
    let mut request = match args.dialect {
        Dialect::Basic => http.post(&args.url).header("Authorization", basic()).form(&params),
        Dialect::Post => {
            params.push(("client_id", args.client_id.clone()));
            params.push(("client_secret", args.client_secret.clone()));
            http.post(&args.url).form(&params)
        }
        Dialect::Json => {
            let mut body =
                json!({ "action": "authorize", "client_id": args.client_id, "client_secret": args.client_secret });
            for (name, value) in &params {
                body[*name] = Value::String(value.clone());
            }
            http.post(&args.url).json(&body)
        }
        Dialect::Query => {
            let grant = params.remove(0).1;
            http.post(&args.url).query(&[("grant_type", grant)]).header("Authorization", basic()).form(&params)
        }
    };
    for header in &args.headers {
        let (name, value) = header.split_once('=').context("--header must be NAME=VALUE")?;
        request = request.header(name, value);
    }
    let response = request.send().await.with_context(|| format!("POST {}", args.url))?;
    let status = response.status();
    let body: Value = response.json().await.context("the token endpoint did not answer with JSON")?;
    if !status.is_success() {
        bail!("{status}: {body}");
    }
    if args.json {
        println!("{body}");
    } else {
        let token = body["access_token"].as_str().context("the response has no access_token")?;
        println!("{token}");
    }
    Ok(())
}
