//! `procedo demo`: the shipped procedures run on the embedded SQLite default with the clock
//! moved forward by weeks, printing the timeline of states, deadlines and actions.
//!
//! Everything goes through the real paths: the service commits each step, the scheduler fires
//! the timers when the moved clock reaches them and drains the outbox.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use crate::app;
use crate::clock::{Clock, ManualClock};
use crate::config::StoreArgs;
use crate::engine::{Actor, Command, Effect, TimerAction};
use crate::scheduler::{Options, Scheduler};
use crate::service::Service;
use crate::store::OutboxStatus;
use crate::terms::ROME;

/// Arguments of `procedo demo`.
#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// The demo database (recreated at every run).
    #[arg(long, default_value = "procedo-demo.db")]
    pub db_file: PathBuf,
    /// Folder of workflow files.
    #[arg(long, env = "PROCEDO_WORKFLOWS", default_value = "workflows")]
    pub workflows: PathBuf,
    /// Folder for the emails the demo sends (`.eml` files).
    #[arg(long, default_value = "out/demo-mail")]
    pub mail_dir: PathBuf,
}

fn at(text: &str) -> anyhow::Result<DateTime<Utc>> {
    Ok(DateTime::parse_from_rfc3339(text).with_context(|| format!("istante '{text}'"))?.with_timezone(&Utc))
}

fn local(t: DateTime<Utc>) -> String {
    t.with_timezone(&ROME).format("%a %d/%m/%Y %H:%M").to_string()
}

struct Demo {
    service: Service,
    scheduler: Scheduler,
    clock: ManualClock,
    seen_history: BTreeMap<String, i64>,
    seen_outbox: i64,
    names: BTreeMap<String, &'static str>,
    /// Terms already printed, with the deadline printed: a term is printed again only if it moved.
    printed_terms: BTreeMap<(String, String), String>,
}

impl Demo {
    async fn start(&mut self, label: &'static str, procedure: &str, vars: Value, role: &str) -> anyhow::Result<String> {
        let vars: Map<String, Value> = vars.as_object().cloned().unwrap_or_default();
        let outcome = self.service.start(procedure, None, vars, &Actor { id: "demo".into(), role: role.into() }, None).await?;
        self.names.insert(outcome.instance.id.clone(), label);
        self.report().await?;
        Ok(outcome.instance.id)
    }

    async fn fire(&mut self, id: &str, event: &str, role: &str, payload: Value) -> anyhow::Result<()> {
        let command = Command { event: event.into(), actor: Actor { id: "demo".into(), role: role.into() }, payload: payload.as_object().cloned().unwrap_or_default() };
        match self.service.fire(id, &command, None).await {
            Ok(_) => {}
            Err(refusal) => println!("  {}  [{}] {event} rifiutato: {refusal}", local(self.clock.now()), self.names.get(id).copied().unwrap_or("?")),
        }
        self.report().await
    }

    /// Moves the clock to `until` one due timer at a time, so each fires at its own instant.
    async fn advance_to(&mut self, until: DateTime<Utc>) -> anyhow::Result<()> {
        println!("\n── il tempo scorre fino a {} ──", local(until));
        loop {
            let next = self.service.store().timers_between(self.clock.now(), until, None).await?.into_iter().map(|t| t.fire_at).min();
            match next {
                Some(when) if when > self.clock.now() => self.clock.set(when),
                Some(_) => {}
                None => break,
            }
            while self.scheduler.tick().await?.progressed() {}
            self.report().await?;
            if self.clock.now() >= until {
                break;
            }
        }
        self.clock.set(until);
        while self.scheduler.tick().await?.progressed() {}
        self.report().await
    }

    async fn report(&mut self) -> anyhow::Result<()> {
        let store = self.service.store().clone();
        for (id, label) in self.names.clone() {
            let last = self.seen_history.get(&id).copied().unwrap_or(0);
            for h in store.history(&id).await?.into_iter().filter(|h| h.seq > last) {
                let who = if h.actor.role == "system" { "scheduler".to_string() } else { h.actor.role.clone() };
                println!(
                    "  {}  [{label}] {}: {} → {} ({who}){}",
                    local(h.at),
                    h.event,
                    h.from_state.as_deref().unwrap_or("—"),
                    h.to_state,
                    if h.late { " in ritardo" } else { "" }
                );
                self.seen_history.insert(id.clone(), h.seq);
                for effect in h.effects.as_array().into_iter().flatten() {
                    if let Ok(Effect::ScheduleTimer(plan)) = serde_json::from_value::<Effect>(effect.clone()) {
                        let what = match &plan.action {
                            TimerAction::Fire { event } => format!("scadenza → evento '{event}'"),
                            TimerAction::Remind { role, template, .. } => format!("promemoria '{template}' a {role}"),
                        };
                        println!("        ⏰ {} {what} ({})", local(plan.fire_at), plan.key);
                    }
                }
            }
        }
        let seen = self.seen_outbox;
        for o in store.outbox_rows(None).await?.into_iter().filter(|o| o.id > seen) {
            self.seen_outbox = o.id;
            let label = o.instance_id.as_ref().and_then(|i| self.names.get(i)).copied().unwrap_or("—");
            let what = match &o.payload {
                Effect::Notify(n) => format!("notifica '{}' a {}{}", n.template, n.role, if n.urgent { " (urgente)" } else { "" }),
                Effect::RegisterProtocol { direction, .. } => format!("registrazione di protocollo in {direction}"),
                Effect::StartInstance { procedure, .. } => format!("avvio della sotto-procedura {procedure}"),
                other => other.kind().to_string(),
            };
            let status = match o.status {
                OutboxStatus::Done => "eseguita",
                OutboxStatus::Failed => "fallita",
                _ => "in coda",
            };
            println!("  {}  ✉ [{label}] {what} — {status}", local(o.created_at));
        }
        Ok(())
    }

