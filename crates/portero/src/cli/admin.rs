//! Admin commands: tenants, clients, users, keys. Each opens the database named by
//! `--database-url` (or the configuration file), like `serve`.

use std::io::BufRead;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use portero_core::admin::{self, NewClient};
use portero_core::clock::unix_now;
use portero_core::keys::MasterKey;
use portero_core::store::prelude::*;
use portero_server::resolve_master_key;
use portero_store::Database;

use super::Global;
use crate::settings::{self, FileConfig};

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant and print its id.
    Create {
        /// The tenant's name (unique; commands accept it where they take a tenant).
        name: String,
        /// Use this id (a UUID, e.g. a Zertiban businessUuid) instead of a generated one.
        #[arg(long)]
        id: Option<String>,
    },
    /// List tenants: id and name.
    List,
    /// Delete a tenant nothing belongs to any more (refused, naming what still does, otherwise).
    Delete {
        /// Tenant id or name.
        name_or_id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Create a client. Prints the generated secret once when --secret is not given.
    Create(Box<ClientCreate>),
    /// Give a client a new generated secret (printed once); the old one keeps working during the overlap.
    RotateSecret {
        /// The client id.
        #[arg(long)]
        id: String,
        /// How long the old secret keeps working: 90s, 15m, 24h, 7d (default 24h).
        #[arg(long, default_value = admin::DEFAULT_SECRET_OVERLAP)]
        overlap: String,
    },
    /// List clients (never their secrets).
    List,
    /// Change a client: any of create's options but --id and --secret.
    Update(Box<ClientUpdate>),
    /// Print a client as JSON (never its secret).
    Show {
        /// The client id.
        #[arg(long)]
        id: String,
    },
    /// Refuse the client from now on, on every node; its refresh tokens and access tokens end.
    Disable {
        /// The client id.
        #[arg(long)]
        id: String,
    },
    /// Accept a disabled client again (tokens ended by the disable stay ended).
    Enable {
        /// The client id.
        #[arg(long)]
        id: String,
    },
    /// Delete a client and end its tokens.
    Delete {
        /// The client id.
        #[arg(long)]
        id: String,
    },
}

#[derive(Debug, Args)]
pub struct ClientUpdate {
    /// The client id.
    #[arg(long)]
    pub id: String,
    /// Allowed grants: client_credentials, password, refresh_token (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub grants: Option<Vec<String>>,
    /// Scopes the client may ask for, space-separated.
    #[arg(long)]
    pub scopes: Option<String>,
    /// An audience the client may ask for (repeatable; replaces the list).
    #[arg(long = "audience")]
    pub audiences: Option<Vec<String>>,
    /// A tenant (id or name) the client acts for (repeatable; replaces the list).
    #[arg(long = "tenant")]
    pub tenants: Option<Vec<String>>,
    /// Access-token lifetime in seconds; 0 goes back to the server's default.
    #[arg(long)]
    pub token_ttl: Option<i64>,
    /// When refresh tokens are issued: always, offline_access, never.
    #[arg(long)]
    pub refresh_tokens: Option<String>,
    /// Drop requested scopes the client may not have (true) or refuse the request (false).
    #[arg(long, value_name = "true|false")]
    pub ignore_unknown_scopes: Option<bool>,
    /// Locale of Pay-me envelope messages, e.g. es_PE or en_US.
    #[arg(long)]
    pub locale: Option<String>,
    /// Seconds in which a refresh whose answer was lost may be retried.
    #[arg(long, value_name = "SECONDS")]
    pub refresh_retry_window: Option<i64>,
    /// client_secret_basic, client_secret_post or private_key_jwt.
    #[arg(long, value_name = "METHOD")]
    pub auth_method: Option<String>,
    /// A new JWK Set file (public keys) for a private_key_jwt client.
    #[arg(long, value_name = "FILE", conflicts_with = "jwks_uri")]
    pub jwks: Option<std::path::PathBuf>,
    /// A new URL where the private_key_jwt client publishes its JWK Set.
    #[arg(long, value_name = "URL")]
    pub jwks_uri: Option<String>,
    /// Whether every token request must carry a DPoP proof.
    #[arg(long, value_name = "true|false")]
    pub require_dpop: Option<bool>,
    /// A new subject DN (RFC 4514) for a tls_client_auth client.
    #[arg(long, value_name = "DN")]
    pub tls_subject_dn: Option<String>,
    /// Whether access tokens are bound to the request's TLS client certificate.
    #[arg(long, value_name = "true|false")]
    pub bind_tls_cert: Option<bool>,
}

