//! `procedo organo …` and `procedo seduta …`: a body's file read as people read it, and a
//! meeting's answers, register, votes and postponements from the command line, through the
//! same service steps as the API.

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use clap::Subcommand;
use serde_json::json;

use crate::app;
use crate::config::StoreArgs;
use crate::definition::body::{Base, Basis, Body, Quorum};
use crate::engine::Actor;
use crate::engine::meeting::{self, Answer, Ballot, Capacity, Outcome, Presence};
use crate::terms::ROME;

/// A body of the Ambito.
#[derive(Subcommand, Debug)]
pub enum OrganoCommand {
    /// Print a body's file: seats with their quotas, who attends without a vote, who may
    /// delegate, and its rules (or that the statute does not give them).
    Show {
        /// The body's file (workflows/organi/…).
        file: std::path::PathBuf,
    },
    /// List the bodies in a folder (default `workflows/organi`): id, name, seats, whether the
    /// quorum and majority rules are known; a file that does not read is named with why.
    List {
        /// The folder.
        #[arg(default_value = "workflows/organi")]
        dir: std::path::PathBuf,
    },
}

/// A meeting.
#[derive(Subcommand, Debug)]
pub enum SedutaCommand {
    /// Print the meeting: answers, register, the quorum now, each item with its outcome.
    Show {
        /// Instance id.
        instance: String,
        /// Store options.
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Record a seat's answer to the convocation: partecipa, non_partecipa, delega.
    Risposta {
        /// Instance id.
        instance: String,
        /// The seat (the comune's id).
        #[arg(long = "seggio")]
        seat: String,
        /// The answer.
        #[arg(long = "risposta")]
        answer: String,
        /// The delegate, for a delega.
        #[arg(long = "delegato")]
        delegate: Option<String>,
        /// The delegate's capacity.
        #[arg(long = "carica")]
        capacity: Option<String>,
        /// Store options.
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Record an arrival: for a seat, or without a vote (no --seggio, with --nota).
    Presenza {
        /// Instance id.
        instance: String,
        /// Name.
        #[arg(long = "nome")]
        name: String,
        /// The seat.
        #[arg(long = "seggio")]
        seat: Option<String>,
        /// Capacity: sindaco, vice_sindaco, assessore, delegato, non_indicata.
        #[arg(long = "carica", default_value = "sindaco")]
        capacity: String,
        /// Why they attend, without a vote.
        #[arg(long = "nota")]
        note: Option<String>,
        /// Store options.
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Record a departure.
    Uscita {
        /// Instance id.
        instance: String,
        /// Name.
        #[arg(long = "nome")]
        name: String,
        /// Store options.
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Record a vote on an item (1 for the first): each ballot as SEGGIO=favorevole|contrario|
    /// astenuto; or, without a roll call, --esito.
    Voto {
        /// Instance id.
        instance: String,
        /// The item, from 1.
        #[arg(long = "punto")]
        item: usize,
        /// A ballot, SEGGIO=VOTO.
        #[arg(long = "voto", value_name = "SEGGIO=VOTO")]
        ballots: Vec<String>,
        /// The outcome as declared (approvato, respinto, nessuna_decisione).
        #[arg(long = "esito")]
        outcome: Option<String>,
        /// Store options.
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Postpone an item.
    Rinvio {
        /// Instance id.
        instance: String,
        /// The item, from 1.
        #[arg(long = "punto")]
        item: usize,
        /// Store options.
        #[command(flatten)]
        store: StoreArgs,
    },
}

fn capacity_of(text: &str) -> anyhow::Result<Capacity> {
    Ok(match text.trim() {
        "sindaco" => Capacity::Sindaco,
        "vice_sindaco" => Capacity::ViceSindaco,
        "assessore" => Capacity::Assessore,
        "delegato" => Capacity::Delegato,
        "non_indicata" => Capacity::NonIndicata,
        other => bail!(
            "carica '{other}' sconosciuta (sindaco, vice_sindaco, assessore, delegato, non_indicata)"
        ),
    })
}

fn ballot_of(text: &str) -> anyhow::Result<(String, Ballot)> {
    let (seat, vote) = text
        .split_once('=')
        .with_context(|| format!("'{text}': serve SEGGIO=VOTO"))?;
    let vote = match vote.trim() {
        "favorevole" => Ballot::Favorevole,
        "contrario" => Ballot::Contrario,
        "astenuto" => Ballot::Astenuto,
        other => bail!("voto '{other}' sconosciuto (favorevole, contrario, astenuto)"),
    };
    Ok((seat.trim().to_string(), vote))
}

fn outcome_of(text: &str) -> anyhow::Result<Outcome> {
    Ok(match text.trim() {
        "approvato" => Outcome::Approvato,
        "respinto" => Outcome::Respinto,
        "nessuna_decisione" => Outcome::NessunaDecisione,
        other => bail!("esito '{other}' sconosciuto (approvato, respinto, nessuna_decisione)"),
    })
}

fn item_of(item: usize) -> anyhow::Result<usize> {
    item.checked_sub(1)
        .context("i punti dell'ordine del giorno contano da 1")
}

fn quorum_text(q: Option<Quorum>) -> String {
    match q {
        None => "non indicato dal regolamento".into(),
        Some(q) => [
            q.heads.map(|t| t.describe("dei seggi")),
            q.weights.map(|t| t.describe("delle quote")),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" e "),
    }
}

fn print_body(body: &Body) {
    println!("{} ({})", body.title, body.id);
    let total: rust_decimal::Decimal = body.seats.iter().map(|s| s.weight).sum();
    for s in &body.seats {
        println!(
            "  {:<40} quota {}{}",
            s.name,
            s.weight.normalize(),
            if body.presidente.as_deref() == Some(s.id.as_str()) {
                " (presiede)"
            } else {
                ""
            }
        );
    }
    println!("  totale quote {}", total.normalize());
    for a in &body.attendees {
        println!("  senza voto: {a}");
    }
    println!(
        "  per il titolare possono sedere: {}",
        if body.delegates.is_empty() {
            "non indicato".to_string()
        } else {
            body.delegates
                .iter()
                .filter_map(|c| c.title())
                .collect::<Vec<_>>()
                .join(", ")
        }
    );
    println!(
        "  numero legale in prima convocazione: {}",
        quorum_text(body.rules.quorum)
    );
    println!(
        "  numero legale in seconda convocazione: {}",
        quorum_text(body.rules.second_quorum)
    );
    println!(
        "  maggioranza: {}",
        match body.rules.majority {
            None => "non indicata dal regolamento".to_string(),
            Some(m) => format!(
                "dei {} {}",
                match m.base {
                    Base::Present => "presenti",
                    Base::Voting => "presenti e votanti",
                },
                match m.basis {
                    Basis::Heads => "per teste",
                    Basis::Weights => "secondo le quote",
                }
            ),
        }
    );
}

/// Runs an `organo` subcommand.
pub fn run_organo(cmd: OrganoCommand) -> anyhow::Result<()> {
    match cmd {
        OrganoCommand::Show { file } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("{}: impossibile leggere", file.display()))?;
            let body =
                Body::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            print_body(&body);
            Ok(())
        }
        OrganoCommand::List { dir } => {
            let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(&dir)
                .with_context(|| format!("{}: impossibile leggere la cartella", dir.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
                .collect();
            files.sort();
            let mut broken = 0;
            for file in files {
                let body = std::fs::read_to_string(&file)
                    .map_err(|e| e.to_string())
                    .and_then(|text| Body::parse(&text).map_err(|e| e.to_string()));
                match body {
                    Ok(body) => println!(
                        "{:<22} {:<40} {} seggi, numero legale {}, maggioranza {}  ({})",
                        body.id,
                        body.title,
                        body.seats.len(),
                        if body.rules.quorum.is_some() {
                            "indicato"
                        } else {
                            "non indicato"
                        },
                        if body.rules.majority.is_some() {
                            "indicata"
                        } else {
                            "non indicata"
                        },
                        file.display()
                    ),
                    Err(why) => {
                        broken += 1;
                        eprintln!("{}: {why}", file.display());
                    }
                }
            }
            if broken > 0 {
                anyhow::bail!("{broken} file di organi non leggibili");
            }
            Ok(())
        }
    }
}

fn staff() -> Actor {
    Actor {
        id: "cli".into(),
        role: "ufficio_di_piano".into(),
    }
}

/// Runs a `seduta` subcommand.
pub async fn run(cmd: SedutaCommand) -> anyhow::Result<()> {
    let outcome = match cmd {
        SedutaCommand::Show { instance, store } => {
            let (service, _) = app::open(&store, None).await?;
            let row = service
                .store()
                .instance(&instance)
                .await?
                .with_context(|| format!("istanza sconosciuta '{instance}'"))?;
            let p = service
                .procedure(&row.definition_id, Some(row.definition_version))
                .await?;
            let d = p
                .meeting
                .as_ref()
                .context("questa procedura non convoca un organo")?;
            let m = row.data.meeting.clone().unwrap_or_default();
            let body = meeting::body_of(d, &row.data);
            print_body(body);
            for (seat, r) in &m.rsvps {
                println!(
                    "Risposta {seat}: {}",
                    match r.answer {
                        Answer::Partecipa => "partecipa".to_string(),
                        Answer::NonPartecipa => "non partecipa".to_string(),
                        Answer::Delega =>
                            format!("delega {}", r.delegate.as_deref().unwrap_or("?")),
                    }
                );
            }
            for x in &m.register {
                println!(
                    "Presente {}{}{}{}",
                    x.name,
                    x.seat
                        .as_deref()
                        .map(|s| format!(" per {s}"))
                        .unwrap_or_else(|| " senza voto".into()),
                    x.capacity
                        .title()
                        .map(|c| format!(", {c}"))
                        .unwrap_or_default(),
                    x.left
                        .map(|l| format!(
                            ", uscito alle {}",
                            l.with_timezone(&ROME).format("%H.%M")
                        ))
                        .unwrap_or_default()
                );
            }
            let (at, when) = match m.closed_at {
                Some(closed) => (closed, "alla chiusura"),
                None => (service.now(), "ora"),
            };
            let q = meeting::quorum(body, &m.register, at, m.second_call);
            println!("Numero legale {when}: {}", q.trace.join("; "));
            for (i, title) in meeting::agenda(d, &row.data).iter().enumerate() {
                match m.items.get(&i) {
                    None => println!("{}. {title}: da trattare", i + 1),
                    Some(x) => {
                        println!("{}. {title}: {}", i + 1, x.outcome.title());
                        for line in &x.trace {
                            println!("     {line}");
                        }
                    }
                }
            }
            return Ok(());
        }
        SedutaCommand::Risposta {
            instance,
            seat,
            answer,
            delegate,
            capacity,
            store,
        } => {
            let answer = match answer.trim() {
                "partecipa" => Answer::Partecipa,
                "non_partecipa" => Answer::NonPartecipa,
                "delega" => Answer::Delega,
                other => bail!("risposta '{other}' sconosciuta (partecipa, non_partecipa, delega)"),
            };
            let capacity = capacity.as_deref().map(capacity_of).transpose()?;
            let (service, _) = app::open(&store, None).await?;
            let payload = json!({ "seggio": seat, "risposta": answer, "delegato": delegate });
            service
                .record_step(&instance, &staff(), &payload, None, |p, row, now| {
                    meeting::rsvp(
                        p,
                        &row.snapshot(),
                        &seat,
                        "cli",
                        answer,
                        delegate.as_deref(),
                        capacity,
                        now,
                    )
                })
                .await?
        }
        SedutaCommand::Presenza {
            instance,
            name,
            seat,
            capacity,
            note,
            store,
        } => {
            let presence = Presence {
                seat,
                name,
                capacity: capacity_of(&capacity)?,
                note,
                arrived: None,
                left: None,
            };
            let (service, _) = app::open(&store, None).await?;
            let payload = serde_json::to_value(&presence)?;
            service
                .record_step(&instance, &staff(), &payload, None, |p, row, now| {
                    meeting::arrive(p, &row.snapshot(), presence.clone(), now)
                })
                .await?
        }
        SedutaCommand::Uscita {
            instance,
            name,
            store,
        } => {
            let (service, _) = app::open(&store, None).await?;
            service
                .record_step(
                    &instance,
                    &staff(),
                    &json!({ "nome": name }),
                    None,
                    |p, row, now| meeting::leave(p, &row.snapshot(), &name, now),
                )
                .await?
        }
        SedutaCommand::Voto {
            instance,
            item,
            ballots,
            outcome,
            store,
        } => {
            let index = item_of(item)?;
            let mut by_seat = BTreeMap::new();
            for b in &ballots {
                let (seat, vote) = ballot_of(b)?;
                if by_seat.insert(seat.clone(), vote).is_some() {
                    bail!("il seggio '{seat}' vota una volta sola");
                }
            }
            let declared = outcome.as_deref().map(outcome_of).transpose()?;
            let (service, _) = app::open(&store, None).await?;
            let payload = json!({ "punto": item, "voti": by_seat, "esito": declared });
            service
                .record_step(&instance, &staff(), &payload, None, |p, row, now| {
                    meeting::vote(p, &row.snapshot(), index, &by_seat, declared, now)
                })
                .await?
        }
        SedutaCommand::Rinvio {
            instance,
            item,
            store,
        } => {
            let index = item_of(item)?;
            let (service, _) = app::open(&store, None).await?;
            service
                .record_step(
                    &instance,
                    &staff(),
                    &json!({ "punto": item }),
                    None,
                    |p, row, now| meeting::postpone(p, &row.snapshot(), index, now),
                )
                .await?
        }
    };
    eprintln!(
        "registrato nello storico (passo {}); procedo seduta show {} per il quadro",
        outcome.committed.seq, outcome.instance.id
    );
    Ok(())
}
