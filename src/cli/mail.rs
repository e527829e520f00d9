//! `procedo mail test`: renders a sample message with made-up Italian data and sends it through
//! the configured transport, so an operator can check templates, SMTP settings and the mail
//! client's rendering (a convocation comes with its calendar invite) before going live.
//!
//! `procedo mail deliveries [--status failed]`: the delivery records — who, what, where it
//! stands, how many attempts, the last error and the Message-ID — so an operator sees what
//! did not go out and why.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use chrono::{DateTime, Utc};

use crate::config::StoreArgs;
use crate::notify::{
    DEFAULT_FROM, Method, OutgoingEmail, SmtpSettings, Templates, Transport, invite_ics,
    message_id_for, sample,
};
use crate::store::{DeliveryFilter, DeliveryRow, DeliveryStatus, Store};
use crate::terms::ROME;

/// Posta: prove di invio dei messaggi.
#[derive(clap::Args, Debug)]
pub struct MailArgs {
    /// L'operazione.
    #[command(subcommand)]
    pub command: MailCommand,
}

/// Operazioni sulla posta.
#[derive(clap::Subcommand, Debug)]
pub enum MailCommand {
    /// Compone un messaggio di prova con dati inventati e lo invia al destinatario indicato.
    Test(MailTestArgs),
    /// Elenca le consegne delle email: destinatario, tipo, stato, tentativi, ultimo errore,
    /// Message-ID.
    Deliveries(MailDeliveriesArgs),
}

/// Argomenti di `procedo mail deliveries`.
#[derive(clap::Args, Debug)]
pub struct MailDeliveriesArgs {
    /// Solo le consegne in questo stato: pending, held, digested, sent, failed.
    #[arg(long, value_name = "STATO")]
    pub status: Option<String>,
    /// Database e procedure.
    #[command(flatten)]
    pub store: StoreArgs,
}

/// Argomenti di `procedo mail test`.
#[derive(clap::Args, Debug)]
pub struct MailTestArgs {
    /// Destinatario: `indirizzo@dominio` oppure `Nome Cognome <indirizzo@dominio>`.
    #[arg(long, value_name = "INDIRIZZO")]
    pub to: String,
    /// Tipo di messaggio (convocazione, convocazione_annullata, promemoria_scadenza,
    /// avviso_pubblicato, esito_istruttoria, soccorso_istruttorio, verbale_disponibile,
    /// riepilogo_giornaliero).
    #[arg(long, value_name = "TIPO", default_value = "convocazione")]
    pub kind: String,
    /// Cartella dei modelli; senza, quelli distribuiti con procedo.
    #[arg(long, value_name = "CARTELLA")]
    pub templates: Option<PathBuf>,
    /// Server SMTP: smtp://host (STARTTLS), smtps://host (TLS), smtp://host:porta?tls=none.
    #[arg(
        long,
        value_name = "URL",
        env = "PROCEDO_SMTP_URL",
        hide_env_values = true
    )]
    pub smtp_url: Option<String>,
    /// Scrive il messaggio come file .eml in questa cartella invece di inviarlo (ha la
    /// precedenza su --smtp-url).
    #[arg(long, value_name = "CARTELLA")]
    pub out: Option<PathBuf>,
    /// Mittente.
    #[arg(long, value_name = "MITTENTE", env = "PROCEDO_SMTP_FROM", default_value = DEFAULT_FROM)]
    pub from: String,
    /// Tempo massimo di attesa del server SMTP, in secondi.
    #[arg(long, value_name = "SECONDI", env = "PROCEDO_SMTP_TIMEOUT")]
    pub timeout: Option<u64>,
}

/// Runs `procedo mail`: prints the Message-ID and the server's answer, or fails with the
/// problem in plain words (the caller exits non-zero).
pub async fn run(args: MailArgs) -> anyhow::Result<()> {
    match args.command {
        MailCommand::Test(test) => run_test(test).await,
        MailCommand::Deliveries(deliveries) => run_deliveries(deliveries).await,
    }
}