    async fn print_terms(&mut self, id: &str) -> anyhow::Result<()> {
        let row = self.service.store().instance(id).await?.context("istanza scomparsa")?;
        for (name, term) in &row.data.terms {
            if self.printed_terms.insert((id.to_string(), name.clone()), term.deadline.clone()).as_ref() == Some(&term.deadline) {
                continue;
            }
            println!("        § {name} = {} ({} da {})", term.deadline, term.rule, term.from);
            for line in &term.trace {
                println!("            {line}");
            }
        }
        Ok(())
    }
}

trait Progressed {
    fn progressed(&self) -> bool;
}

impl Progressed for crate::scheduler::Outcome {
    fn progressed(&self) -> bool {
        matches!(self, crate::scheduler::Outcome::Progressed(_))
    }
}

/// Runs the demo.
pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    for suffix in ["", "-wal", "-shm"] {
        let file = PathBuf::from(format!("{}{suffix}", args.db_file.display()));
        if file.exists() {
            std::fs::remove_file(&file).with_context(|| format!("rimozione di {}", file.display()))?;
        }
    }
    let store_args = StoreArgs { database_url: format!("sqlite://{}?mode=rwc", args.db_file.display()), workflows: args.workflows.clone() };
    let clock = ManualClock::new(at("2026-11-26T09:00:00+01:00")?);
    let (service, _catalog) = app::open(&store_args, Some(Arc::new(clock.clone()))).await?;
    let scheduler = Scheduler::new(service.clone(), Options { worker_id: "demo".into(), ..Options::default() })?;
    let mut demo = Demo { service, scheduler, clock: clock.clone(), seen_history: BTreeMap::new(), seen_outbox: 0, names: BTreeMap::new(), printed_terms: BTreeMap::new() };

    println!("procedo demo — database {} (SQLite, WAL), orologio spostato in avanti\n", args.db_file.display());
    println!("1) Avviso pubblico di co-progettazione");
    let avviso = demo.start("avviso", "avviso_coprogettazione", json!({"oggetto": "Servizi per l'inclusione delle persone con disabilità"}), "rup").await?;
    clock.set(at("2026-11-27T10:00:00+01:00")?);
    demo.fire(&avviso, "pubblica", "rup", json!({"data_pubblicazione": "2026-11-27", "link": "https://ambito.example.it/avvisi/12"})).await?;
    demo.print_terms(&avviso).await?;
    clock.set(at("2026-12-10T11:00:00+01:00")?);
    demo.fire(&avviso, "chiudi_domande", "rup", json!({})).await?;

    println!("\n2) Convocazione dell'Assemblea dei Sindaci");
    let assemblea = demo
        .start(
            "assemblea",
            "convocazione_assemblea",
            json!({
                "organo": "Assemblea dei Sindaci",
                "ordine_del_giorno": ["Approvazione del verbale della seduta precedente", "Piano di Zona 2025-2027: aggiornamento annuale", "Esito dell'avviso di co-progettazione"],
                "luogo": "Sala consiliare del Comune capofila",
                "data_seduta": "2027-01-14T17:00:00+01:00"
            }),
            "ufficio_di_piano",
        )
        .await?;
    demo.print_terms(&assemblea).await?;
    demo.fire(&assemblea, "convoca", "presidente", json!({})).await?;

    demo.advance_to(at("2026-12-29T09:00:00+01:00")?).await?;
    println!("\n3) Istruttoria con soccorso istruttorio");
    demo.fire(&avviso, "richiedi_soccorso", "rup", json!({"documenti_mancanti": ["DURC in corso di validità", "Statuto aggiornato"]})).await?;
    demo.print_terms(&avviso).await?;

    println!("\n4) La seduta è spostata: i promemoria ai sindaci sono ripianificati");
    clock.set(at("2027-01-05T12:00:00+01:00")?);
    demo.fire(&assemblea, "sposta", "presidente", json!({"data_seduta": "2027-01-21T17:00:00+01:00"})).await?;

    demo.advance_to(at("2027-01-21T17:30:00+01:00")?).await?;
    demo.fire(&assemblea, "apri_seduta", "presidente", json!({})).await?;
    demo.fire(&avviso, "ammetti", "rup", json!({"ammessi": ["Cooperativa Sociale Il Ponte", "Associazione Orizzonti APS"]})).await?;
    demo.fire(&assemblea, "chiudi_seduta", "presidente", json!({})).await?;
    clock.set(at("2027-01-25T10:00:00+01:00")?);
    demo.fire(&assemblea, "pubblica_verbale", "segretario", json!({"data_pubblicazione_verbale": "2027-01-25", "link_verbale": "https://ambito.example.it/albo/verbale-2027-01"})).await?;
    demo.print_terms(&assemblea).await?;
    demo.fire(&avviso, "approva_graduatoria", "rup", json!({"data_graduatoria": "2027-01-26", "esito": "ammesso", "punteggio": 86.5})).await?;
    demo.print_terms(&avviso).await?;

    demo.advance_to(at("2027-04-01T09:00:00+02:00")?).await?;

    println!("\nStato finale");
    for (id, label) in &demo.names {
        let row = demo.service.store().instance(id).await?.context("istanza")?;
        let history = demo.service.store().history(id).await?;
        println!("  [{label}] {} — {} eventi nello storico (procedo instance show {id} --database sqlite://{}?mode=rwc)", row.state, history.len(), args.db_file.display());
    }
    let _ = &args.mail_dir;
    Ok(())
}
