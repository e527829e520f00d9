//! `procedo instance start|fire|show|list`: drive procedures from a terminal.

use anyhow::{Context, bail};
use serde_json::{Map, Value};

use crate::app;
use crate::config::StoreArgs;
use crate::engine::{Actor, Command};
use crate::store::InstanceFilter;
use crate::terms::ROME;

/// `procedo instance …` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum InstanceCommand {
    /// Start an instance of a procedure.
    Start {
        /// Procedure id (e.g. avviso_coprogettazione).
        procedure: String,
        /// Variable as NAME=VALUE (VALUE is JSON when it parses as JSON, text otherwise).
        #[arg(long = "var", value_name = "NAME=VALUE")]
        vars: Vec<String>,
        /// Role to act in.
        #[arg(long = "as", default_value = "ufficio_di_piano")]
        role: String,
        /// Person acting.
        #[arg(long, default_value = "cli")]
        actor: String,
        /// Idempotency key: the same key twice starts one instance.
        #[arg(long)]
        key: Option<String>,
        /// Store options.
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Fire an event on an instance.
    Fire {
        /// Instance id.
        instance: String,
        /// Event.
        event: String,
        /// Input as NAME=VALUE.
        #[arg(long = "input", value_name = "NAME=VALUE")]
        inputs: Vec<String>,
        /// The participant (the id of its application) whose event it is.
        #[arg(long = "partecipante", value_name = "ID")]
        participant: Option<String>,
        /// Role to act in.
        #[arg(long = "as", default_value = "ufficio_di_piano")]
        role: String,
        /// Person acting.
        #[arg(long, default_value = "cli")]
        actor: String,
        /// Idempotency key: the same key twice has one effect.
        #[arg(long)]
        key: Option<String>,
        /// Store options.
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Show an instance: state, variables with their term traces, history, armed timers.
    Show {
        /// Instance id.
        instance: String,
        /// Store options.
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Show the commissione's evaluation of an instance: criteria in force with their act and
    /// rettifiche, the commissione with each member's declaration, the computed points of
    /// each proposal, the sessions, and the graduatoria once approved.
    Evaluation {
        /// Instance id.
        instance: String,
        /// Store options.
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Export the full history for accesso agli atti: events with actors and payload digests,
    /// terms with their traces, protocol numbers, deliveries; JSON and a readable HTML page,
    /// with a SHA-256 over the export. With `--terzo ORG`, what art. 24 L. 241/1990 protects
    /// is left out and marked.
    Export {
        /// Instance id.
        instance: String,
        /// The organisation asking for access (a third party).
        #[arg(long)]
        terzo: Option<String>,
        /// Write the JSON here (else to standard output).
        #[arg(long)]
        json: Option<std::path::PathBuf>,
        /// Write the HTML page here.
        #[arg(long)]
        html: Option<std::path::PathBuf>,
        /// Store options.
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List instances.
    List {
        /// Only this procedure.
        #[arg(long)]
        procedure: Option<String>,
        /// Only this state.
        #[arg(long)]
        state: Option<String>,
        /// Store options.
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// An instance and the version of its procedure it is pinned to.
async fn load(
    service: &crate::service::Service,
    instance: &str,
) -> anyhow::Result<(
    crate::store::InstanceRow,
    std::sync::Arc<crate::definition::Procedure>,
)> {
    let row = service
        .store()
        .instance(instance)
        .await?
        .with_context(|| format!("istanza sconosciuta '{instance}'"))?;
    let p = service
        .procedure(&row.definition_id, Some(row.definition_version))
        .await?;
    Ok((row, p))
}

/// Parses `NAME=VALUE` pairs; VALUE is JSON if it parses, else text.
pub fn parse_pairs(pairs: &[String]) -> anyhow::Result<Map<String, Value>> {
    let mut map = Map::new();
    for pair in pairs {
        let Some((name, raw)) = pair.split_once('=') else {
            bail!("'{pair}' non è nella forma NOME=VALORE");
        };
        let value =
            serde_json::from_str::<Value>(raw).unwrap_or_else(|_| Value::String(raw.to_string()));
        // A bare date like 2026-11-27 parses as a JSON number expression error, so it stays text.
        map.insert(name.trim().to_string(), value);
    }
    Ok(map)
}

/// Runs an `instance` subcommand.
pub async fn run(cmd: InstanceCommand) -> anyhow::Result<()> {
    match cmd {
        InstanceCommand::Start {
            procedure,
            vars,
            role,
            actor,
            key,
            store,
        } => {
            let (service, _) = app::open(&store, None).await?;
            let outcome = service
                .start(
                    &procedure,
                    None,
                    parse_pairs(&vars)?,
                    &Actor { id: actor, role },
                    key.map(|k| format!("cli:{k}")).as_deref(),
                )
                .await?;
            let i = &outcome.instance;
            println!("{}", i.id);
            eprintln!(
                "avviata {} v{} nello stato '{}'{}",
                i.definition_id,
                i.definition_version,
                i.state,
                if outcome.committed.replayed {
                    " (comando già eseguito)"
                } else {
                    ""
                }
            );
        }
        InstanceCommand::Fire {
            instance,
            event,
            inputs,
            participant,
            role,
            actor,
            key,
            store,
        } => {
            let (service, _) = app::open(&store, None).await?;
            let command = Command {
                event,
                actor: Actor { id: actor, role },
                payload: parse_pairs(&inputs)?,
                participant,
            };
            let outcome = service
                .fire(
                    &instance,
                    &command,
                    key.map(|k| format!("cli:{k}")).as_deref(),
                )
                .await?;
            println!(
                "{} → {}{}",
                instance,
                outcome.instance.state,
                if outcome.committed.replayed {
                    " (comando già eseguito)"
                } else {
                    ""
                }
            );
        }
        InstanceCommand::Show { instance, store } => {
            let (service, _) = app::open(&store, None).await?;
            let (row, p) = load(&service, &instance).await?;
            let title = p
                .state(&row.state)
                .map_or(row.state.clone(), |s| s.title.clone());
            println!("Istanza   {}", row.id);
            println!("Procedura {} v{}: {}", p.id, p.version, p.title);
            println!(
                "Stato     {} ({title}){}",
                row.state,
                if row.is_final { " — concluso" } else { "" }
            );
            println!("\nVariabili");
            for (name, value) in &row.data.variables {
                println!("  {name:<28} {}", display_value(value));
                if let Some(t) = row.data.terms.get(name) {
                    println!("  {:<28} ↳ {} da {}", "", t.rule, t.from);
                    for line in &t.trace {
                        println!("  {:<28}   {line}", "");
                    }
                }
            }
            if let Some(def) = &p.participant {
                println!("\n{} ({})", def.title, row.data.participants.len());
                for (id, part) in crate::engine::scope::active(&row.data) {
                    let state = def
                        .states
                        .get(part.state.as_str())
                        .map_or(part.state.as_str(), |s| s.title.as_str());
                    println!("  {id}  {} — {} ({state})", part.name, part.state);
                    if !part.members.is_empty() {
                        println!("      raggruppamento con {}", part.members.join(", "));
                    }
                    for (name, value) in part.variables.iter().filter(|(_, v)| !v.is_null()) {
                        println!("      {name:<26} {}", display_value(value));
                        if let Some(t) = part.terms.get(name) {
                            println!("      {:<26} ↳ {} da {}", "", t.rule, t.from);
                            for line in &t.trace {
                                println!("      {:<26}   {line}", "");
                            }
                        }
                    }
                }
                for (id, part) in row.data.participants.iter().filter(|(_, p)| p.withdrawn) {
                    println!("  {id}  {} — domanda ritirata", part.name);
                }
            }
            println!("\nStorico");
            println!(
                "  {:>3}  {:<25}  {:<22}  {:<18}  {:<18}  chi",
                "#", "quando (Europe/Rome)", "evento", "da", "a"
            );
            for h in service.store().history(&row.id).await? {
                let (from, to) = match &h.participant {
                    Some(moved) => {
                        let name = row
                            .data
                            .participants
                            .get(&moved.id)
                            .map_or(moved.id.as_str(), |p| p.name.as_str());
                        (
                            format!("{}: {}", name, moved.from.as_deref().unwrap_or("—")),
                            moved.to.clone(),
                        )
                    }
                    None => (
                        h.from_state.clone().unwrap_or_else(|| "—".into()),
                        h.to_state.clone(),
                    ),
                };
                println!(
                    "  {:>3}  {:<25}  {:<22}  {:<18}  {:<18}  {} ({}){}",
                    h.seq,
                    h.at.with_timezone(&ROME).format("%d/%m/%Y %H:%M:%S"),
                    h.event,
                    from,
                    to,
                    h.actor.id,
                    h.actor.role,
                    if h.late { " in ritardo" } else { "" }
                );
            }
            let timers = service.store().timers(&row.id).await?;
            if !timers.is_empty() {
                println!("\nTimer");
                for t in timers {
                    println!(
                        "  {:<32} {}  {:?}{}",
                        t.key,
                        t.fire_at.with_timezone(&ROME).format("%d/%m/%Y %H:%M"),
                        t.status,
                        t.outcome.map(|o| format!(" ({o})")).unwrap_or_default()
                    );
                    for line in &t.trace {
                        println!("  {:<32}   {line}", "");
                    }
                }
            }
        }
        InstanceCommand::Export {
            instance,
            terzo,
            json,
            html,
            store,
        } => {
            let (service, _) = app::open(&store, None).await?;
            let (_, p) = load(&service, &instance).await?;
            let sources = crate::export::load(service.store(), &instance, p.title.clone()).await?;
            let reader = match &terzo {
                Some(org) => crate::export::Reader::ThirdParty {
                    organisation_id: org,
                },
                None => crate::export::Reader::Office,
            };
            let export = crate::export::build(&sources, reader, service.now());
            let text = serde_json::to_string_pretty(&export)?;
            match &json {
                Some(file) => {
                    std::fs::write(file, &text).with_context(|| file.display().to_string())?;
                }
                None => println!("{text}"),
            }
            if let Some(file) = &html {
                std::fs::write(file, crate::export::html(&export))
                    .with_context(|| file.display().to_string())?;
            }
            eprintln!(
                "storico di {instance}: {} eventi, impronta SHA-256 {}",
                export["eventi"].as_array().map_or(0, Vec::len),
                export["impronta"].as_str().unwrap_or_default()
            );
        }
        InstanceCommand::Evaluation { instance, store } => {
            let (service, _) = app::open(&store, None).await?;
            let (row, p) = load(&service, &instance).await?;
            print_evaluation(&row, &p)?;
        }
        InstanceCommand::List {
            procedure,
            state,
            store,
        } => {
            let (service, _) = app::open(&store, None).await?;
            let rows = service
                .store()
                .instances(&InstanceFilter {
                    definition_id: procedure,
                    state,
                    after_id: None,
                    limit: Some(500),
                })
                .await?;
            for r in rows {
                println!(
                    "{}  {:<28} v{}  {:<24} {}",
                    r.id,
                    r.definition_id,
                    r.definition_version,
                    r.state,
                    r.updated_at.with_timezone(&ROME).format("%d/%m/%Y %H:%M")
                );
            }
        }
    }
    Ok(())
}

fn display_value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "—".into(),
        other => other.to_string(),
    }
}

/// The evaluation of an instance, for people.
fn print_evaluation(
    row: &crate::store::InstanceRow,
    p: &crate::definition::Procedure,
) -> anyhow::Result<()> {
    use crate::engine::evaluation::{self, COLLEGIAL};
    let ev = row.data.evaluation.as_ref().with_context(|| {
        if p.evaluation.is_some() {
            "i criteri non sono ancora fissati: lo sono alla pubblicazione".to_string()
        } else {
            "questa procedura non prevede una valutazione della commissione".to_string()
        }
    })?;
    println!(
        "Criteri   totale {} · soglia {} · parità: {}{}",
        ev.total,
        ev.threshold,
        ev.tie.join(", "),
        ev.act
            .as_deref()
            .map(|a| format!(" · approvati con {a}"))
            .unwrap_or_default()
    );
    fn criteria(list: &[crate::definition::Criterion], depth: usize) {
        for c in list {
            println!(
                "{}{} ({}) fino a {}",
                "  ".repeat(depth + 1),
                c.title,
                c.id,
                c.max
            );
            criteria(&c.sub, depth + 1);
        }
    }
    criteria(&ev.criteria, 0);
    for r in &ev.rectifications {
        println!(
            "  rettifica {} — {} ({})",
            r.act,
            r.reason,
            r.at.with_timezone(&ROME).format("%d/%m/%Y %H:%M")
        );
    }
    match &ev.commission {
        None => println!("Commissione  non ancora nominata"),
        Some(c) => {
            println!("Commissione  nominata con {}", c.act);
            for m in &c.members {
                println!(
                    "  {:<24} {:<26} {}{}",
                    m.name,
                    m.role.title(),
                    m.status().title(),
                    m.replaced_by
                        .as_deref()
                        .map(|r| format!(", sostituito da {r}"))
                        .unwrap_or_default()
                );
            }
        }
    }
    let ids: Vec<String> = row
        .data
        .participants
        .iter()
        .filter(|(id, part)| !part.withdrawn && ev.scores.contains_key(*id))
        .map(|(id, _)| id.clone())
        .collect();
    let ranking = match &ev.approval {
        Some(a) => a.ranking.clone(),
        None => evaluation::ranking(ev, &row.data.participants, &ids, &p.numbers),
    };
    println!(
        "Proposte{}",
        ev.approval
            .as_ref()
            .map(|a| format!(
                "  graduatoria approvata con determina n. {} del {}",
                a.number,
                a.date.format("%d/%m/%Y")
            ))
            .unwrap_or_else(|| "  (graduatoria non ancora approvata: calcolo provvisorio)".into())
    );
    for entry in &ranking {
        let name = row
            .data
            .participants
            .get(&entry.participant)
            .map_or(entry.participant.as_str(), |p| p.name.as_str());
        println!(
            "  {:>3} {:<40} {:>7}{}{}",
            entry.rank.map_or("–".to_string(), |r| format!("{r}.")),
            name,
            entry.total.to_string(),
            if entry.complete { "" } else { " incompleta" },
            if entry.eligible || !entry.complete {
                ""
            } else {
                " sotto soglia"
            }
        );
        for (leaf, scorers) in ev.scores.get(&entry.participant).into_iter().flatten() {
            for (scorer, s) in scorers {
                println!(
                    "        {leaf}: {} da {} — {}",
                    s.points,
                    if scorer == COLLEGIAL {
                        "commissione"
                    } else {
                        scorer
                    },
                    s.motivazione
                );
            }
        }
    }
    for s in &ev.sessions {
        println!(
            "Seduta n. {} del {}: presenti {}; {} punteggi",
            s.number,
            s.date.format("%d/%m/%Y"),
            s.present.join(", "),
            s.decided.len()
        );
    }
    Ok(())
}
