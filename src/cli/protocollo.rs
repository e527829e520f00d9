//! `procedo protocollo …`: read the register (`list`, `show`, `segnatura`, `registro`),
//! register a document by hand (`registra`), annul or correct a registration (`annulla`,
//! `correggi`: the original stays readable), produce the missing daily registers
//! (`giornalieri`) and check the register against tampering (`verify`).

use std::path::PathBuf;

use anyhow::{Context, bail};
use chrono::NaiveDate;

use crate::app;
use crate::config::StoreArgs;
use crate::protocollo::{Protocollo, Request, RequestDocument, day_bounds};
use crate::store::{
    Correspondent, CorrespondentKind, Direction, DocumentRole, PROTOCOL_REGISTER, ProtocolFilter,
    ProtocolRegistration,
};
use crate::terms::ROME;

/// `procedo protocollo …`.
#[derive(clap::Subcommand, Debug)]
pub enum ProtocolloCommand {
    /// List registrations, by register and number.
    List(ListArgs),
    /// One registration in full: correspondents, documents, annulments and corrections.
    Show(RefArgs),
    /// The segnatura XML of an outgoing registration.
    Segnatura(RefArgs),
    /// The registro giornaliero of a day (CSV on standard output, or CSV and HTML in a folder).
    Registro(RegistroArgs),
    /// Produce the daily registers missing up to yesterday and hand them to conservation.
    Giornalieri(StoreOnly),
    /// Register a document by hand (a letter received on paper, an internal act).
    Registra(RegistraArgs),
    /// Annul a whole registration (art. 54 DPR 445/2000): it stays readable, marked annulled.
    Annulla(AnnullaArgs),
    /// Correct a typed field (oggetto, corrispondenti, classificazione, riferimento_mittente):
    /// the old value stays readable with date, time and author.
    Correggi(CorreggiArgs),
    /// Recompute the hash chain and every file's SHA-256; exit 1 if anything was changed.
    Verify(StoreOnly),
}

/// Just the store.
#[derive(clap::Args, Debug)]
pub struct StoreOnly {
    /// Store options.
    #[command(flatten)]
    pub store: StoreArgs,
}

/// `list`.
#[derive(clap::Args, Debug)]
pub struct ListArgs {
    /// Store options.
    #[command(flatten)]
    pub store: StoreArgs,
    /// Only registrations of this day (AAAA-MM-GG, Europe/Rome).
    #[arg(long)]
    pub day: Option<NaiveDate>,
    /// Only this instance's.
    #[arg(long)]
    pub instance: Option<String>,
    /// Only this register (`protocollo`, `emergenza`, a repertorio).
    #[arg(long)]
    pub register: Option<String>,
}

/// A registration named by number and year.
#[derive(clap::Args, Debug)]
pub struct RefArgs {
    /// Store options.
    #[command(flatten)]
    pub store: StoreArgs,
    /// `NUMERO/ANNO`, e.g. `0000042/2026`.
    pub reference: String,
    /// The register.
    #[arg(long, default_value = PROTOCOL_REGISTER)]
    pub register: String,
}