#[derive(Debug, Args)]
pub struct ClientCreate {
    /// The client id (what merchants send as client_id).
    #[arg(long)]
    pub id: String,
    /// The client's secret, when it must match one already in use (stored as an argon2id hash).
    #[arg(long, env = "PORTERO_CLIENT_CREATE_SECRET", hide_env_values = true, allow_hyphen_values = true)]
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
    #[arg(long, default_value = admin::DEFAULT_REFRESH_TOKENS)]
    pub refresh_tokens: String,
    /// Drop requested scopes the client may not have instead of refusing the request.
    #[arg(long)]
    pub ignore_unknown_scopes: bool,
    /// Locale of Pay-me envelope messages, e.g. es_PE or en_US.
    #[arg(long)]
    pub locale: Option<String>,
    /// Seconds after a refresh in which the same refresh token may be sent again for the same
    /// answer (a retry after a lost response); default: the server's refresh_retry_window_seconds.
    #[arg(long, value_name = "SECONDS")]
    pub refresh_retry_window: Option<i64>,
    /// The one way the client authenticates: client_secret_basic (HTTP Basic) or
    /// client_secret_post (in the body), private_key_jwt (a JWT signed with a key of
    /// --jwks), tls_client_auth (a TLS client certificate from the client CA with
    /// --tls-subject-dn) or self_signed_tls_client_auth (a TLS client certificate whose key is
    /// in --jwks); the last three get no secret. Default: either secret method.
    #[arg(long, value_name = "METHOD")]
    pub auth_method: Option<String>,
    /// The client's JWK Set file (public keys only), for --auth-method private_key_jwt or
    /// self_signed_tls_client_auth.
    #[arg(long, value_name = "FILE", conflicts_with = "jwks_uri")]
    pub jwks: Option<std::path::PathBuf>,
    /// Or the URL where it publishes its JWK Set (https; http only to a loopback host): fetched
    /// when first needed, cached per its Cache-Control, refetched for an unknown kid.
    #[arg(long, value_name = "URL")]
    pub jwks_uri: Option<String>,
    /// Every token request must carry a DPoP proof (RFC 9449): the client's tokens are always
    /// bound to its key, and a request without a proof is refused `invalid_dpop_proof`.
    #[arg(long)]
    pub require_dpop: bool,
    /// The subject DN (RFC 4514 string form, e.g. "CN=merchant-1,O=Acme") the certificate of a
    /// tls_client_auth client must carry; compared case- and space-insensitively.
    #[arg(long, value_name = "DN")]
    pub tls_subject_dn: Option<String>,
    /// Bind the client's access tokens to its TLS client certificate (RFC 8705 §3, cnf
    /// x5t#S256); a token request without a certificate is then refused.
    #[arg(long)]
    pub bind_tls_cert: bool,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user; the password is read from standard input (first line). Prints the user id.
    Create {
        /// Tenant id or name.
        #[arg(long)]
        tenant: String,
        /// The username the password grant sends.
        #[arg(long)]
        username: String,
    },
    /// List a tenant's users: id, username, and whether disabled.
    List {
        /// Tenant id or name.
        #[arg(long)]
        tenant: String,
    },
    /// Give a user a new password, read from standard input (first line); ends its refresh families.
    SetPassword(UserRef),
    /// Refuse the user from now on; its refresh and access tokens end.
    Disable(UserRef),
    /// Accept a disabled user again.
    Enable(UserRef),
    /// Delete a user and end its tokens.
    Delete(UserRef),
}

/// One user: its tenant (id or name) and username.
#[derive(Debug, Args)]
pub struct UserRef {
    /// The user's tenant (id or name).
    #[arg(long)]
    pub tenant: String,
    /// The username.
    #[arg(long)]
    pub username: String,
}

#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// End every refresh family and make live access tokens inactive at introspection.
    Revoke {
        /// The client whose tokens end.
        #[arg(long, conflicts_with_all = ["tenant", "username"], required_unless_present = "username")]
        client: Option<String>,
        /// With --username: the tenant (id or name) of the user whose tokens end.
        #[arg(long, requires = "username")]
        tenant: Option<String>,
        /// With --tenant: the username of the user whose tokens end.
        #[arg(long, requires = "tenant")]
        username: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// List signing keys and their state.
    List,
    /// Add a signing key: published at once, signing after --publish-delay seconds.
    Rotate {
        /// Algorithm of the new key: RS256, ES256 or EdDSA.
        #[arg(long, default_value = admin::DEFAULT_KEY_ALG)]
        alg: String,
        /// Seconds between publishing the key in the JWKS and signing with it (default 360,
        /// longer than the JWKS cache lifetime of 300 s).
        #[arg(long, default_value_t = admin::DEFAULT_PUBLISH_DELAY_SECONDS)]
        publish_delay: i64,
    },
    /// Emergency: take a key out of every JWKS and stop signing with it now; tokens it signed
    /// stop verifying. A new key is made first when it was the signing one.
    Revoke {
        /// The key id (`kid`, as `keys list` shows it). A kid is a base64url thumbprint and
        /// starts with `-` one time in 64, so a value starting with `-` is taken as the kid.
        #[arg(long, allow_hyphen_values = true)]
        kid: String,
    },
}

