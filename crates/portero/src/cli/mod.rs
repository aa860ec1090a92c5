//! The command line: `serve`, the admin commands, and `token`.

mod admin;
mod audit;
mod serve;
mod token;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(name = "portero", version, about = "Portero: an OAuth 2.0 token service for API platforms")]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// Database: sqlite://PATH (default sqlite://portero.db) or postgres://USER@HOST/DB.
    #[arg(long, env = "PORTERO_DATABASE_URL", global = true)]
    pub database_url: Option<String>,
    /// Configuration file (TOML). Flags and PORTERO_* variables override it.
    #[arg(long, env = "PORTERO_CONFIG", global = true)]
    pub config: Option<std::path::PathBuf>,
    /// File holding the master key that seals signing keys, when PORTERO_MASTER_KEY is not set
    /// (default: beside the SQLite database, or ./portero.key).
    #[arg(long, env = "PORTERO_MASTER_KEY_FILE", global = true)]
    pub master_key_file: Option<std::path::PathBuf>,
    /// Log format on stderr.
    #[arg(long, env = "PORTERO_LOG_FORMAT", global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the token service.
    Serve(serve::ServeArgs),
    /// Manage tenants.
    #[command(subcommand)]
    Tenant(admin::TenantCommand),
    /// Manage clients.
    #[command(subcommand)]
    Client(admin::ClientCommand),
    /// Manage users.
    #[command(subcommand)]
    User(admin::UserCommand),
    /// Manage signing keys.
    #[command(subcommand)]
    Keys(admin::KeysCommand),
    /// End tokens: every refresh family and live access token of a client or a user.
    #[command(subcommand)]
    Tokens(admin::TokensCommand),
    /// Show the audit trail: tokens issued and refused, reuse, revocations, throttling.
    Audit(audit::AuditArgs),
    /// Get an access token from a token endpoint and print it.
    Token(token::TokenArgs),
}

pub fn init_logging(cli: &Cli) {
    let default = match cli.command {
        Command::Serve(_) => "info",
        _ => "warn",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match cli.global.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve::run(&cli.global, args).await,
        Command::Tenant(command) => admin::tenant(&cli.global, command).await,
        Command::Client(command) => admin::client(&cli.global, command).await,
        Command::User(command) => admin::user(&cli.global, command).await,
        Command::Keys(command) => admin::keys(&cli.global, command).await,
        Command::Tokens(command) => admin::tokens(&cli.global, command).await,
        Command::Audit(args) => audit::run(&cli.global, args).await,
        Command::Token(args) => token::run(args).await,
    }
}
