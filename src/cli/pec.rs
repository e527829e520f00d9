//! `procedo pec read|incoming|refused`: the PEC mailbox. `read` reads it once (what
//! `procedo serve` and `procedo scheduler run` do every `PROCEDO_PEC_POLL_SECONDS`) and says
//! what became of each message; `incoming` lists the messages received by PEC and
//! `refused` the receipts refused, each with the reason.

use anyhow::Context;

use crate::config::StoreArgs;
use crate::pec::ingest::Outcome;
use crate::terms::ROME;

/// PEC: la casella dell'Ufficio di Piano.
#[derive(clap::Args, Debug)]
pub struct PecArgs {
    /// L'operazione.
    #[command(subcommand)]
    pub command: PecCommand,
}

/// Operazioni sulla casella PEC.
#[derive(clap::Subcommand, Debug)]
pub enum PecCommand {
    /// Legge una volta la casella PEC (PROCEDO_PEC_IMAP_URL o PROCEDO_PEC_MAILDIR, con
    /// PROCEDO_PEC_TRUST): ricevute e messaggi in arrivo.
    Read {
        /// Store options.
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Elenca i messaggi ricevuti per PEC e cosa ne è stato.
    Incoming {
        /// Store options.
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Elenca le ricevute rifiutate (firma non valida, Message-ID sconosciuto…) con il motivo.
    Refused {
        /// Store options.
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// Runs `procedo pec …`.
pub async fn run(args: PecArgs) -> anyhow::Result<()> {
    match args.command {
        PecCommand::Read { store } => {
            let (service, _) = crate::app::open(&store, None).await?;
            let protocollo = crate::app::protocollo(&service)?;
            let (ingest, mailbox, _) = crate::pec::ingest::from_env(&service, Some(protocollo))
                .context("configurazione della casella PEC")?
                .context("nessuna casella PEC configurata: impostare PROCEDO_PEC_IMAP_URL (imaps://utente:password@host/INBOX) o PROCEDO_PEC_MAILDIR, e PROCEDO_PEC_TRUST")?;
            let read = ingest
                .poll(&mailbox)
                .await
                .with_context(|| format!("lettura di {}", mailbox.describe()))?;
            if read.is_empty() {
                println!("Nessun messaggio nuovo in {}.", mailbox.describe());
            }
            for outcome in read {
                match outcome {
                    Outcome::Receipt { delivery, status } => println!(
                        "ricevuta per la consegna {delivery}: {}",
                        status.map_or("già letta o senza effetto sullo stato", |s| s.as_str())
                    ),
                    Outcome::Refused(reason) => println!("ricevuta rifiutata: {reason}"),
                    Outcome::Incoming { outcome, reason } => println!(
                        "messaggio in arrivo: {outcome}{}",
                        reason.map(|r| format!(" ({r})")).unwrap_or_default()
                    ),
                    Outcome::NotPec => {
                        println!("messaggio ordinario (non PEC): lasciato all'ufficio")
                    }
                }
            }
            service.store().clone().close().await?;
        }
        PecCommand::Incoming { store } => {
            let (service, _) = crate::app::open(&store, None).await?;
            let rows = service.store().pec_incoming(500).await?;
            if rows.is_empty() {
                println!("Nessun messaggio ricevuto per PEC.");
            }
            for r in rows {
                println!(
                    "{}  {:<16} {} — {}{}",
                    r.delivered_at
                        .with_timezone(&ROME)
                        .format("%d/%m/%Y %H:%M:%S"),
                    r.outcome,
                    r.mittente,
                    r.oggetto,
                    r.reason.map(|x| format!(" ({x})")).unwrap_or_default()
                );
            }
            service.store().clone().close().await?;
        }
        PecCommand::Refused { store } => {
            let (service, _) = crate::app::open(&store, None).await?;
            let rows = service.store().pec_refused_receipts(500).await?;
            if rows.is_empty() {
                println!("Nessuna ricevuta rifiutata.");
            }
            for r in rows {
                println!(
                    "{}  {} {} — {}",
                    r.read_at.with_timezone(&ROME).format("%d/%m/%Y %H:%M:%S"),
                    r.tipo.as_deref().unwrap_or("?"),
                    r.riferimento.as_deref().unwrap_or("(senza riferimento)"),
                    r.reason.as_deref().unwrap_or("")
                );
            }
            service.store().clone().close().await?;
        }
    }
    Ok(())
}