pub(super) async fn open(global: &Global) -> anyhow::Result<(Database, String)> {
    let file = FileConfig::load(global.config.as_deref())?;
    let url = settings::database_url(global.database_url.as_deref(), &file);
    let db = crate::database::open(&url, global.missing_database()).await?;
    Ok((db, url))
}

/// The master key, as `serve` resolves it.
pub fn master_key(global: &Global, database_url: &str) -> anyhow::Result<MasterKey> {
    let from_env = std::env::var("PORTERO_MASTER_KEY").ok().filter(|v| !v.is_empty());
    let file = global.master_key_file.clone().unwrap_or_else(|| settings::default_master_key_file(database_url));
    Ok(resolve_master_key(from_env.as_deref(), &file)?)
}

pub async fn tenant(global: &Global, command: TenantCommand) -> anyhow::Result<()> {
    let (db, _) = open(global).await?;
    match command {
        TenantCommand::Create { name, id } => {
            let tenant = admin::create_tenant(&db, &name, id.as_deref(), unix_now()).await?;
            println!("{}", tenant.id);
        }
        TenantCommand::Delete { name_or_id } => {
            let tenant = admin::delete_tenant(&db, &name_or_id).await?;
            eprintln!("deleted tenant {} ({})", tenant.name, tenant.id);
        }
        TenantCommand::List => {
            for tenant in db.list_tenants().await? {
                println!("{}\t{}", tenant.id, tenant.name);
            }
        }
    }
    Ok(())
}

/// A JWK Set file, as JSON (its keys are checked by the admin functions).
fn read_jwks(path: &std::path::Path) -> anyhow::Result<serde_json::Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))
}

pub async fn client(global: &Global, command: ClientCommand) -> anyhow::Result<()> {
    let (db, _) = open(global).await?;
    match command {
        ClientCommand::Create(args) => {
            let args = *args;
            let new = NewClient {
                id: args.id,
                secret: args.secret,
                grants: args.grants,
                scopes: args.scopes,
                audiences: args.audiences,
                tenants: args.tenants,
                token_ttl: args.token_ttl,
                refresh_tokens: Some(args.refresh_tokens),
                ignore_unknown_scopes: args.ignore_unknown_scopes,
                locale: args.locale,
                refresh_retry_window: args.refresh_retry_window,
                token_endpoint_auth_method: args.auth_method,
                jwks: args.jwks.as_deref().map(read_jwks).transpose()?,
                jwks_uri: args.jwks_uri,
                dpop_bound_access_tokens: args.require_dpop,
                tls_client_auth_subject_dn: args.tls_subject_dn,
                tls_client_certificate_bound_access_tokens: args.bind_tls_cert,
            };
            match admin::create_client(&db, new, unix_now()).await? {
                (client, Some(secret)) => {
                    eprintln!("created client {}; its secret is shown once, below:", client.id);
                    println!("{secret}");
                }
                (client, None) => eprintln!("created client {}", client.id),
            }
        }
        ClientCommand::RotateSecret { id, overlap } => {
            let overlap = admin::parse_duration(&overlap)?;
            let secret = admin::rotate_client_secret(&db, &id, overlap, unix_now()).await?;
            eprintln!("new secret for client {id}, shown once below; the old one works for {overlap} more seconds");
            println!("{secret}");
        }
        ClientCommand::Update(args) => {
            let args = *args;
            let changes = admin::ClientChanges {
                grants: args.grants,
                scopes: args.scopes,
                audiences: args.audiences,
                tenants: args.tenants,
                token_ttl: args.token_ttl,
                refresh_tokens: args.refresh_tokens,
                ignore_unknown_scopes: args.ignore_unknown_scopes,
                locale: args.locale,
                refresh_retry_window: args.refresh_retry_window,
                token_endpoint_auth_method: args.auth_method,
                jwks: args.jwks.as_deref().map(read_jwks).transpose()?,
                jwks_uri: args.jwks_uri,
                dpop_bound_access_tokens: args.require_dpop,
                tls_client_auth_subject_dn: args.tls_subject_dn,
                tls_client_certificate_bound_access_tokens: args.bind_tls_cert,
            };
            print_json(&admin::client_view(&admin::update_client(&db, &args.id, changes).await?));
        }
        ClientCommand::Show { id } => print_json(&admin::client_view(&admin::show_client(&db, &id).await?)),
        ClientCommand::Disable { id } => {
            admin::set_client_enabled(&db, &id, false, unix_now()).await?;
            eprintln!("client {id} disabled; its tokens ended");
        }
        ClientCommand::Enable { id } => {
            admin::set_client_enabled(&db, &id, true, unix_now()).await?;
            eprintln!("client {id} enabled");
        }
        ClientCommand::Delete { id } => {
            admin::delete_client(&db, &id, unix_now()).await?;
            eprintln!("client {id} deleted; its tokens ended");
        }
        ClientCommand::List => {
            for c in db.list_clients().await? {
                let grants: Vec<&str> = c.grants.iter().map(|g| g.as_str()).collect();
                println!(
                    "{}\tgrants={}\tscopes={}\taudiences={}\ttenants={}\tttl={}\trefresh={}\tauth={}",
                    c.id,
                    grants.join(","),
                    c.scopes.join(" "),
                    c.audiences.join(","),
                    c.tenants.join(","),
                    c.token_ttl.map_or("default".to_owned(), |t| t.to_string()),
                    c.refresh_policy.as_str(),
                    c.auth_method.map_or("client_secret_basic,client_secret_post", |m| m.as_str())
                );
            }
        }
    }
    Ok(())
}

