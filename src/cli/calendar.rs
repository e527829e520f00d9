//! `procedo calendar create|list|revoke`: personal calendar feeds (ICS subscription URLs)
//! with the meetings and deadlines that concern a person. The URL is printed once.

use chrono::Utc;

use crate::admin::{self, Admin};
use crate::config::StoreArgs;

/// Calendari personali (feed ICS).
#[derive(clap::Subcommand, Debug)]
pub enum CalendarCommand {
    /// Crea il calendario di una persona e ne stampa l'indirizzo (una volta sola).
    Create {
        /// La persona.
        #[arg(long)]
        person: String,
        /// Store options.
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Elenca i calendari di una persona.
    List {
        /// La persona.
        #[arg(long)]
        person: String,
        /// Store options.
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Revoca un calendario: il suo indirizzo risponde 404.
    Revoke {
        /// L'id del calendario.
        id: String,
        /// Store options.
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// Runs `procedo calendar …`.
pub async fn run(cmd: CalendarCommand) -> anyhow::Result<()> {
    match cmd {
        CalendarCommand::Create { person, store } => {
            let (service, _) = crate::app::open(&store, None).await?;
            let issued = admin::create_calendar_feed(
                service.store(),
                &Admin::command_line(),
                &person,
                Utc::now(),
            )
            .await?;
            println!(
                "{}",
                crate::api::calendar::feed_url(&crate::api::calendar::public_url(), &issued.secret)
            );
            eprintln!(
                "calendario {} creato: l'indirizzo è mostrato solo ora (procedo calendar revoke {} per revocarlo)",
                issued.feed.id, issued.feed.id
            );
        }
        CalendarCommand::List { person, store } => {
            let (service, _) = crate::app::open(&store, None).await?;
            for f in service.store().calendar_feeds(&person).await? {
                println!(
                    "{}  creato {}{}",
                    f.id,
                    f.created_at.format("%d/%m/%Y %H:%M"),
                    f.revoked_at
                        .map(|r| format!(", revocato {}", r.format("%d/%m/%Y %H:%M")))
                        .unwrap_or_default()
                );
            }
        }
        CalendarCommand::Revoke { id, store } => {
            let (service, _) = crate::app::open(&store, None).await?;
            admin::revoke_calendar_feed(service.store(), &Admin::command_line(), &id, Utc::now())
                .await?;
            eprintln!("calendario {id} revocato");
        }
    }
    Ok(())
}
