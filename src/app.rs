//! Wiring: open the store, install the workflows, build the service. Used by every command
//! that works on instances, by `serve` and by the demo.

use std::sync::Arc;

use anyhow::{Context, bail};

use crate::catalog::{self, Catalog};
use crate::clock::{SharedClock, SystemClock};
use crate::config::StoreArgs;
use crate::service::Service;
use crate::store::Store;

/// Loads the workflows folder; every problem is an error that names file, line and column.
pub fn load_catalog(args: &StoreArgs) -> anyhow::Result<Catalog> {
    let (catalog, diags) = catalog::load(std::slice::from_ref(&args.workflows));
    if !diags.is_empty() {
        let list: Vec<String> = diags.iter().map(ToString::to_string).collect();
        bail!(
            "le procedure in {} non sono valide:\n{}",
            args.workflows.display(),
            list.join("\n")
        );
    }
    catalog.with_context(|| format!("nessun template in {}", args.workflows.display()))
}

/// Opens the store (migrating it), installs the workflows and returns the service.
pub async fn open(
    args: &StoreArgs,
    clock: Option<SharedClock>,
) -> anyhow::Result<(Service, Catalog)> {
    let catalog = load_catalog(args)?;
    let store = Store::connect(&args.database_url).await.with_context(|| {
        format!(
            "apertura del database {}",
            crate::cli::db::redact(&args.database_url)
        )
    })?;
    let service = Service::new(store, clock.unwrap_or_else(|| Arc::new(SystemClock)));
    for conflict in service
        .import(&catalog)
        .await
        .context("installazione delle procedure")?
    {
        eprintln!("attenzione: {conflict}");
    }
    Ok((service, catalog))
}

/// The protocollo of a service, configured from the environment (`PROCEDO_PROTOCOLLO_*`,
/// `PROCEDO_SEGNATURA_*`, `PROCEDO_CONSERVAZIONE_*`, `PROCEDO_FILES_DIR`).
pub fn protocollo(service: &Service) -> anyhow::Result<crate::protocollo::Protocollo> {
    crate::protocollo::Protocollo::new(service.clone(), &crate::protocollo::Settings::from_env())
        .context("configurazione del protocollo")
}
