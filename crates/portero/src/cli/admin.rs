//! Admin commands: tenants, clients, users, keys. Each opens the database named by
//! `--database-url` (or the configuration file), like `serve`.

use std::io::BufRead;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use portero_core::grant::GrantType;
use portero_core::keys::{Alg, MasterKey, SigningKey, next_activation};
use portero_core::secret::{generate_client_secret, hash_generated_secret, hash_password};
use portero_core::store::{Client, RefreshPolicy, Store, StoreError, Tenant, User};
use portero_server::resolve_master_key;
use portero_server::routes::token::unix_now;
use portero_store::Database;

use super::Global;
use crate::settings::{self, FileConfig};

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant and print its id.
    Create {
        name: String,
        /// Use this id (a UUID, e.g. a Zertiban businessUuid) instead of a generated one.
        #[arg(long)]
        id: Option<String>,
    },
    /// List tenants: id and name.
    List,
}

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Create a client. Prints the generated secret once when --secret is not given.
    Create(Box<ClientCreate>),
    /// List clients (never their secrets).
    List,
}

#[derive(Debug, Args)]
pub struct ClientCreate {
    #[arg(long)]
    pub id: String,
    /// The client's secret, when it must match one already in use (stored as an argon2id hash).
    #[arg(long, env = "PORTERO_CLIENT_SECRET", hide_env_values = true)]
    pub secret: Option<String>,
    /// Allowed grants: client_credentials, password, refresh_token (comma-separated).
    #[arg(long, value_delimiter = ',', required = true)]
    pub grants: Vec<String>,
    /// Scopes the client may ask for, space-separated.
    #[arg(long, default_value = "")]
    pub scopes: String,
    /// An audience the client may ask for (repeatable); the first is not special.
    #[arg(long = "audience")]
    pub audiences: Vec<String>,
    /// A tenant (id or name) the client acts for (repeatable).
    #[arg(long = "tenant")]
    pub tenants: Vec<String>,
    /// Access-token lifetime in seconds (default: the server's, 3600).
    #[arg(long)]
    pub token_ttl: Option<i64>,
    /// When refresh tokens are issued: always, offline_access (only with that scope), never.
    #[arg(long, default_value = "always")]
    pub refresh_tokens: String,
    /// Drop requested scopes the client may not have instead of refusing the request.
    #[arg(long)]
    pub ignore_unknown_scopes: bool,
    /// Locale of Pay-me envelope messages, e.g. es_PE or en_US.
    #[arg(long)]
    pub locale: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user; the password is read from standard input (first line). Prints the user id.
    Create {
        /// Tenant id or name.
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        username: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// List signing keys and their state.
    List,
    /// Add a signing key: published at once, signing after --publish-delay seconds.
    Rotate {
        #[arg(long, default_value = "RS256")]
        alg: String,
        /// Seconds between publishing the key in the JWKS and signing with it (default 360,
        /// longer than the JWKS cache lifetime of 300 s).
        #[arg(long, default_value_t = 360)]
        publish_delay: i64,
    },
}

async fn open(global: &Global) -> anyhow::Result<(Database, String)> {
    let file = FileConfig::load(global.config.as_deref())?;
    let url = settings::database_url(global.database_url.as_deref(), &file);
    let db = Database::connect(&url)
        .await
        .context("opening the database")?;
    Ok((db, url))
}

/// The master key, as `serve` resolves it.
pub fn master_key(global: &Global, database_url: &str) -> anyhow::Result<MasterKey> {
    let from_env = std::env::var("PORTERO_MASTER_KEY")
        .ok()
        .filter(|v| !v.is_empty());
    let file = global
        .master_key_file
        .clone()
        .unwrap_or_else(|| settings::default_master_key_file(database_url));
    Ok(resolve_master_key(from_env.as_deref(), &file)?)
}

fn conflict(what: &str) -> impl FnOnce(StoreError) -> anyhow::Error + '_ {
    move |error| match error {
        StoreError::Conflict(_) => anyhow::anyhow!("{what} already exists"),
        other => other.into(),
    }
}

pub async fn tenant(global: &Global, command: TenantCommand) -> anyhow::Result<()> {
    let (db, _) = open(global).await?;
    match command {
        TenantCommand::Create { name, id } => {
            let id = match id {
                Some(id) => uuid::Uuid::parse_str(&id)
                    .context("--id must be a UUID")?
                    .to_string(),
                None => uuid::Uuid::new_v4().to_string(),
            };
            check_word("tenant name", &name)?;
            let tenant = Tenant {
                id: id.clone(),
                name,
                created_at: unix_now(),
            };
            db.create_tenant(&tenant)
                .await
                .map_err(conflict("a tenant with this id or name"))?;
            println!("{id}");
        }
        TenantCommand::List => {
            for tenant in db.list_tenants().await? {
                println!("{}\t{}", tenant.id, tenant.name);
            }
        }
    }
    Ok(())
}

/// Names that end up in space-separated lists must be one printable word.
fn check_word(what: &str, value: &str) -> anyhow::Result<()> {
    if value.is_empty()
        || value.len() > 255
        || value.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        bail!("{what} must be 1 to 255 characters without spaces");
    }
    Ok(())
}