async fn run_deliveries(args: MailDeliveriesArgs) -> anyhow::Result<()> {
    let status = match args.status.as_deref() {
        None => None,
        Some(text) => Some(DeliveryStatus::parse(text.trim()).ok_or_else(|| {
            anyhow!(
                "stato «{text}» sconosciuto; ammessi: {}",
                DeliveryStatus::ALL.map(DeliveryStatus::as_str).join(", ")
            )
        })?),
    };
    let store = Store::connect(&args.store.database_url)
        .await
        .with_context(|| {
            format!(
                "apertura del database {}",
                crate::cli::db::redact(&args.store.database_url)
            )
        })?;
    let rows = store
        .deliveries(&DeliveryFilter {
            status,
            ..DeliveryFilter::default()
        })
        .await?;
    let mut receipts = std::collections::BTreeMap::new();
    for row in rows.iter().filter(|r| r.pec_status.is_some()) {
        receipts.insert(row.id, store.pec_receipts(row.id).await?);
    }
    store.close().await?;
    if rows.is_empty() {
        match status {
            Some(status) => println!("Nessuna consegna nello stato {status}."),
            None => println!("Nessuna consegna."),
        }
        return Ok(());
    }
    print!("{}", deliveries_table(&rows, Utc::now()));
    print!("{}", pec_lines(&rows, &receipts));
    Ok(())
}

/// One block per delivery: a line of columns, then the Message-ID, who holds its lease and
/// until when (or when it is tried again), and the last error.
fn deliveries_table(rows: &[DeliveryRow], now: DateTime<Utc>) -> String {
    let when = |at: DateTime<Utc>| {
        at.with_timezone(&ROME)
            .format("%d/%m/%Y %H:%M:%S")
            .to_string()
    };
    let recipient = |row: &DeliveryRow| {
        if row.recipient_name.trim().is_empty() {
            row.recipient_email.clone()
        } else {
            format!("{} <{}>", row.recipient_name, row.recipient_email)
        }
    };
    let width = rows
        .iter()
        .map(|row| recipient(row).chars().count())
        .max()
        .unwrap_or(0)
        .max("destinatario".len());
    let kind_width = rows
        .iter()
        .map(|row| row.kind.chars().count())
        .max()
        .unwrap_or(0)
        .max("tipo".len());
    let mut out = format!(
        "{:>6}  {:<16}  {:<width$}  {:<kind_width$}  {:<8}  {:>9}\n",
        "id", "creata", "destinatario", "tipo", "stato", "tentativi"
    );
    for row in rows {
        out.push_str(&format!(
            "{:>6}  {:<16}  {:<width$}  {:<kind_width$}  {:<8}  {:>9}\n",
            row.id,
            row.created_at
                .with_timezone(&ROME)
                .format("%d/%m/%Y %H:%M")
                .to_string(),
            recipient(row),
            row.kind,
            row.status.as_str(),
            row.attempts,
        ));
        out.push_str(&format!("{:>8}Message-ID: {}\n", "", row.message_id));
        if row.status == DeliveryStatus::Pending {
            match (&row.claimed_by, row.lease_until) {
                (Some(worker), Some(until)) if until >= now => out.push_str(&format!(
                    "{:>8}in carico a {worker} fino alle {}\n",
                    "",
                    when(until)
                )),
                (Some(worker), Some(until)) => out.push_str(&format!(
                    "{:>8}presa in carico di {worker} scaduta alle {}: la riprende il prossimo processo attivo\n",
                    "",
                    when(until)
                )),
                _ if row.next_attempt_at > now => out.push_str(&format!(
                    "{:>8}prossimo tentativo: {}\n",
                    "",
                    when(row.next_attempt_at)
                )),
                _ => {}
            }
        }
        if let Some(error) = &row.last_error {
            let code = row
                .last_code
                .map(|code| format!("[{code}] "))
                .unwrap_or_default();
            out.push_str(&format!("{:>8}ultimo errore: {code}{error}\n", ""));
        }
    }
    out
}

/// The PEC deliveries with their status and every receipt, with the provider's date.
fn pec_lines(
    rows: &[DeliveryRow],
    receipts: &std::collections::BTreeMap<i64, Vec<crate::store::PecReceiptRow>>,
) -> String {
    let mut out = String::new();
    for row in rows {
        let Some(status) = row.pec_status else {
            continue;
        };
        if out.is_empty() {
            out.push_str("\nPEC (stato dalle ricevute del gestore):\n");
        }
        out.push_str(&format!(
            "{:>6}  {} <{}>: {}{}\n",
            row.id,
            row.recipient_name,
            row.recipient_email,
            status.as_str(),
            row.pec_at
                .map(|at| format!(
                    " il {}",
                    at.with_timezone(&ROME).format("%d/%m/%Y %H:%M:%S")
                ))
                .unwrap_or_default()
        ));
        for r in receipts.get(&row.id).into_iter().flatten() {
            out.push_str(&format!(
                "{:>8}{} n. {} del {} ({}){}\n",
                "",
                r.tipo.as_deref().unwrap_or("?"),
                r.identificativo.as_deref().unwrap_or("?"),
                r.provider_at
                    .map(|at| at
                        .with_timezone(&ROME)
                        .format("%d/%m/%Y %H:%M:%S")
                        .to_string())
                    .unwrap_or_default(),
                r.gestore.as_deref().unwrap_or("?"),
                r.errore
                    .as_deref()
                    .map(|e| format!(" — {e}"))
                    .unwrap_or_default()
            ));
        }
    }
    out
}