/// `registro`.
#[derive(clap::Args, Debug)]
pub struct RegistroArgs {
    /// Store options.
    #[command(flatten)]
    pub store: StoreArgs,
    /// The day (AAAA-MM-GG, Europe/Rome).
    #[arg(long)]
    pub day: NaiveDate,
    /// Write `registro-giornaliero-DAY.csv` and `.html` here instead of printing the CSV.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// `registra`.
#[derive(clap::Args, Debug)]
pub struct RegistraArgs {
    /// Store options.
    #[command(flatten)]
    pub store: StoreArgs,
    /// `entrata`, `uscita` or `interno`.
    #[arg(long = "direzione")]
    pub direction: String,
    /// The subject.
    #[arg(long = "oggetto")]
    pub subject: String,
    /// Sender (entrata) or recipient (uscita): a name. Repeatable.
    #[arg(long = "corrispondente")]
    pub correspondents: Vec<String>,
    /// Its codice fiscale or partita IVA (for the first correspondent).
    #[arg(long = "codice-fiscale")]
    pub codice_fiscale: Option<String>,
    /// Its email or PEC (for the first correspondent).
    #[arg(long)]
    pub email: Option<String>,
    /// The sender's protocol number (entrata).
    #[arg(long = "riferimento-mittente")]
    pub sender_reference: Option<String>,
    /// The sender's date (entrata, AAAA-MM-GG).
    #[arg(long = "data-mittente")]
    pub sender_date: Option<NaiveDate>,
    /// Titolario classification.
    #[arg(long = "classificazione")]
    pub classification: Option<String>,
    /// The instance the document belongs to (its fascicolo).
    #[arg(long)]
    pub instance: Option<String>,
    /// Files: the first is the primary document, the others attachments.
    #[arg(long = "file")]
    pub files: Vec<PathBuf>,
    /// How it arrived or left.
    #[arg(long = "canale", default_value = "sportello")]
    pub channel: String,
    /// Who registers.
    #[arg(long = "operatore")]
    pub operator: String,
    /// The register (a repertorio instead of the protocol).
    #[arg(long, default_value = PROTOCOL_REGISTER)]
    pub register: String,
}

/// `annulla`.
#[derive(clap::Args, Debug)]
pub struct AnnullaArgs {
    /// The registration.
    #[command(flatten)]
    pub target: RefArgs,
    /// Why.
    #[arg(long = "motivo")]
    pub reason: String,
    /// The act that authorises it (provvedimento del responsabile della gestione documentale).
    #[arg(long = "atto")]
    pub act: String,
    /// Who.
    #[arg(long = "operatore")]
    pub operator: String,
}

/// `correggi`.
#[derive(clap::Args, Debug)]
pub struct CorreggiArgs {
    /// The registration.
    #[command(flatten)]
    pub target: RefArgs,
    /// The field.
    #[arg(long = "campo")]
    pub field: String,
    /// The new value.
    #[arg(long = "valore")]
    pub value: String,
    /// Why.
    #[arg(long = "motivo")]
    pub reason: String,
    /// The act that authorises it.
    #[arg(long = "atto")]
    pub act: String,
    /// Who.
    #[arg(long = "operatore")]
    pub operator: String,
}

async fn open(store: &StoreArgs) -> anyhow::Result<Protocollo> {
    let (service, _) = app::open(store, None).await?;
    app::protocollo(&service)
}

/// Runs a `protocollo` subcommand.
pub async fn run(cmd: ProtocolloCommand) -> anyhow::Result<()> {
    match cmd {
        ProtocolloCommand::List(args) => {
            let protocollo = open(&args.store).await?;
            let rows = protocollo
                .service()
                .store()
                .protocol_registrations(&ProtocolFilter {
                    register: args.register,
                    between: args.day.map(day_bounds),
                    instance_id: args.instance,
                })
                .await?;
            if rows.is_empty() {
                println!("nessuna registrazione");
            }
            for r in &rows {
                println!("{}", line(r));
            }
            Ok(())
        }
        ProtocolloCommand::Show(args) => {
            let protocollo = open(&args.store).await?;
            let r = protocollo.find(&args.register, &args.reference).await?;
            print!("{}", detail(&protocollo, &r));
            Ok(())
        }
        ProtocolloCommand::Segnatura(args) => {
            let protocollo = open(&args.store).await?;
            let r = protocollo.find(&args.register, &args.reference).await?;
            match &r.segnatura {
                Some(xml) => {
                    println!("{xml}");
                    Ok(())
                }
                None => bail!(
                    "la registrazione {r} non ha segnatura (solo i documenti in uscita con un documento primario e destinatari)"
                ),
            }
        }
        ProtocolloCommand::Registro(args) => {
            let protocollo = open(&args.store).await?;
            let (csv, html, registrations, amendments, _) = protocollo.day_files(args.day).await?;
            match args.out {
                Some(dir) => {
                    std::fs::create_dir_all(&dir).with_context(|| format!("{}", dir.display()))?;
                    let name = format!("registro-giornaliero-{}", args.day.format("%Y-%m-%d"));
                    std::fs::write(dir.join(format!("{name}.csv")), &csv)?;
                    std::fs::write(dir.join(format!("{name}.html")), &html)?;
                    println!(
                        "registro del {}: {registrations} registrazioni, {amendments} annotazioni, scritto in {}",
                        args.day.format("%d/%m/%Y"),
                        dir.display()
                    );
                }
                None => print!("{csv}"),
            }
            Ok(())
        }
        ProtocolloCommand::Giornalieri(args) => {
            let protocollo = open(&args.store).await?;
            let days = protocollo.daily_registers().await?;
            if days.is_empty() {
                println!("nessun registro giornaliero mancante");
            }
            for day in days {
                println!(
                    "registro giornaliero del {} prodotto",
                    day.format("%d/%m/%Y")
                );
            }
            Ok(())
        }
        ProtocolloCommand::Registra(args) => registra(args).await,
        ProtocolloCommand::Annulla(args) => {
            let protocollo = open(&args.target.store).await?;
            let r = protocollo
                .find(&args.target.register, &args.target.reference)
                .await?;
            protocollo
                .annul(&r, &args.reason, &args.act, &args.operator)
                .await?;
            println!("registrazione {r} annullata: resta leggibile con il motivo e l'atto");
            Ok(())
        }
        ProtocolloCommand::Correggi(args) => {
            let protocollo = open(&args.target.store).await?;
            let r = protocollo
                .find(&args.target.register, &args.target.reference)
                .await?;
            let amendment = protocollo
                .correct(
                    &r,
                    &args.field,
                    &args.value,
                    &args.reason,
                    &args.act,
                    &args.operator,
                )
                .await?;
            println!(
                "registrazione {r}: '{}' corretto (valore precedente: {})",
                args.field,
                amendment.previous.as_deref().unwrap_or("nessuno")
            );
            Ok(())
        }
        ProtocolloCommand::Verify(args) => {
            let protocollo = open(&args.store).await?;
            let report = protocollo.verify().await?;
            if report.is_clean() {
                println!(
                    "registro integro: {} righe della catena e {} file verificati",
                    report.rows, report.files
                );
                Ok(())
            } else {
                for problem in &report.problems {
                    println!("{problem}");
                }
                bail!(
                    "{} problemi nel registro di protocollo ({} righe, {} file verificati)",
                    report.problems.len(),
                    report.rows,
                    report.files
                )
            }
        }
    }
}

async fn registra(args: RegistraArgs) -> anyhow::Result<()> {
    let Some(direction) = Direction::parse(&args.direction) else {
        bail!(
            "--direzione '{}' non valida: entrata, uscita o interno",
            args.direction
        );
    };
    let protocollo = open(&args.store).await?;
    let mut documents = Vec::new();
    for (index, path) in args.files.iter().enumerate() {
        let content = std::fs::read(path).with_context(|| format!("{}", path.display()))?;
        documents.push(RequestDocument {
            role: if index == 0 {
                DocumentRole::Primario
            } else {
                DocumentRole::Allegato
            },
            name: path.file_name().map_or_else(
                || "documento".to_owned(),
                |n| n.to_string_lossy().into_owned(),
            ),
            media_type: media_type(path),
            content,
        });
    }
    let correspondents = args
        .correspondents
        .iter()
        .enumerate()
        .map(|(index, name)| Correspondent {
            kind: CorrespondentKind::PersonaFisica,
            name: name.clone(),
            codice_fiscale: (index == 0).then(|| args.codice_fiscale.clone()).flatten(),
            email: (index == 0).then(|| args.email.clone()).flatten(),
            organisation_id: None,
            person_id: None,
            referente: None,
        })
        .collect();
    let r = protocollo
        .register(Request {
            register: args.register,
            direction,
            subject: args.subject,
            correspondents,
            classification: args.classification,
            fascicolo: args.instance.clone(),
            instance_id: args.instance,
            key: None,
            sender_reference: args.sender_reference,
            sender_date: args.sender_date,
            received_at: (direction == Direction::Entrata).then(|| protocollo.service().now()),
            channel: args.channel,
            operator: args.operator,
            documents,
        })
        .await?;
    println!("{}", line(&r));
    Ok(())
}

fn media_type(path: &std::path::Path) -> String {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("pdf") => "application/pdf",
        Some("p7m") => "application/pkcs7-mime",
        Some("xml") => "application/xml",
        Some("html" | "htm") => "text/html",
        Some("txt") => "text/plain",
        Some("csv") => "text/csv",
        Some("eml") => "message/rfc822",
        _ => "application/octet-stream",
    }
    .to_owned()
}

