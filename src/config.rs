//! One typed place for settings: defaults, then `PROCEDO_*` environment variables, then flags
//! (clap reads the environment for flags that have one).

use std::path::PathBuf;

/// The default database: a SQLite file beside the working directory, in WAL mode.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://procedo.db?mode=rwc";

/// Database and workflow location, shared by every command that touches the store.
#[derive(clap::Args, Debug, Clone)]
pub struct StoreArgs {
    /// Database URL: `sqlite://FILE?mode=rwc` (default) or `postgres://…`.
    #[arg(long = "database", env = "PROCEDO_DATABASE_URL", default_value = DEFAULT_DATABASE_URL, global = true)]
    pub database_url: String,
    /// Folder of workflow files (installed at start-up; new versions are added).
    #[arg(
        long = "workflows",
        env = "PROCEDO_WORKFLOWS",
        default_value = "workflows",
        global = true
    )]
    pub workflows: PathBuf,
}
