//! Opening the database for a command: a missing SQLite file is refused unless the command may
//! create it, and every error names the file or host it was about (never a password).

use anyhow::Context as _;
use portero_store::Database;

use crate::settings;

/// Whether a missing SQLite file may be created: `serve` always, other commands with `--create`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    Create,
    Refuse,
}

/// Refuses a missing SQLite file (naming it) unless `missing` is `Create`.
pub fn check_exists(url: &str, missing: Missing) -> anyhow::Result<()> {
    let Some(path) = settings::sqlite_file(url) else { return Ok(()) };
    if missing == Missing::Refuse && !path.exists() {
        let shown = std::path::absolute(&path).unwrap_or(path);
        anyhow::bail!(
            "the database file {} does not exist: pass --create to create it, start `portero serve` once \
             (it creates it), or name the right one with --database-url",
            shown.display()
        );
    }
    Ok(())
}

/// Opens (and migrates) the database at `url`.
pub async fn open(url: &str, missing: Missing) -> anyhow::Result<Database> {
    check_exists(url, missing)?;
    Database::connect(url).await.with_context(|| format!("opening the database ({})", settings::describe_database(url)))
}

/// Adds the database's name to an error that came from it, so `pool timed out` or
/// `unable to open database file` say which database.
pub fn name_in_error(error: anyhow::Error, url: &str) -> anyhow::Error {
    use portero_core::admin::AdminError;
    use portero_core::store::StoreError;
    let database_fault = |e: &StoreError| matches!(e, StoreError::Unavailable(_) | StoreError::Other(_));
    let from_store = error.chain().any(|cause| {
        cause.downcast_ref::<StoreError>().is_some_and(database_fault)
            || cause
                .downcast_ref::<AdminError>()
                .is_some_and(|e| matches!(e, AdminError::Store(e) if database_fault(e)))
    });
    let named = error.chain().any(|cause| cause.to_string().starts_with("opening the database ("));
    if from_store && !named { error.context(format!("database: {}", settings::describe_database(url))) } else { error }
}
