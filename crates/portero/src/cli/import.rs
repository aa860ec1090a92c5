//! `portero import FILE [--dry-run] [--update]` and `portero import status` (issue 14): move a
//! provider's tenants, clients and users in with the hashes it has, and see how far they are.

use std::io::Read as _;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use portero_core::clock::unix_now;
use portero_core::import::{self, Counts, Options, Report};

use super::Global;
use super::admin::open;

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct ImportArgs {
    #[command(subcommand)]
    pub command: Option<ImportCommand>,
    /// The JSON Lines file: one tenant, client or user per line (`-` reads standard input).
    #[arg(required = true, value_name = "FILE")]
    pub file: Option<std::path::PathBuf>,
    /// Check the whole file and report what it would do; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Apply rows that differ from what exists (without it, each such row is an error).
    #[arg(long)]
    pub update: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// Per tenant: clients and users imported or migrated lazily, still on a legacy hash,
    /// rehashed at a first login, never seen since.
    Status {
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(global: &Global, args: ImportArgs) -> anyhow::Result<()> {
    if let Some(ImportCommand::Status { json }) = args.command {
        return status(global, json).await;
    }
    let Some(path) = args.file else { anyhow::bail!("give the file to import") };
    let mut text = String::new();
    if path.as_os_str() == "-" {
        std::io::stdin().read_to_string(&mut text).context("reading the import from standard input")?;
    } else {
        text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    }
    let (db, _) = open(global).await?;
    let options = Options { dry_run: args.dry_run, update: args.update };
    let report = import::import(&db, &text, options, unix_now()).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    if report.has_errors() {
        let bad = report.errors.len() as u64 + report.errors_not_shown;
        anyhow::bail!("the import file has {bad} bad row(s); nothing was written");
    }
    Ok(())
}

fn counts(counts: &Counts) -> String {
    format!("{} tenant(s), {} client(s), {} user(s)", counts.tenants, counts.clients, counts.users)
}

fn print_report(report: &Report) {
    for error in &report.errors {
        eprintln!("line {}: {}", error.line, error.error);
    }
    if report.errors_not_shown > 0 {
        eprintln!("... and {} more bad row(s)", report.errors_not_shown);
    }
    let would = if report.has_errors() || report.dry_run { "would be " } else { "" };
    println!("{would}created: {}", counts(&report.created));
    println!("{would}updated: {}", counts(&report.updated));
    println!("unchanged: {}", counts(&report.unchanged));
    if report.plain_hashed > 0 {
        println!("plain secrets {would}hashed with argon2id: {}", report.plain_hashed);
    }
    if report.dry_run {
        println!("dry run: nothing was written");
    }
}

async fn status(global: &Global, json: bool) -> anyhow::Result<()> {
    let (db, _) = open(global).await?;
    let lines = import::status(&db).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&lines)?);
        return Ok(());
    }
    if lines.is_empty() {
        println!("nothing was imported or migrated");
        return Ok(());
    }
    println!(
        "{:<24} {:<8} {:>9} {:>7} {:>12} {:>9} {:>11}",
        "TENANT", "KIND", "IMPORTED", "LAZILY", "LEGACY_HASH", "REHASHED", "NEVER_SEEN"
    );
    for line in &lines {
        for (kind, counts) in [("clients", &line.clients), ("users", &line.users)] {
            println!(
                "{:<24} {:<8} {:>9} {:>7} {:>12} {:>9} {:>11}",
                line.tenant,
                kind,
                counts.imported,
                counts.migrated_lazily,
                counts.legacy_hash,
                counts.rehashed,
                counts.never_seen
            );
        }
    }
    Ok(())
}