/// One line: number, date, direction, subject, state.
fn line(r: &ProtocolRegistration) -> String {
    let when = r
        .registered_at
        .with_timezone(&ROME)
        .format("%d/%m/%Y %H:%M");
    let state = if r.annulment().is_some() {
        " [ANNULLATA]"
    } else if r.reconciliation().is_some() {
        " [riconciliata]"
    } else {
        ""
    };
    format!(
        "{:<24} {when}  {:<8} {}{state}",
        r.to_string(),
        r.direction.as_str(),
        r.effective("oggetto").unwrap_or_else(|| r.subject.clone())
    )
}

/// A registration in full.
fn detail(protocollo: &Protocollo, r: &ProtocolRegistration) -> String {
    let mut out = format!("{}\n", line(r));
    out.push_str(&format!(
        "  timbro di segnatura: {}\n",
        crate::protocollo::segnatura::stamp(protocollo.aoo(), r)
    ));
    out.push_str(&format!(
        "  registrata il {} da {} (canale {}, fonte {})\n",
        r.registered_at
            .with_timezone(&ROME)
            .format("%d/%m/%Y %H:%M:%S"),
        r.operator,
        r.channel,
        r.source.as_str()
    ));
    if let Some(received) = r.received_at {
        out.push_str(&format!(
            "  ricevuta il {}\n",
            received.with_timezone(&ROME).format("%d/%m/%Y %H:%M:%S")
        ));
    }
    for c in &r.correspondents {
        out.push_str(&format!(
            "  {}: {}{}{}\n",
            if r.direction == Direction::Entrata {
                "mittente"
            } else {
                "destinatario"
            },
            c.name,
            c.referente
                .as_deref()
                .map(|p| format!(" (per {p})"))
                .unwrap_or_default(),
            c.email
                .as_deref()
                .map(|e| format!(" <{e}>"))
                .unwrap_or_default()
        ));
    }
    if let Some(c) = &r.classification {
        out.push_str(&format!("  classificazione: {c}\n"));
    }
    if let Some(f) = &r.fascicolo {
        out.push_str(&format!("  fascicolo: {f}\n"));
    }
    if let Some(reference) = &r.sender_reference {
        out.push_str(&format!(
            "  protocollo del mittente: {reference}{}\n",
            r.sender_date
                .map(|d| format!(" del {}", d.format("%d/%m/%Y")))
                .unwrap_or_default()
        ));
    }
    for d in &r.documents {
        out.push_str(&format!(
            "  documento {} «{}» {} ({} byte) sha256 {}\n",
            d.role.as_str(),
            d.name,
            d.media_type,
            d.size,
            d.sha256
        ));
    }
    for a in &r.amendments {
        out.push_str(&format!(
            "  {} il {} da {}: {}{}{}\n",
            a.kind.as_str(),
            a.at.with_timezone(&ROME).format("%d/%m/%Y %H:%M:%S"),
            a.operator,
            a.reason,
            a.act
                .as_deref()
                .map(|act| format!(" (atto: {act})"))
                .unwrap_or_default(),
            match (&a.field, &a.previous, &a.value) {
                (Some(field), previous, value) => format!(
                    " — {field}: «{}» → «{}»",
                    previous.as_deref().unwrap_or(""),
                    value.as_deref().unwrap_or("")
                ),
                (None, _, Some(value)) => format!(" — {value}"),
                _ => String::new(),
            }
        ));
    }
    out
}