pub async fn user(global: &Global, command: UserCommand) -> anyhow::Result<()> {
    let (db, _) = open(global).await?;
    let now = unix_now();
    match command {
        UserCommand::Create { tenant, username } => {
            let password = password_from_stdin()?;
            let user = admin::create_user(&db, &tenant, &username, &password, now).await?;
            println!("{}", user.id);
        }
        UserCommand::List { tenant } => {
            for user in admin::list_users(&db, &tenant).await? {
                let state = if user.disabled_at.is_some() { "disabled" } else { "enabled" };
                println!("{}\t{}\t{state}", user.id, user.username);
            }
        }
        UserCommand::SetPassword(who) => {
            let user = admin::find_user(&db, &who.tenant, &who.username).await?;
            admin::set_password(&db, &user.id, &password_from_stdin()?, now).await?;
            eprintln!("new password for {}; its refresh tokens ended", who.username);
        }
        UserCommand::Disable(who) => {
            let user = admin::find_user(&db, &who.tenant, &who.username).await?;
            admin::set_user_enabled(&db, &user.id, false, now).await?;
            eprintln!("user {} disabled; its tokens ended", who.username);
        }
        UserCommand::Enable(who) => {
            let user = admin::find_user(&db, &who.tenant, &who.username).await?;
            admin::set_user_enabled(&db, &user.id, true, now).await?;
            eprintln!("user {} enabled", who.username);
        }
        UserCommand::Delete(who) => {
            let user = admin::find_user(&db, &who.tenant, &who.username).await?;
            admin::delete_user(&db, &user.id, now).await?;
            eprintln!("user {} deleted; its tokens ended", who.username);
        }
    }
    Ok(())
}

/// The first line of standard input, which must not be empty.
fn password_from_stdin() -> anyhow::Result<String> {
    let mut password = String::new();
    std::io::stdin().lock().read_line(&mut password).context("reading the password from standard input")?;
    let password = password.trim_end_matches(['\r', '\n']).to_owned();
    anyhow::ensure!(!password.is_empty(), "the password (read from standard input) is empty");
    Ok(password)
}

pub async fn tokens(global: &Global, command: TokensCommand) -> anyhow::Result<()> {
    let (db, _) = open(global).await?;
    let TokensCommand::Revoke { client, tenant, username } = command;
    let revocation = admin::Revocation { client_id: client, tenant, username };
    let (owner, revoked) = admin::revoke_tokens(&db, &revocation, unix_now()).await?;
    eprintln!("{owner}: {revoked} refresh tokens revoked; access tokens issued until now are inactive");
    Ok(())
}

fn print_json(value: &serde_json::Value) {
    println!("{}", serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string()));
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
                    key.kid,
                    key.alg,
                    state,
                    super::rfc3339(key.created_at),
                    super::rfc3339(key.activate_at)
                );
            }
        }
        KeysCommand::Revoke { kid } => {
            let replacement = admin::revoke_key(&db, &master_key(global, &url)?, &kid, now).await?;
            match replacement {
                Some(key) => eprintln!("revoked key {kid}; new signing key {} ({})", key.kid, key.alg),
                None => eprintln!("revoked key {kid}"),
            }
        }
        KeysCommand::Rotate { alg, publish_delay } => {
            let key = admin::rotate_key(&db, &master_key(global, &url)?, &alg, publish_delay, now).await?;
            println!("{}", key.kid);
            eprintln!(
                "published key {} ({}); it signs from {} (in {} s)",
                key.kid,
                key.alg,
                super::rfc3339(key.activate_at),
                key.activate_at - now
            );
        }
    }
    Ok(())
}
