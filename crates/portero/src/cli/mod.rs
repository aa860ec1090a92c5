//! The command line: `serve`, the admin commands, and `token`.

mod admin;
mod audit;
mod import;
mod serve;
mod token;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Variables no flag stands for, shown under `--help`.
pub const ENVIRONMENT_HELP: &str = "\
Environment (besides each flag's PORTERO_* variable):
  PORTERO_MASTER_KEY   the master key sealing the signing keys (32 bytes, base64 or hex); when
                       set, --master-key-file is not read. Nodes sharing a database share it.
  PORTERO_ADMIN_TOKEN  serve: bearer token (24+ characters) that turns the admin HTTP API on
  RUST_LOG             log filter, e.g. info, warn or portero=debug

Configuration: --config FILE, else ./portero.toml when it exists (flags and variables override it).";

#[derive(Debug, Parser)]
#[command(
    name = "portero",
    version,
    about = "Portero: an OAuth 2.0 token service for API platforms",
    after_help = ENVIRONMENT_HELP
)]
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
    /// Create the SQLite database file if it does not exist (serve always does; other
    /// commands refuse a missing file without this).
    #[arg(long, global = true)]
    pub create: bool,
    /// Configuration file (TOML; default ./portero.toml when it exists). Flags and PORTERO_*
    /// variables override it.
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

impl Global {
    /// What a command other than `serve` does with a missing SQLite file.
    pub fn missing_database(&self) -> crate::database::Missing {
        if self.create { crate::database::Missing::Create } else { crate::database::Missing::Refuse }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the token service (creates the SQLite database and a signing key on first start).
    #[command(after_help = ENVIRONMENT_HELP)]
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
    /// Import tenants, clients and users from JSON Lines with their existing hashes
    /// (`import FILE`), or show how far the move is (`import status`).
    Import(import::ImportArgs),
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
    // Colour only for a terminal: a log file or journal gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    match cli.global.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let global = &cli.global;
    let result = match cli.command {
        Command::Serve(args) => serve::run(global, args).await,
        Command::Tenant(command) => admin::tenant(global, command).await,
        Command::Client(command) => admin::client(global, command).await,
        Command::User(command) => admin::user(global, command).await,
        Command::Keys(command) => admin::keys(global, command).await,
        Command::Tokens(command) => admin::tokens(global, command).await,
        Command::Audit(args) => audit::run(global, args).await,
        Command::Import(args) => import::run(global, args).await,
        Command::Token(args) => return token::run(args).await,
    };
    // A database error says which database (the URL as the command resolved it).
    result.map_err(|error| match crate::settings::FileConfig::load(global.config.as_deref()) {
        Ok(file) => {
            let url = crate::settings::database_url(global.database_url.as_deref(), &file);
            crate::database::name_in_error(error, &url)
        }
        Err(_) => error,
    })
}

/// Seconds since the Unix epoch as RFC 3339 in UTC, e.g. `2026-12-02T14:26:43Z`.
pub fn rfc3339(unix_seconds: i64) -> String {
    let days = unix_seconds.div_euclid(86_400);
    let second_of_day = unix_seconds.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    let (hour, minute, second) = (second_of_day / 3600, second_of_day % 3600 / 60, second_of_day % 60);
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}Z")
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::{Cli, rfc3339};

    #[test]
    fn rfc3339_in_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_796_229_603), "2026-12-02T16:40:03Z");
        assert_eq!(rfc3339(4_102_444_799), "2099-12-31T23:59:59Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
    }

    /// Every flag and argument of every command says what it is in `--help`.
    #[test]
    fn every_flag_has_a_description() {
        fn walk(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in command.get_arguments() {
                let builtin = matches!(arg.get_id().as_str(), "help" | "version");
                if !builtin && arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} {}", arg.get_id()));
                }
            }
            for sub in command.get_subcommands() {
                if sub.get_about().is_none() && sub.get_name() != "help" {
                    missing.push(format!("{path} {} (no about)", sub.get_name()));
                }
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "portero", &mut missing);
        assert!(missing.is_empty(), "without a description in --help: {missing:#?}");
    }

    /// Generated values are base64url and start with `-` one time in 64: a kid from `keys list`
    /// (e2e caught `keys revoke --kid -X...` refused as an unknown flag) or a metrics token.
    #[test]
    fn values_starting_with_a_hyphen_are_values() {
        for args in [
            &["portero", "keys", "revoke", "--kid", "-Xq3vA9_thumbprint"][..],
            &["portero", "serve", "--metrics-token", "-metrics-token-0123456789abcdef"][..],
        ] {
            assert!(Cli::try_parse_from(args).is_ok(), "{args:?}: {:?}", Cli::try_parse_from(args).err());
        }
    }

    #[test]
    fn help_names_the_master_key_and_admin_token_variables() {
        let mut command = Cli::command();
        let top = command.render_long_help().to_string();
        let serve = command.find_subcommand_mut("serve").unwrap().render_long_help().to_string();
        for help in [top, serve] {
            assert!(help.contains("PORTERO_MASTER_KEY ") && help.contains("PORTERO_ADMIN_TOKEN"), "{help}");
        }
    }
}