async fn run_test(args: MailTestArgs) -> anyhow::Result<()> {
    let templates = match &args.templates {
        Some(dir) => Templates::load_dir(dir),
        None => Templates::builtin(),
    }
    .map_err(|diagnostics| {
        let lines: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
        anyhow!("modelli non validi:\n{}", lines.join("\n"))
    })?;
    if templates.description(&args.kind).is_none() {
        bail!(
            "tipo di messaggio «{}» sconosciuto; disponibili: {}",
            args.kind,
            templates.kinds().collect::<Vec<_>>().join(", ")
        );
    }

    let (name, address) = split_mailbox(&args.to);
    let context = sample::context_for(&args.kind, &name, &address).ok_or_else(|| {
        anyhow!(
            "nessun dato di esempio per il tipo «{}»: ci sono per {}",
            args.kind,
            crate::notify::SHIPPED_KINDS.join(", ")
        )
    })?;
    let rendered = templates
        .render(&args.kind, &context)
        .context("composizione del messaggio di prova")?;

    let sender_domain = address_domain(&args.from);
    let delivery_key = format!("prova-{}-{}", args.kind, uuid::Uuid::new_v4().simple());
    let mut email = OutgoingEmail::new(
        message_id_for(&delivery_key, &sender_domain),
        args.from.clone(),
        args.to.clone(),
        rendered,
    );
    let invite_method = match args.kind.as_str() {
        "convocazione" => Some(Method::Request),
        "convocazione_annullata" => Some(Method::Cancel),
        _ => None,
    };
    if let Some(method) = invite_method {
        let mut meeting = sample::meeting(vec![(name, address)], Utc::now());
        if method == Method::Cancel {
            meeting.sequence += 1;
        }
        email = email.with_invite(method, invite_ics(&meeting, method));
    }

    let transport = match (&args.out, &args.smtp_url) {
        (Some(dir), _) => Transport::files(dir),
        (None, Some(url)) => Transport::smtp(&SmtpSettings {
            rate: None,
            url: url.clone(),
            from: args.from.clone(),
            timeout: args.timeout.map(Duration::from_secs),
        })?,
        (None, None) => bail!(
            "nessun trasporto: indicare --smtp-url (o {}) oppure --out CARTELLA",
            crate::notify::SMTP_URL_VARIABLE
        ),
    };

    println!(
        "Invio di «{}» a {} tramite {}…",
        email.subject,
        args.to,
        transport.describe()
    );
    let report = transport.send(&email).await?;
    println!("Message-ID: {}", report.message_id);
    println!("Risposta: {}", report.server_answer);
    Ok(())
}

/// `Nome <a@b>` → ("Nome", "a@b"); a bare address gets a placeholder name.
fn split_mailbox(mailbox: &str) -> (String, String) {
    match mailbox.split_once('<') {
        Some((name, rest)) if !name.trim().is_empty() => (
            name.trim().trim_matches('"').to_owned(),
            rest.trim_end_matches('>').trim().to_owned(),
        ),
        Some((_, rest)) => (
            "Destinatario di prova".to_owned(),
            rest.trim_end_matches('>').trim().to_owned(),
        ),
        None => (
            "Destinatario di prova".to_owned(),
            mailbox.trim().to_owned(),
        ),
    }
}

