//! `procedo db migrate`: apply the migrations (they are also applied at every start-up).

use crate::config::StoreArgs;
use crate::store::Store;

/// `procedo db …` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum DbCommand {
    /// Apply pending migrations.
    Migrate(StoreArgs),
}

/// Runs a `db` subcommand.
pub async fn run(cmd: DbCommand) -> anyhow::Result<()> {
    match cmd {
        DbCommand::Migrate(args) => {
            let store = Store::connect(&args.database_url).await?;
            store.migrate().await?;
            println!("migrazioni applicate a {}", redact(&args.database_url));
            store.close().await?;
            Ok(())
        }
    }
}

/// A database URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}@{}", &url[..scheme + 3], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}