pub async fn client(global: &Global, command: ClientCommand) -> anyhow::Result<()> {
    let (db, _) = open(global).await?;
    match command {
        ClientCommand::Create(args) => create_client(&db, *args).await,
        ClientCommand::List => {
            for c in db.list_clients().await? {
                let grants: Vec<&str> = c.grants.iter().map(|g| g.as_str()).collect();
                println!(
                    "{}\tgrants={}\tscopes={}\taudiences={}\ttenants={}\tttl={}\trefresh={}",
                    c.id,
                    grants.join(","),
                    c.scopes.join(" "),
                    c.audiences.join(","),
                    c.tenants.join(","),
                    c.token_ttl.map_or("default".to_owned(), |t| t.to_string()),
                    c.refresh_policy.as_str()
                );
            }
            Ok(())
        }
    }
}

async fn create_client(db: &Database, args: ClientCreate) -> anyhow::Result<()> {
    check_word("--id", &args.id)?;
    if args.id.contains(':') {
        bail!("--id must not contain ':' (it could not travel in a Basic header)");
    }
    let grants = args
        .grants
        .iter()
        .map(|g| {
            GrantType::parse(g.trim()).with_context(|| {
                format!("unknown grant {g:?}: use client_credentials, password, refresh_token")
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let scopes = portero_core::scope::parse(&args.scopes)
        .map_err(|e| anyhow::anyhow!("--scopes: {}", e.description))?;
    for audience in &args.audiences {
        check_word("--audience", audience)?;
    }
    let mut tenants = Vec::new();
    for t in &args.tenants {
        let tenant = db
            .find_tenant(t)
            .await?
            .with_context(|| format!("no tenant {t:?}: create it first"))?;
        tenants.push(tenant.id);
    }
    if let Some(ttl) = args.token_ttl {
        anyhow::ensure!(
            (1..=30 * 86_400).contains(&ttl),
            "--token-ttl must be between 1 and 2592000 seconds"
        );
    }
    let refresh_policy = RefreshPolicy::parse(&args.refresh_tokens)
        .context("--refresh-tokens must be always, offline_access or never")?;
    if let Some(locale) = &args.locale {
        let ok = (2..=16).contains(&locale.len())
            && locale
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        anyhow::ensure!(ok, "--locale must look like es_PE or en-US");
    }
    let (secret_hash, generated) = match &args.secret {
        Some(secret) => {
            anyhow::ensure!(
                !secret.is_empty() && secret.len() <= 512,
                "--secret must be 1 to 512 characters"
            );
            (hash_password(secret), None)
        }
        None => {
            let secret = generate_client_secret();
            (hash_generated_secret(&secret), Some(secret))
        }
    };
    let client = Client {
        id: args.id,
        secret_hash,
        grants,
        scopes,
        audiences: args.audiences,
        tenants,
        token_ttl: args.token_ttl,
        refresh_policy,
        ignore_unknown_scopes: args.ignore_unknown_scopes,
        locale: args.locale,
        created_at: unix_now(),
    };
    db.create_client(&client)
        .await
        .map_err(conflict("a client with this id"))?;
    match generated {
        Some(secret) => {
            eprintln!(
                "created client {}; its secret is shown once, below:",
                client.id
            );
            println!("{secret}");
        }
        None => eprintln!("created client {}", client.id),
    }
    Ok(())
}

pub async fn user(global: &Global, command: UserCommand) -> anyhow::Result<()> {
    let (db, _) = open(global).await?;
    let UserCommand::Create { tenant, username } = command;
    check_word("--username", &username)?;
    let tenant = db
        .find_tenant(&tenant)
        .await?
        .with_context(|| format!("no tenant {tenant:?}"))?;
    let mut password = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut password)
        .context("reading the password from standard input")?;
    let password = password.trim_end_matches(['\r', '\n']);
    anyhow::ensure!(
        !password.is_empty(),
        "the password (read from standard input) is empty"
    );
    anyhow::ensure!(
        password.len() <= 1024,
        "the password is longer than 1024 bytes"
    );
    let user = User {
        id: uuid::Uuid::new_v4().to_string(),
        tenant_id: tenant.id,
        username,
        password_hash: hash_password(password),
        created_at: unix_now(),
    };
    db.create_user(&user)
        .await
        .map_err(conflict("a user with this username in this tenant"))?;
    println!("{}", user.id);
    Ok(())
}

pub async fn keys(global: &Global, command: KeysCommand) -> anyhow::Result<()> {
    let (db, url) = open(global).await?;
    let now = unix_now();
    match command {
        KeysCommand::List => {
            for key in db.list_keys().await? {
                let state = match key.retired_at {
                    Some(_) => "retired",
                    None if key.activate_at <= now => "signing-eligible",
                    None => "published",
                };
                println!(
                    "{}\t{}\t{}\tcreated={}\tactivates={}",
                    key.kid, key.alg, state, key.created_at, key.activate_at
                );
            }
        }
        KeysCommand::Rotate { alg, publish_delay } => {
            anyhow::ensure!(publish_delay >= 0, "--publish-delay must not be negative");
            let alg = Alg::parse(&alg)?;
            let master = master_key(global, &url)?;
            let activate_at = next_activation(&db.list_keys().await?, now, publish_delay);
            let key = SigningKey::generate(alg, &master, now, activate_at)?;
            db.insert_key(&key).await?;
            println!("{}", key.kid);
            eprintln!(
                "published key {} ({}); it signs from {} (in {} s)",
                key.kid,
                key.alg,
                key.activate_at,
                key.activate_at - now
            );
        }
    }
    Ok(())
}