/// The domain of a mailbox, for the Message-ID; `procedo.local` when there is none.
fn address_domain(mailbox: &str) -> String {
    let (_, address) = split_mailbox(mailbox);
    address.rsplit_once('@').map_or_else(
        || "procedo.local".to_owned(),
        |(_, domain)| domain.to_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mailbox_splits_into_name_and_address() {
        assert_eq!(
            split_mailbox("Anna Rossi <anna@comune.example.it>"),
            ("Anna Rossi".to_owned(), "anna@comune.example.it".to_owned())
        );
        assert_eq!(
            split_mailbox("anna@comune.example.it"),
            (
                "Destinatario di prova".to_owned(),
                "anna@comune.example.it".to_owned()
            )
        );
        assert_eq!(address_domain(DEFAULT_FROM), "procedo.local");
    }

    #[tokio::test]
    async fn a_test_convocation_is_written_as_eml_with_its_invite() {
        let dir = tempfile::tempdir().expect("temp dir");
        let args = MailArgs {
            command: MailCommand::Test(MailTestArgs {
                to: "Anna Rossi <anna@comune.example.it>".to_owned(),
                kind: "convocazione".to_owned(),
                templates: None,
                smtp_url: None,
                out: Some(dir.path().to_path_buf()),
                from: DEFAULT_FROM.to_owned(),
                timeout: None,
            }),
        };
        run(args).await.expect("written");
        let files: Vec<PathBuf> = std::fs::read_dir(dir.path())
            .expect("dir")
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .collect();
        assert_eq!(files.len(), 1);
        let eml = std::fs::read_to_string(&files[0]).expect("eml");
        assert!(eml.contains("text/calendar; method=REQUEST"));
    }

    #[test]
    fn the_deliveries_table_shows_status_attempts_error_and_message_id() {
        let at = chrono::DateTime::parse_from_rfc3339("2026-12-01T09:30:00Z")
            .expect("valid")
            .with_timezone(&Utc);
        let row = DeliveryRow {
            id: 7,
            outbox_id: 3,
            instance_id: None,
            person_id: Some("sindaco-nova".to_owned()),
            recipient_email: "anna@comune.example.it".to_owned(),
            recipient_name: "Anna Rossi".to_owned(),
            kind: "convocazione".to_owned(),
            urgent: true,
            email: serde_json::json!({}),
            message_id: "<delivery-3-sindaco-nova@procedo.local>".to_owned(),
            status: DeliveryStatus::Failed,
            attempts: 1,
            next_attempt_at: at,
            last_error: Some("casella inesistente".to_owned()),
            last_code: Some(550),
            server_answer: None,
            claimed_by: None,
            lease_until: None,
            created_at: at,
            sent_at: None,
            channel: crate::definition::Channel::Email,
            pec_status: None,
            pec_at: None,
        };
        let table = deliveries_table(&[row], at);
        assert!(table.contains("01/12/2026 10:30"), "{table}");
        assert!(
            table.contains("Anna Rossi <anna@comune.example.it>"),
            "{table}"
        );
        assert!(table.contains("failed"), "{table}");
        assert!(
            table.contains("Message-ID: <delivery-3-sindaco-nova@procedo.local>"),
            "{table}"
        );
        assert!(
            table.contains("ultimo errore: [550] casella inesistente"),
            "{table}"
        );
    }

    #[test]
    fn a_claimed_delivery_shows_who_holds_its_lease_and_until_when() {
        let at = chrono::DateTime::parse_from_rfc3339("2026-12-01T09:30:00Z")
            .expect("valid")
            .with_timezone(&Utc);
        let mut row = DeliveryRow {
            id: 8,
            outbox_id: 3,
            instance_id: None,
            person_id: None,
            recipient_email: "anna@comune.example.it".to_owned(),
            recipient_name: "Anna Rossi".to_owned(),
            kind: "convocazione".to_owned(),
            urgent: true,
            email: serde_json::json!({}),
            message_id: "<delivery-3-anna@procedo.local>".to_owned(),
            status: DeliveryStatus::Pending,
            attempts: 1,
            next_attempt_at: at,
            last_error: None,
            last_code: None,
            server_answer: None,
            claimed_by: Some("nodo-1".to_owned()),
            lease_until: Some(at + chrono::Duration::seconds(15)),
            created_at: at,
            sent_at: None,
            channel: crate::definition::Channel::Email,
            pec_status: None,
            pec_at: None,
        };
        let table = deliveries_table(std::slice::from_ref(&row), at);
        assert!(
            table.contains("in carico a nodo-1 fino alle 01/12/2026 10:30:15"),
            "{table}"
        );
        let later = at + chrono::Duration::minutes(1);
        let table = deliveries_table(std::slice::from_ref(&row), later);
        assert!(
            table.contains("presa in carico di nodo-1 scaduta alle 01/12/2026 10:30:15"),
            "{table}"
        );
        row.claimed_by = None;
        row.lease_until = None;
        row.next_attempt_at = later + chrono::Duration::minutes(5);
        let table = deliveries_table(std::slice::from_ref(&row), later);
        assert!(
            table.contains("prossimo tentativo: 01/12/2026 10:36:00"),
            "{table}"
        );
    }

    #[tokio::test]
    async fn an_unknown_kind_lists_the_available_ones() {
        let args = MailArgs {
            command: MailCommand::Test(MailTestArgs {
                to: "anna@comune.example.it".to_owned(),
                kind: "telegramma".to_owned(),
                templates: None,
                smtp_url: None,
                out: None,
                from: DEFAULT_FROM.to_owned(),
                timeout: None,
            }),
        };
        let error = run(args).await.expect_err("unknown kind");
        assert!(error.to_string().contains("convocazione"), "{error}");
    }
}
