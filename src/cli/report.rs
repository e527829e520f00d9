//! `procedo report INSTANCE --html FILE`: the report of a procedure — diagram with the
//! current state, deadlines with their traces, timers ahead, participants, timeline, protocol
//! numbers, messages — as one page (the same `procedo serve` shows staff at `/report/ID`).

use anyhow::Context;

use crate::app;
use crate::config::StoreArgs;

/// Il rapporto di una pratica.
#[derive(clap::Args, Debug)]
pub struct ReportArgs {
    /// Instance id.
    pub instance: String,
    /// Write the page here.
    #[arg(long)]
    pub html: std::path::PathBuf,
    /// Store options.
    #[command(flatten)]
    pub store: StoreArgs,
}

/// Runs `procedo report`.
pub async fn run(args: ReportArgs) -> anyhow::Result<()> {
    let (service, _) = app::open(&args.store, None).await?;
    let report = crate::report::load(&service, &args.instance)
        .await
        .with_context(|| format!("pratica {}", args.instance))?;
    std::fs::write(&args.html, crate::report::html(&report, service.now()))
        .with_context(|| args.html.display().to_string())?;
    eprintln!(
        "rapporto della pratica {} in {}",
        args.instance,
        args.html.display()
    );
    service.store().clone().close().await?;
    Ok(())
}
