//! `procedo demo`: the shipped procedures run on the embedded SQLite default with the clock
//! moved forward by weeks, printing the timeline of states, deadlines and actions.
//!
//! Everything goes through the real paths: the service commits each step, the scheduler fires
//! the timers when the moved clock reaches them and drains the outbox, and the delivery worker
//! writes the emails to the people registered at the start (three mayors, one of whom reads a
//! daily digest, three ETS — one the capofila of a group still to be formed — and the RUP) as
//! `.eml` files. The ETS apply through the same service call the API uses; each application
//! then lives its own lifecycle, and the timeline says who got which message.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use crate::app;
use crate::clock::{Clock, ManualClock};
use crate::config::StoreArgs;
use crate::engine::evaluation::{self, MemberRole, NewMember, ScoreInput};
use crate::engine::meeting::{self, Answer, Ballot, Capacity, Presence};
use crate::engine::{Actor, Command, Effect, TimerAction};
use crate::notify::Transport;
use crate::notify::delivery::{self, DeliveryOptions, DeliveryWorker, MailSettings};
use crate::scheduler::{CronJob, Options, Scheduler, cron};
use crate::service::Service;
use crate::store::{
    DeliveryFilter, DeliveryStatus, NewOrganisation, NewPerson, OrganisationKind, OutboxStatus,
    Store,
};
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

/// The demo's PEC: procedo's test provider on loopback (its own CA), its Maildir mailboxes,
/// and the reader of the office's mailbox.
struct DemoPec {
    provider: crate::pec::provider::Provider,
    mailbox: crate::pec::mailbox::Mailbox,
    ingest: crate::pec::ingest::Ingest,
}

/// The office's PEC address in the demo.
const DEMO_PEC: &str = "ufficiodipiano@pec.borgofiorito.example.it";

/// Starts the demo's PEC provider: Orizzonti's provider delivers ten minutes late, Valle
/// Verde's mailbox is full.
async fn demo_pec(
    service: &Service,
    protocollo: &crate::protocollo::Protocollo,
    dir: &std::path::Path,
) -> anyhow::Result<(DemoPec, crate::notify::delivery::PecSending)> {
    use crate::pec::provider::{Behaviour, Provider};
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("rimozione di {}", dir.display()))?;
    }
    let (ca, cert, key) = crate::pec::smime::test_authority("Gestore PEC di prova (demo)")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creazione di {}", dir.display()))?;
    std::fs::write(dir.join("ca-gestori-prova.pem"), pem_certificate(&ca))
        .context("certificato della CA di prova")?;
    let provider = Provider::new(
        "Gestore PEC di prova (demo)",
        dir.join("caselle"),
        crate::pec::Signer::new(&cert, &key)?,
        service.clock(),
    );
    provider.set_behaviour(
        "orizzonti@pec.orizzonti.example.it",
        Behaviour::DeliversAfter(chrono::Duration::minutes(10)),
    );
    provider.set_behaviour(
        "valleverde@pec.valleverde.example.it",
        Behaviour::MailboxFull,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("porta del gestore PEC di prova")?;
    let port = listener.local_addr()?.port();
    tokio::spawn(provider.clone().serve(listener));
    let transport = Transport::smtp(&crate::notify::SmtpSettings {
        rate: None,
        url: format!("smtp://127.0.0.1:{port}?tls=none"),
        from: DEMO_PEC.into(),
        timeout: Some(std::time::Duration::from_secs(10)),
    })?;
    let mailbox = crate::pec::mailbox::Mailbox::Maildir(provider.mailbox(DEMO_PEC));
    let ingest = crate::pec::ingest::Ingest::new(
        service.clone(),
        crate::pec::TrustList::from_der(&[ca])?,
        Some(protocollo.clone()),
    );
    Ok((
        DemoPec {
            provider,
            mailbox,
            ingest,
        },
        crate::notify::delivery::PecSending {
            transport,
            from: format!("Ufficio di Piano – Borgo Fiorito <{DEMO_PEC}>"),
        },
    ))
}

fn pem_certificate(der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

fn at(text: &str) -> anyhow::Result<DateTime<Utc>> {
    Ok(DateTime::parse_from_rfc3339(text)
        .with_context(|| format!("istante '{text}'"))?
        .with_timezone(&Utc))
}

/// "gio 14/01/2027 17:00": an instant as a person in Italy reads it.
fn local(t: DateTime<Utc>) -> String {
    use chrono::Datelike;
    const DAYS: [&str; 7] = ["lun", "mar", "mer", "gio", "ven", "sab", "dom"];
    let t = t.with_timezone(&ROME);
    format!(
        "{} {}",
        DAYS[t.weekday().num_days_from_monday() as usize],
        t.format("%d/%m/%Y %H:%M")
    )
}

struct Demo {
    service: Service,
    scheduler: Scheduler,
    /// Sends the deliveries the scheduler's dispatchers create, as `.eml` files.
    delivery: DeliveryWorker,
    clock: ManualClock,
    seen_history: BTreeMap<String, i64>,
    seen_outbox: i64,
    seen_delivery: i64,
    names: BTreeMap<String, &'static str>,
    /// The daily digest job, whose runs the clock stops at.
    digest: CronJob,
    /// Terms already printed, with the deadline printed: a term is printed again only if it moved.
    printed_terms: BTreeMap<(String, String), String>,
    /// The protocol register.
    protocollo: crate::protocollo::Protocollo,
    /// Applications by id, with the name of their ETS.
    participants: BTreeMap<String, String>,
    /// The PEC provider and the office's mailbox.
    pec: DemoPec,
}

impl Demo {
    async fn start(
        &mut self,
        label: &'static str,
        procedure: &str,
        vars: Value,
        role: &str,
    ) -> anyhow::Result<String> {
        let vars: Map<String, Value> = vars.as_object().cloned().unwrap_or_default();
        let outcome = self
            .service
            .start(
                procedure,
                None,
                vars,
                &Actor {
                    id: "demo".into(),
                    role: role.into(),
                },
                None,
            )
            .await?;
        self.names.insert(outcome.instance.id.clone(), label);
        self.settle().await?;
        self.report().await?;
        Ok(outcome.instance.id)
    }

    /// An ETS applies through the platform: the submission joins the procedure as a
    /// participant and is registered in the protocollo as incoming at once, as the API's
    /// `submitApplication` does. Returns the application's id.
    async fn apply(
        &mut self,
        avviso: &str,
        ets: &'static str,
        name: &str,
        members: &[&str],
    ) -> anyhow::Result<String> {
        let id = crate::store::new_row_id(self.service.now());
        let content = format!("Proposta progettuale di {name} per l'avviso di co-progettazione.\n")
            .into_bytes();
        let document = crate::store::AttachedDocument {
            name: "proposta-progettuale.txt".into(),
            media_type: "text/plain".into(),
            sha256: crate::store::sha256_hex(&content),
            content,
        };
        let group = crate::service::Group {
            members: members.iter().map(|m| (*m).to_owned()).collect(),
        };
        let actor = Actor {
            id: ets.into(),
            role: "ets".into(),
        };
        self.service
            .submit(
                &crate::store::NewSubmission {
                    id: id.clone(),
                    instance_id: avviso.to_owned(),
                    organisation_id: ets.to_owned(),
                    person_id: ets.to_owned(),
                    note: Some("Proposta progettuale con cronoprogramma".into()),
                    documents: vec![document],
                    at: self.clock.now(),
                },
                &group,
                &actor,
            )
            .await?;
        self.participants.insert(id.clone(), name.to_owned());
        let registration =
            crate::protocollo::dispatch::register_incoming(&self.protocollo, &id, None).await?;
        println!(
            "  {}  [avviso] domanda di {name}{} dalla piattaforma — protocollo in entrata n. {registration}, ricevuta alle {}",
            local(self.clock.now()),
            if members.is_empty() {
                String::new()
            } else {
                format!(" (capofila del raggruppamento con {})", members.join(", "))
            },
            registration
                .received_at
                .map(|t| t.with_timezone(&ROME).format("%H:%M").to_string())
                .unwrap_or_default()
        );
        self.settle().await?;
        self.report().await?;
        Ok(id)
    }

    /// The ETS answers the soccorso istruttorio on its application, as the API's
    /// `respondToSoccorso` does: the answer fires its participant's event and is registered as
    /// incoming.
    async fn answer_soccorso(
        &mut self,
        avviso: &str,
        application: &str,
        ets: &'static str,
        documents: &[&str],
    ) -> anyhow::Result<()> {
        let attached = documents
            .iter()
            .map(|name| {
                let content = format!("{name}\n").into_bytes();
                crate::store::AttachedDocument {
                    name: format!("{}.txt", name.to_lowercase().replace(' ', "-")),
                    media_type: "text/plain".into(),
                    sha256: crate::store::sha256_hex(&content),
                    content,
                }
            })
            .collect();
        let answer = crate::store::NewSoccorsoResponse {
            id: uuid::Uuid::new_v4().to_string(),
            submission_id: application.to_owned(),
            person_id: ets.to_owned(),
            note: Some("Integrazioni richieste".into()),
            documents: attached,
            at: self.clock.now(),
        };
        let actor = Actor {
            id: ets.into(),
            role: "ets".into(),
        };
        match self.service.answer_soccorso(&answer, avviso, &actor).await {
            Ok(_) => {
                let registration = crate::protocollo::dispatch::register_incoming(
                    &self.protocollo,
                    application,
                    Some(&answer.id),
                )
                .await?;
                println!(
                    "  {}  [avviso] integrazioni di {} dalla piattaforma — protocollo in entrata n. {registration}",
                    local(self.clock.now()),
                    self.participant_name(application)
                );
            }
            Err(refusal) => println!(
                "  {}  [avviso] integrazioni rifiutate: {refusal}",
                local(self.clock.now())
            ),
        }
        self.settle().await?;
        self.report().await
    }

    /// Staff fire an event on one application, as the API's `fireOnSubmission` does.
    async fn fire_on(
        &mut self,
        avviso: &str,
        application: &str,
        event: &str,
        role: &str,
        payload: Value,
    ) -> anyhow::Result<()> {
        let command = Command {
            event: event.into(),
            actor: Actor {
                id: "demo".into(),
                role: role.into(),
            },
            payload: payload.as_object().cloned().unwrap_or_default(),
            participant: Some(application.to_owned()),
        };
        if let Err(refusal) = self.service.fire(avviso, &command, None).await {
            println!(
                "  {}  [avviso · {}] {event} rifiutato: {refusal}",
                local(self.clock.now()),
                self.participant_name(application)
            );
        }
        self.settle().await?;
        self.report().await
    }

    /// The graduatoria as the determina approved it: computed from the scores, never typed.
    async fn print_graduatoria(&self, avviso: &str) -> anyhow::Result<()> {
        let Some(row) = self.service.store().instance(avviso).await? else {
            return Ok(());
        };
        let Some(approval) = row
            .data
            .evaluation
            .as_ref()
            .and_then(|e| e.approval.as_ref())
        else {
            return Ok(());
        };
        println!(
            "        § graduatoria approvata con determina n. {} del {}:",
            approval.number,
            approval.date.format("%d/%m/%Y")
        );
        for entry in &approval.ranking {
            let points: Vec<String> = entry
                .points
                .iter()
                .map(|(criterion, p)| format!("{criterion} {p}"))
                .collect();
            println!(
                "            {} {} — {} punti ({})",
                entry.rank.map_or("–".to_string(), |r| format!("{r}.")),
                self.participant_name(&entry.participant),
                entry.total,
                points.join(", ")
            );
        }
        Ok(())
    }

    /// A command of the commissione's evaluation, as the API's evaluation mutations do.
    async fn evaluate(
        &mut self,
        avviso: &str,
        who: &str,
        compute: impl Fn(
            &crate::definition::Procedure,
            &crate::store::InstanceRow,
            chrono::DateTime<chrono::Utc>,
        ) -> Result<crate::engine::Step, crate::engine::Error>,
    ) -> anyhow::Result<()> {
        let role = if who == "rup" { "rup" } else { "commissione" };
        self.record(avviso, who, role, compute).await
    }

    /// A command recorded on an instance without an event of its definition (the
    /// commissione's, a meeting's), as the API's mutations do.
    async fn record(
        &mut self,
        id: &str,
        who: &str,
        role: &str,
        compute: impl Fn(
            &crate::definition::Procedure,
            &crate::store::InstanceRow,
            chrono::DateTime<chrono::Utc>,
        ) -> Result<crate::engine::Step, crate::engine::Error>,
    ) -> anyhow::Result<()> {
        let actor = Actor {
            id: who.into(),
            role: role.into(),
        };
        if let Err(refusal) = self
            .service
            .record_step(id, &actor, &json!({}), None, compute)
            .await
        {
            println!(
                "  {}  [{}] rifiutato: {refusal}",
                local(self.clock.now()),
                self.names.get(id).copied().unwrap_or("?")
            );
        }
        self.settle().await?;
        self.report().await
    }

    /// The meeting as recorded: who answered, each item with its count and why.
    async fn print_meeting(&self, id: &str) -> anyhow::Result<()> {
        let Some(row) = self.service.store().instance(id).await? else {
            return Ok(());
        };
        let p = self
            .service
            .procedure(&row.definition_id, Some(row.definition_version))
            .await?;
        let (Some(d), Some(m)) = (p.meeting.as_ref(), row.data.meeting.as_ref()) else {
            return Ok(());
        };
        let body = meeting::body_of(d, &row.data);
        for (seat, r) in &m.rsvps {
            let name = body
                .seats
                .iter()
                .find(|s| &s.id == seat)
                .map_or(seat.as_str(), |s| s.name.as_str());
            println!(
                "        § {name}: {}",
                match r.answer {
                    Answer::Partecipa => "partecipa".to_string(),
                    Answer::NonPartecipa => "non partecipa".to_string(),
                    Answer::Delega => format!("delega {}", r.delegate.as_deref().unwrap_or("?")),
                }
            );
        }
        for (i, title) in meeting::agenda(d, &row.data).iter().enumerate() {
            let Some(x) = m.items.get(&i) else {
                continue;
            };
            println!("        § punto {}. {title}: {}", i + 1, x.outcome.title());
            for line in &x.trace {
                println!("            {line}");
            }
            if let Some(w) = &x.publication {
                println!(
                    "            deliberazione all'albo da sola dal {} al {}",
                    w.from.format("%d/%m/%Y"),
                    w.to.format("%d/%m/%Y")
                );
            }
        }
        if let Some(a) = &m.approval {
            println!(
                "        § verbale approvato nella seduta del {} (punto {})",
                a.date, a.item
            );
        }
        Ok(())
    }

    /// The PDF/A copy of a document registered for `id` (the verbale to sign), written beside
    /// the demo database.
    async fn save_pdfa(
        &self,
        id: &str,
        name: &str,
        file: PathBuf,
    ) -> anyhow::Result<Option<(PathBuf, Vec<u8>)>> {
        let registrations = self
            .service
            .store()
            .protocol_registrations(&crate::store::ProtocolFilter {
                instance_id: Some(id.to_string()),
                ..crate::store::ProtocolFilter::default()
            })
            .await?;
        let Some(doc) = registrations
            .iter()
            .flat_map(|r| r.documents.iter())
            .find(|d| d.name == name)
        else {
            return Ok(None);
        };
        let Some(content) = self.protocollo.files().get(&doc.sha256).await? else {
            return Ok(None);
        };
        std::fs::write(&file, &content).with_context(|| file.display().to_string())?;
        Ok(Some((file, content)))
    }

    fn participant_name(&self, id: &str) -> String {
        self.participants
            .get(id)
            .cloned()
            .unwrap_or_else(|| id.to_owned())
    }

    async fn fire(
        &mut self,
        id: &str,
        event: &str,
        role: &str,
        payload: Value,
    ) -> anyhow::Result<()> {
        let command = Command {
            event: event.into(),
            actor: Actor {
                id: "demo".into(),
                role: role.into(),
            },
            payload: payload.as_object().cloned().unwrap_or_default(),
            participant: None,
        };
        match self.service.fire(id, &command, None).await {
            Ok(_) => {}
            Err(refusal) => println!(
                "  {}  [{}] {event} rifiutato: {refusal}",
                local(self.clock.now()),
                self.names.get(id).copied().unwrap_or("?")
            ),
        }
        self.settle().await?;
        self.report().await
    }

    /// Ticks the scheduler until it is idle and sends the emails its dispatchers queued, until
    /// both have nothing left to do at the clock's instant.
    async fn settle(&mut self) -> anyhow::Result<()> {
        loop {
            while self.scheduler.tick().await?.progressed() {}
            if self.delivery.tick().await? > 0 {
                continue;
            }
            // The PEC provider delivers what is due; procedo reads the office's mailbox.
            self.pec.provider.tick().await?;
            let read = self.pec.ingest.poll(&self.pec.mailbox).await?;
            if read.is_empty() {
                return Ok(());
            }
            self.report_pec(&read).await?;
        }
    }

    /// One line per receipt that moved a PEC's status.
    async fn report_pec(&mut self, read: &[crate::pec::ingest::Outcome]) -> anyhow::Result<()> {
        use crate::pec::ingest::Outcome;
        let deliveries = self
            .service
            .store()
            .deliveries(&DeliveryFilter::default())
            .await?;
        for outcome in read {
            match outcome {
                Outcome::Receipt {
                    delivery,
                    status: Some(status),
                } => {
                    let Some(d) = deliveries.iter().find(|d| d.id == *delivery) else {
                        continue;
                    };
                    let when = d
                        .pec_at
                        .map(|at| {
                            at.with_timezone(&ROME)
                                .format("%d/%m/%Y %H:%M:%S")
                                .to_string()
                        })
                        .unwrap_or_default();
                    let icon = if status.is_failure() {
                        "⚠️ "
                    } else {
                        "📨"
                    };
                    println!(
                        "        {icon} PEC {} a {} <{}>: {} (ricevuta del gestore del {when})",
                        d.kind,
                        d.recipient_name,
                        d.recipient_email,
                        status.as_str().replace('_', " ")
                    );
                }
                Outcome::Refused(reason) => {
                    println!("        ⚠️  ricevuta PEC rifiutata: {reason}")
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Moves the clock to `until` one due timer at a time, so each fires at its own instant.
    async fn advance_to(&mut self, until: DateTime<Utc>) -> anyhow::Result<()> {
        println!("\n── il tempo scorre fino a {} ──", local(until));
        self.move_clock_to(until).await
    }

    /// Moves the clock to `until`, stopping at each due timer and at each run of the daily
    /// digest, so that each happens at its own instant (and no digest run is missed).
    async fn move_clock_to(&mut self, until: DateTime<Utc>) -> anyhow::Result<()> {
        loop {
            let now = self.clock.now();
            let next_timer = self
                .service
                .store()
                .timers_between(now, until, None)
                .await?
                .into_iter()
                .map(|t| t.fire_at)
                .min();
            let next_digest = cron::next_due(&self.digest.schedule, now).filter(|at| *at < until);
            let next = next_timer.into_iter().chain(next_digest).min();
            match next {
                Some(when) if when > self.clock.now() => self.clock.set(when),
                Some(_) => {}
                None => break,
            }
            self.settle().await?;
            self.report().await?;
            if self.clock.now() >= until {
                break;
            }
        }
        self.clock.set(until);
        self.settle().await?;
        self.report().await
    }

    async fn report(&mut self) -> anyhow::Result<()> {
        let store = self.service.store().clone();
        for (id, label) in self.names.clone() {
            let last = self.seen_history.get(&id).copied().unwrap_or(0);
            for h in store
                .history(&id)
                .await?
                .into_iter()
                .filter(|h| h.seq > last)
            {
                let who = if h.actor.role == "system" {
                    "scheduler".to_string()
                } else {
                    h.actor.role.clone()
                };
                match &h.participant {
                    Some(moved) => println!(
                        "  {}  [{label} · {}] {}: {} → {} ({who}){}",
                        local(h.at),
                        self.participant_name(&moved.id),
                        h.event,
                        moved.from.as_deref().unwrap_or("—"),
                        moved.to,
                        if h.late { " in ritardo" } else { "" }
                    ),
                    None => println!(
                        "  {}  [{label}] {}: {} → {} ({who}){}",
                        local(h.at),
                        h.event,
                        h.from_state.as_deref().unwrap_or("—"),
                        h.to_state,
                        if h.late { " in ritardo" } else { "" }
                    ),
                }
                self.seen_history.insert(id.clone(), h.seq);
                for effect in h.effects.as_array().into_iter().flatten() {
                    if let Ok(Effect::ScheduleTimer(plan)) =
                        serde_json::from_value::<Effect>(effect.clone())
                    {
                        let what = match &plan.action {
                            TimerAction::Fire { event, .. } => {
                                format!("scadenza → evento '{event}'")
                            }
                            TimerAction::Remind { role, template, .. } => {
                                format!("promemoria '{template}' a {role}")
                            }
                        };
                        println!("        ⏰ {} {what} ({})", local(plan.fire_at), plan.key);
                    }
                }
            }
        }
        let seen = self.seen_outbox;
        for o in store
            .outbox_rows(None)
            .await?
            .into_iter()
            .filter(|o| o.id > seen)
        {
            self.seen_outbox = o.id;
            if matches!(
                o.kind.as_str(),
                crate::protocollo::dispatch::PROTOCOL_REGISTER_KIND
                    | crate::protocollo::dispatch::PROTOCOL_RECONCILE_KIND
                    | crate::protocollo::dispatch::ALBO_REFERTO_KIND
                    | crate::protocollo::dispatch::ALBO_CAPOFILA_KIND
            ) {
                // The daily register, the reconciliation and the albo's referti run every day:
                // summed up at the end.
                continue;
            }
            if o.kind == delivery::DIGEST_KIND
                && store
                    .deliveries(&DeliveryFilter {
                        outbox_id: Some(o.id),
                        ..DeliveryFilter::default()
                    })
                    .await?
                    .is_empty()
            {
                // A daily digest with nobody waiting for it: nothing to show.
                continue;
            }
            let label = o
                .instance_id
                .as_ref()
                .and_then(|i| self.names.get(i))
                .copied()
                .unwrap_or("—");
            let what = match &o.payload {
                Effect::Notify(_) if o.kind == delivery::DIGEST_KIND => {
                    "riepilogo giornaliero per chi lo ha scelto".to_string()
                }
                Effect::Notify(n) => format!(
                    "notifica '{}' a {}{}",
                    n.template,
                    match (&n.participant, &n.organisations, n.public) {
                        (Some(p), Some(_), _) => self.participant_name(p),
                        (Some(p), None, _) => {
                            format!("{} (domanda di {})", n.role, self.participant_name(p))
                        }
                        (None, _, true) => format!("tutti ({}, pubblicazione)", n.role),
                        (None, _, false) => n.role.clone(),
                    },
                    if n.urgent { " (urgente)" } else { "" }
                ),
                Effect::RegisterProtocol {
                    direction,
                    participant,
                    ..
                } => {
                    let to = participant
                        .as_deref()
                        .map(|p| format!(" per {}", self.participant_name(p)))
                        .unwrap_or_default();
                    match store.protocol_by_key(&format!("outbox:{}", o.id)).await? {
                        Some(entry) => format!("protocollo in {direction} n. {entry}{to}"),
                        None => format!("registrazione di protocollo in {direction}{to}"),
                    }
                }
                Effect::StartInstance { procedure, .. } => {
                    format!("avvio della sotto-procedura {procedure}")
                }
                Effect::RegisterIncoming {
                    submission_id,
                    soccorso_id,
                } => {
                    let key = match soccorso_id {
                        Some(soccorso) => format!("soccorso:{soccorso}"),
                        None => format!("domanda:{submission_id}"),
                    };
                    match store.protocol_by_key(&key).await? {
                        Some(entry) => format!(
                            "protocollo in entrata n. {entry} (già registrata alla ricezione)"
                        ),
                        None => "registrazione in entrata".to_string(),
                    }
                }
                other => other.kind().to_string(),
            };
            let status = match o.status {
                OutboxStatus::Done => "eseguita",
                OutboxStatus::Failed => "fallita",
                _ => "in coda",
            };
            println!("  {}  ✉ [{label}] {what} — {status}", local(o.created_at));
            if let (Effect::Notify(n), OutboxStatus::Done) = (&o.payload, o.status)
                && o.kind != delivery::DIGEST_KIND
                && store
                    .deliveries(&DeliveryFilter {
                        outbox_id: Some(o.id),
                        ..DeliveryFilter::default()
                    })
                    .await?
                    .is_empty()
            {
                let why = if n.role == "ets" {
                    "nessun ETS ha presentato domanda in questa procedura"
                } else {
                    "nessuna persona ha questo ruolo"
                };
                println!(
                    "        📧 {}: nessun destinatario con il ruolo '{}' ({why}): nessuna email",
                    n.template, n.role
                );
            }
        }
        self.report_emails(&store).await
    }

    /// One line per notification whose emails appeared since the last report: how many were
    /// written, held for the daily digest or refused.
    async fn report_emails(&mut self, store: &Store) -> anyhow::Result<()> {
        let seen = self.seen_delivery;
        let mut groups: BTreeMap<(i64, String), BTreeMap<DeliveryStatus, usize>> = BTreeMap::new();
        let mut by_pec: std::collections::BTreeSet<i64> = std::collections::BTreeSet::new();
        let mut names: BTreeMap<i64, Vec<String>> = BTreeMap::new();
        for d in store
            .deliveries(&DeliveryFilter::default())
            .await?
            .into_iter()
            .filter(|d| d.id > seen)
        {
            self.seen_delivery = self.seen_delivery.max(d.id);
            if d.channel == crate::definition::Channel::Pec {
                by_pec.insert(d.outbox_id);
            }
            names
                .entry(d.outbox_id)
                .or_default()
                .push(d.recipient_name.clone());
            *groups
                .entry((d.outbox_id, d.kind))
                .or_default()
                .entry(d.status)
                .or_default() += 1;
        }
        for ((outbox_id, kind), counts) in groups {
            // Who got it, when they are few enough to name.
            let to = names
                .get(&outbox_id)
                .filter(|list| list.len() <= 3)
                .map(|list| format!(" a {}", list.join(", ")))
                .unwrap_or_default();
            let count = |status| counts.get(&status).copied().unwrap_or(0);
            let mut parts = Vec::new();
            let pec = by_pec.contains(&outbox_id);
            let (sent_one, sent_many) = if pec {
                ("PEC inviata", "PEC inviate")
            } else {
                ("email scritta", "email scritte")
            };
            for (status, one, many) in [
                (DeliveryStatus::Sent, sent_one, sent_many),
                (
                    DeliveryStatus::Held,
                    "trattenuta per il riepilogo giornaliero",
                    "trattenute per il riepilogo giornaliero",
                ),
                (
                    DeliveryStatus::Pending,
                    "in attesa di invio",
                    "in attesa di invio",
                ),
                (DeliveryStatus::Failed, "non consegnata", "non consegnate"),
            ] {
                match count(status) {
                    0 => {}
                    1 => parts.push(format!("1 {one}")),
                    n => parts.push(format!("{n} {many}")),
                }
            }
            let icon = if pec { "📨" } else { "📧" };
            println!("        {icon} {kind}{to}: {}", parts.join(", "));
        }
        Ok(())
    }

    async fn print_terms(&mut self, id: &str) -> anyhow::Result<()> {
        let row = self
            .service
            .store()
            .instance(id)
            .await?
            .context("istanza scomparsa")?;
        for (name, term) in &row.data.terms {
            if self
                .printed_terms
                .insert((id.to_string(), name.clone()), term.deadline.clone())
                .as_ref()
                == Some(&term.deadline)
            {
                continue;
            }
            println!(
                "        § {name} = {} ({} da {})",
                term.deadline, term.rule, term.from
            );
            for line in &term.trace {
                println!("            {line}");
            }
        }
        for (pid, part) in &row.data.participants {
            for (name, term) in &part.terms {
                if self
                    .printed_terms
                    .insert((format!("{id}/{pid}"), name.clone()), term.deadline.clone())
                    .as_ref()
                    == Some(&term.deadline)
                {
                    continue;
                }
                println!(
                    "        § {name} di {} = {} ({} da {})",
                    part.name, term.deadline, term.rule, term.from
                );
                for line in &term.trace {
                    println!("            {line}");
                }
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
            std::fs::remove_file(&file)
                .with_context(|| format!("rimozione di {}", file.display()))?;
        }
    }
    let store_args = StoreArgs {
        database_url: format!("sqlite://{}?mode=rwc", args.db_file.display()),
        workflows: args.workflows.clone(),
    };
    let clock = ManualClock::new(at("2026-11-26T09:00:00+01:00")?);
    let (service, catalog) = app::open(&store_args, Some(Arc::new(clock.clone()))).await?;
    register_people(service.store(), clock.now()).await?;
    clear_mail_dir(&args.mail_dir)?;
    let mut mail = MailSettings::new(catalog.templates, Transport::files(&args.mail_dir));
    mail.from = "Ufficio di Piano – Borgo Fiorito <ufficiodipiano@borgofiorito.example.it>".into();
    mail.ambito = "Ambito territoriale di Borgo Fiorito".into();
    mail.delivery = DeliveryOptions {
        worker_id: "demo".into(),
        ..DeliveryOptions::default()
    };
    let digest = CronJob::new("riepilogo", "0 0 8 * * *", "digest")?;
    let registro = CronJob::new("registro_protocollo", "0 5 0 * * *", "protocol_register")?;
    let referto = CronJob::new("referto_albo", "0 10 0 * * *", "albo_referto")?;
    let capofila = CronJob::new("consegna_albo_capofila", "0 */10 * * * *", "albo_capofila")?;
    let protocollo = demo_protocollo(&service, &args)?;
    let (pec, pec_sending) =
        demo_pec(&service, &protocollo, &demo_dir(&args).join("demo-pec")).await?;
    mail.pec = Some(pec_sending.clone());
    let scheduler = crate::protocollo::install(
        delivery::install(
            Scheduler::new(
                service.clone(),
                Options {
                    worker_id: "demo".into(),
                    cron: vec![digest.clone(), registro, referto, capofila],
                    ..Options::default()
                },
            )?,
            &mail,
        ),
        &protocollo,
        &mail,
    );
    let worker = DeliveryWorker::new(
        service.store().clone(),
        mail.transport.clone(),
        mail.delivery.clone(),
        service.clock(),
    )
    .with_pec(pec_sending.transport);
    let mut demo = Demo {
        service,
        scheduler,
        delivery: worker,
        clock: clock.clone(),
        seen_history: BTreeMap::new(),
        seen_outbox: 0,
        seen_delivery: 0,
        names: BTreeMap::new(),
        digest,
        printed_terms: BTreeMap::new(),
        protocollo,
        participants: BTreeMap::new(),
        pec,
    };

    println!(
        "procedo demo — database {} (SQLite, WAL), orologio spostato in avanti",
        args.db_file.display()
    );
    println!(
        "Destinatari: 3 sindaci (uno sceglie il riepilogo giornaliero delle 8:00), 3 referenti ETS (uno capofila di un raggruppamento da costituire), il RUP, il titolare del potere sostitutivo; email in {}\n",
        args.mail_dir.display()
    );
    println!("1) Avviso pubblico di co-progettazione");
    let avviso = demo
        .start(
            "avviso",
            "avviso_coprogettazione",
            json!({"oggetto": "Servizi per l'inclusione delle persone con disabilità"}),
            "rup",
        )
        .await?;
    demo.move_clock_to(at("2026-11-27T10:00:00+01:00")?).await?;
    demo.fire(
        &avviso,
        "pubblica",
        "rup",
        json!({"data_pubblicazione": "2026-11-27", "atto_criteri": "determina n. 12 del 26/11/2026", "link": "https://ambito.example.it/avvisi/12"}),
    )
    .await?;
    demo.print_terms(&avviso).await?;
    demo.move_clock_to(at("2026-12-04T16:20:00+01:00")?).await?;
    let ponte = demo
        .apply(&avviso, "ets-il-ponte", "Cooperativa Sociale Il Ponte", &[])
        .await?;
    demo.move_clock_to(at("2026-12-09T11:42:00+01:00")?).await?;
    let orizzonti = demo
        .apply(&avviso, "ets-orizzonti", "Associazione Orizzonti APS", &[])
        .await?;
    demo.move_clock_to(at("2026-12-15T10:05:00+01:00")?).await?;
    let valle_verde = demo
        .apply(
            &avviso,
            "ets-valle-verde",
            "Consorzio Solidale Valle Verde",
            &[
                "Cooperativa Sociale Arcobaleno",
                "Associazione Auser Borgo Fiorito",
            ],
        )
        .await?;

    // A question on the modulistica, answered for everyone: a FAQ at the albo with the avviso
    // until its deadline, without naming who asked.
    demo.move_clock_to(at("2026-12-16T09:30:00+01:00")?).await?;
    let question = demo
        .service
        .store()
        .ask_question(&crate::store::NewQuestion {
            id: crate::store::new_row_id(demo.service.now()),
            instance_id: avviso.clone(),
            organisation_id: "ets-orizzonti".into(),
            person_id: "ets-orizzonti".into(),
            text: "Il cronoprogramma va allegato in un file separato dalla proposta?".into(),
            at: demo.clock.now(),
        })
        .await?;
    demo.move_clock_to(at("2026-12-17T11:00:00+01:00")?).await?;
    demo.service
        .store()
        .answer_question(
            &question.id,
            "Sì: un file PDF separato, firmato dal legale rappresentante.",
            true,
            "rup",
            demo.clock.now(),
        )
        .await?;
    println!(
        "  {}  [avviso] quesito di un ETS, risposta pubblicata (FAQ): all'albo con l'avviso fino alla scadenza",
        local(demo.clock.now())
    );

    println!("\n2) Proroga del termine prima della scadenza, pubblicata come l'avviso");
    demo.move_clock_to(at("2026-12-18T12:30:00+01:00")?).await?;
    demo.fire(
        &avviso,
        "proroga",
        "rup",
        json!({
            "nuova_scadenza": "2027-01-11T12:00:00+01:00",
            "atto_proroga": "determina n. 112 del 18/12/2026",
            "motivo_proroga": "richieste di chiarimento sulla modulistica"
        }),
    )
    .await?;
    demo.print_terms(&avviso).await?;

    println!("\n3) Convocazione dell'Assemblea dei Sindaci");
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
    demo.fire(&assemblea, "convoca", "ufficio_di_piano", json!({}))
        .await?;
    // Each comune answers for itself: Castelverde sends an assessore with a written delega.
    for (seat, person, answer, delegate) in [
        (
            "comune-borgo-fiorito",
            "sindaco-borgo-fiorito",
            Answer::Partecipa,
            None,
        ),
        (
            "comune-castelverde",
            "sindaco-castelverde",
            Answer::Delega,
            Some("Luisa Conti"),
        ),
        (
            "comune-san-lorenzo",
            "sindaco-san-lorenzo",
            Answer::NonPartecipa,
            None,
        ),
    ] {
        demo.record(&assemblea, person, "sindaco", |p, row, now| {
            meeting::rsvp(
                p,
                &row.snapshot(),
                seat,
                person,
                answer,
                delegate,
                delegate.map(|_| Capacity::Assessore),
                now,
            )
        })
        .await?;
    }

    demo.advance_to(at("2027-01-11T23:55:00+01:00")?).await?;
    println!(
        "\n4) Istruttoria: soccorso istruttorio per PEC a un solo ente; il termine decorre dalla consegna"
    );
    demo.fire_on(
        &avviso,
        &orizzonti,
        "richiedi_soccorso",
        "rup",
        json!({"documenti_mancanti": ["DURC in corso di validità", "Statuto aggiornato"]}),
    )
    .await?;
    println!(
        "        (il termine non è ancora calcolato: attende la ricevuta di avvenuta consegna)"
    );
    println!(
        "   Il gestore PEC dell'ente consegna dopo la mezzanotte: il termine decorre dal 12/01"
    );
    demo.move_clock_to(at("2027-01-12T00:10:00+01:00")?).await?;
    demo.print_terms(&avviso).await?;

    println!("\n5) La seduta è spostata: i promemoria ai sindaci sono ripianificati");
    demo.move_clock_to(at("2027-01-12T12:00:00+01:00")?).await?;
    demo.fire(
        &assemblea,
        "sposta",
        "ufficio_di_piano",
        json!({"data_seduta": "2027-01-21T17:00:00+01:00"}),
    )
    .await?;
    demo.print_terms(&assemblea).await?;

    println!(
        "\n6) L'ente risponde al soccorso; ammissione ed esclusione motivate per PEC, una per ente"
    );
    demo.move_clock_to(at("2027-01-15T16:40:00+01:00")?).await?;
    demo.answer_soccorso(&avviso, &orizzonti, "ets-orizzonti", &["DURC", "Statuto"])
        .await?;
    demo.move_clock_to(at("2027-01-18T10:00:00+01:00")?).await?;
    demo.fire_on(
        &avviso,
        &ponte,
        "decidi_ammissione",
        "rup",
        json!({"esito": "ammessa", "requisiti_verificati": true}),
    )
    .await?;
    demo.fire_on(
        &avviso,
        &orizzonti,
        "decidi_ammissione",
        "rup",
        json!({"esito": "ammessa", "requisiti_verificati": true}),
    )
    .await?;
    // A domanda is still undecided: the admission cannot be closed.
    demo.fire(&avviso, "ammetti", "rup", json!({})).await?;
    demo.fire_on(
        &avviso,
        &valle_verde,
        "decidi_ammissione",
        "rup",
        json!({
            "esito": "esclusa",
            "motivazione": "un componente del raggruppamento (Associazione Auser Borgo Fiorito) non risulta iscritto al RUNTS alla data di scadenza dell'avviso (art. 71 DPR 445/2000)"
        }),
    )
    .await?;
    println!(
        "   Il gestore di Orizzonti consegna dieci minuti dopo: il suo termine per il ricorso decorre da lì"
    );
    demo.move_clock_to(at("2027-01-18T10:15:00+01:00")?).await?;
    demo.print_terms(&avviso).await?;
    demo.fire(&avviso, "ammetti", "rup", json!({})).await?;

    println!("\n7) Seduta, valutazione e graduatoria: a ciascun ente il suo punteggio");
    demo.advance_to(at("2027-01-21T17:25:00+01:00")?).await?;
    // The register: a seat counts once; the Responsabile attends without a vote.
    for (seat, name, capacity, note) in [
        (
            Some("comune-borgo-fiorito"),
            "Anna Rossi",
            Capacity::Sindaco,
            None,
        ),
        (
            Some("comune-castelverde"),
            "Luisa Conti",
            Capacity::Assessore,
            None,
        ),
        (
            None,
            "Paolo Galli",
            Capacity::NonIndicata,
            Some("responsabile dell'Ufficio di Piano"),
        ),
    ] {
        let presence = Presence {
            seat: seat.map(String::from),
            name: name.into(),
            capacity,
            note: note.map(String::from),
            arrived: None,
            left: None,
        };
        demo.record(
            &assemblea,
            "ufficio_di_piano",
            "ufficio_di_piano",
            |p, row, now| meeting::arrive(p, &row.snapshot(), presence.clone(), now),
        )
        .await?;
    }
    demo.move_clock_to(at("2027-01-21T17:30:00+01:00")?).await?;
    demo.fire(&assemblea, "apri_seduta", "ufficio_di_piano", json!({}))
        .await?;
    // Two items voted by quota (Borgo Fiorito 52.4, Castelverde 31.1), the third postponed.
    for (item, castelverde) in [(0, Ballot::Favorevole), (1, Ballot::Contrario)] {
        let ballots: BTreeMap<String, Ballot> = [
            ("comune-borgo-fiorito".to_string(), Ballot::Favorevole),
            ("comune-castelverde".to_string(), castelverde),
        ]
        .into_iter()
        .collect();
        demo.record(
            &assemblea,
            "ufficio_di_piano",
            "ufficio_di_piano",
            |p, row, now| meeting::vote(p, &row.snapshot(), item, &ballots, None, now),
        )
        .await?;
    }
    demo.record(
        &assemblea,
        "ufficio_di_piano",
        "ufficio_di_piano",
        |p, row, now| meeting::postpone(p, &row.snapshot(), 2, now),
    )
    .await?;
    demo.print_meeting(&assemblea).await?;
    // The commissione, named after the deadline: each member declares before reading the
    // proposals; then scores per criterion with a motivazione; the totals are computed.
    let members = vec![
        NewMember {
            person_id: "commissione-bianchi".into(),
            name: "Anna Bianchi".into(),
            role: MemberRole::Presidente,
        },
        NewMember {
            person_id: "commissione-moretti".into(),
            name: "Marco Moretti".into(),
            role: MemberRole::Componente,
        },
    ];
    demo.evaluate(&avviso, "rup", |p, row, now| {
        evaluation::appoint(
            p,
            &row.snapshot(),
            &members,
            "determina n. 3 del 21/01/2027",
            now,
        )
    })
    .await?;
    for member in &members {
        demo.evaluate(&avviso, &member.person_id, |p, row, now| {
            evaluation::declare(
                p,
                &row.snapshot(),
                &member.person_id,
                false,
                false,
                None,
                now,
            )
        })
        .await?;
    }
    for (application, member, points) in [
        (&ponte, "commissione-bianchi", [18.0, 17.0, 26.0, 25.0]),
        (&ponte, "commissione-moretti", [17.0, 17.0, 26.0, 27.0]),
        (&orizzonti, "commissione-bianchi", [16.0, 15.0, 24.0, 22.0]),
        (&orizzonti, "commissione-moretti", [16.5, 15.0, 23.0, 24.0]),
    ] {
        let scores: Vec<ScoreInput> = [
            ("obiettivi", "obiettivi coerenti con il Piano di Zona"),
            (
                "metodologia",
                "organizzazione delle attività descritta con cronoprogramma",
            ),
            ("esperienza", "servizi analoghi gestiti nell'ambito"),
            (
                "risorse",
                "co-finanziamento e volontari messi a disposizione",
            ),
        ]
        .into_iter()
        .zip(points)
        .map(|((criterion, why), points)| ScoreInput {
            criterion: criterion.into(),
            points: rust_decimal::Decimal::try_from(points).unwrap_or_default(),
            motivazione: why.into(),
        })
        .collect();
        demo.evaluate(&avviso, member, |p, row, now| {
            evaluation::score(p, &row.snapshot(), application, member, &scores, now)
        })
        .await?;
    }
    let seduta = chrono::NaiveDate::from_ymd_opt(2027, 1, 21).unwrap_or_default();
    demo.evaluate(&avviso, "commissione-bianchi", |p, row, now| {
        evaluation::session(
            p,
            &row.snapshot(),
            seduta,
            "La seduta si chiude alle 19:00.",
            now,
        )
    })
    .await?;
    for application in [&ponte, &orizzonti] {
        demo.fire_on(&avviso, application, "valuta", "commissione", json!({}))
            .await?;
    }
    demo.fire(
        &assemblea,
        "chiudi_seduta",
        "ufficio_di_piano",
        json!({"verbalizzante": "Paolo Galli"}),
    )
    .await?;
    demo.move_clock_to(at("2027-01-25T10:00:00+01:00")?).await?;
    // The verbale, drafted from the register, is registered with its PDF/A copy; signed outside
    // procedo (PAdES), it is uploaded back: registered, it is what gets published.
    let dir = args
        .db_file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."))
        .to_path_buf();
    let Some((pdf_file, pdf)) = demo
        .save_pdfa(
            &assemblea,
            "verbale_seduta.pdf",
            dir.join("verbale-assemblea-2027-01-21.pdf"),
        )
        .await?
    else {
        anyhow::bail!("il verbale della seduta non è stato protocollato con la sua copia PDF/A");
    };
    println!(
        "  {}  [assemblea] verbale in PDF/A-1b da firmare: {} ({} byte)",
        local(demo.clock.now()),
        pdf_file.display(),
        pdf.len()
    );
    let signed = crate::protocollo::verbale::register_signed(
        &demo.protocollo,
        &demo.service,
        &assemblea,
        &Actor {
            id: "demo".into(),
            role: "ufficio_di_piano".into(),
        },
        "verbale-assemblea-2027-01-21.pdf",
        "application/pdf",
        pdf,
    )
    .await?;
    println!(
        "  {}  [assemblea] verbale caricato come firmato (nella demo la firma PAdES, apposta fuori da procedo, manca): protocollo interno n. {signed}",
        local(demo.clock.now())
    );
    demo.report().await?;
    demo.fire(&assemblea, "pubblica_verbale", "ufficio_di_piano", json!({"data_pubblicazione_verbale": "2027-01-25", "link_verbale": "https://ambito.example.it/albo/verbale-2027-01"})).await?;
    demo.print_terms(&assemblea).await?;
    demo.move_clock_to(at("2027-01-26T11:00:00+01:00")?).await?;
    demo.fire(
        &avviso,
        "approva_graduatoria",
        "rup",
        json!({"data_graduatoria": "2027-01-26", "numero_determina_graduatoria": "15"}),
    )
    .await?;
    demo.print_graduatoria(&avviso).await?;
    demo.print_terms(&avviso).await?;

    println!("\n8) La seduta successiva approva il verbale di quella del 21 gennaio");
    demo.move_clock_to(at("2027-01-27T09:00:00+01:00")?).await?;
    let febbraio = demo
        .start(
            "assemblea-febbraio",
            "convocazione_assemblea",
            json!({
                "organo": "Assemblea dei Sindaci",
                "ordine_del_giorno": ["Approvazione del verbale della seduta del 21/01/2027", "Piano di Zona 2025-2027: aggiornamento annuale (rinviato)"],
                "luogo": "Sala consiliare del Comune capofila",
                "data_seduta": "2027-02-11T17:00:00+01:00",
                "verbale_precedente": assemblea,
            }),
            "ufficio_di_piano",
        )
        .await?;
    demo.fire(&febbraio, "convoca", "ufficio_di_piano", json!({}))
        .await?;
    demo.advance_to(at("2027-02-11T16:55:00+01:00")?).await?;
    for (seat, name) in [
        ("comune-borgo-fiorito", "Anna Rossi"),
        ("comune-castelverde", "Marco Verdi"),
    ] {
        let presence = Presence {
            seat: Some(seat.into()),
            name: name.into(),
            capacity: Capacity::Sindaco,
            note: None,
            arrived: None,
            left: None,
        };
        demo.record(
            &febbraio,
            "ufficio_di_piano",
            "ufficio_di_piano",
            |p, row, now| meeting::arrive(p, &row.snapshot(), presence.clone(), now),
        )
        .await?;
    }
    demo.move_clock_to(at("2027-02-11T17:00:00+01:00")?).await?;
    demo.fire(&febbraio, "apri_seduta", "ufficio_di_piano", json!({}))
        .await?;
    let unanimous: BTreeMap<String, Ballot> = [
        ("comune-borgo-fiorito".to_string(), Ballot::Favorevole),
        ("comune-castelverde".to_string(), Ballot::Favorevole),
    ]
    .into_iter()
    .collect();
    demo.record(
        &febbraio,
        "ufficio_di_piano",
        "ufficio_di_piano",
        |p, row, now| meeting::vote(p, &row.snapshot(), 0, &unanimous, None, now),
    )
    .await?;
    demo.move_clock_to(at("2027-02-11T17:40:00+01:00")?).await?;
    demo.fire(
        &febbraio,
        "chiudi_seduta",
        "ufficio_di_piano",
        json!({"verbalizzante": "Paolo Galli", "verbale_approvato_in_seduta": true}),
    )
    .await?;
    demo.print_meeting(&assemblea).await?;
    demo.print_meeting(&assemblea).await?;

    println!("\n9) Accreditamento: il termine di conclusione scade con l'istruttoria aperta");
    demo.move_clock_to(at("2027-02-15T09:00:00+01:00")?).await?;
    let accreditamento = demo
        .start(
            "accreditamento",
            "accreditamento",
            json!({"ente": ["ets-il-ponte"], "data_domanda": "2027-02-15"}),
            "rup",
        )
        .await?;
    demo.print_terms(&accreditamento).await?;
    // Nobody decides in thirty days: the silenzio is recorded and the RUP and the titolare
    // del potere sostitutivo are told once; the late decision states the term and the days.
    demo.advance_to(at("2027-03-18T10:00:00+01:00")?).await?;
    demo.fire(
        &accreditamento,
        "accredita",
        "rup",
        json!({"data_accreditamento": "2027-03-18"}),
    )
    .await?;

    demo.advance_to(at("2027-04-01T09:00:00+02:00")?).await?;

    println!("\nStato finale");
    for (id, label) in &demo.names {
        let row = demo
            .service
            .store()
            .instance(id)
            .await?
            .context("istanza")?;
        let history = demo.service.store().history(id).await?;
        println!(
            "  [{label}] {} — {} eventi nello storico (procedo instance show {id} --database sqlite://{}?mode=rwc)",
            row.state,
            history.len(),
            args.db_file.display()
        );
    }
    // Accesso agli atti: the avviso's history for the office and for one ETS.
    let title = demo
        .service
        .procedure("avviso_coprogettazione", None)
        .await?
        .title
        .clone();
    let sources = crate::export::load(demo.service.store(), &avviso, title).await?;
    for (reader, name) in [
        (crate::export::Reader::Office, "storico-avviso"),
        (
            crate::export::Reader::ThirdParty {
                organisation_id: "ets-orizzonti",
            },
            "storico-avviso-ets-orizzonti",
        ),
    ] {
        let export = crate::export::build(&sources, reader, demo.clock.now());
        std::fs::write(
            dir.join(format!("{name}.json")),
            serde_json::to_string_pretty(&export)?,
        )?;
        std::fs::write(
            dir.join(format!("{name}.html")),
            crate::export::html(&export),
        )?;
        println!(
            "  accesso agli atti: {} (.json e .html), impronta SHA-256 {}",
            dir.join(name).display(),
            export["impronta"].as_str().unwrap_or_default()
        );
    }

    // The report of each procedure the demo ran, as staff read it.
    for (id, label) in demo.names.clone() {
        let report = crate::report::load(&demo.service, &id).await?;
        let file = dir.join(format!("rapporto-{label}.html"));
        std::fs::write(&file, crate::report::html(&report, demo.clock.now()))
            .with_context(|| file.display().to_string())?;
        println!("  rapporto della pratica [{label}]: {}", file.display());
    }

    // The albo online as a citizen saw it on 20/12/2026: the avviso in publication, with its
    // protocol number, its documents and their SHA-256, and the FAQ published.
    let day = chrono::NaiveDate::from_ymd_opt(2026, 12, 20).context("data")?;
    let acts = crate::albo::in_publication(&demo.service, day).await?;
    let file = dir.join("albo-2026-12-20.html");
    std::fs::write(
        &file,
        crate::albo::html("Ambito territoriale di Borgo Fiorito", day, &acts),
    )
    .with_context(|| file.display().to_string())?;
    println!("  albo online al 20/12/2026: {}", file.display());
    for act in &acts {
        println!(
            "    {} — {} (dal {} al {})",
            act.title,
            act.oggetto.as_deref().unwrap_or(&act.procedure),
            act.from.format("%d/%m/%Y"),
            act.until.format("%d/%m/%Y"),
        );
    }
    // On 28/01/2027: the graduatoria just approved and the Assemblea's deliberazioni, each in
    // its own window.
    let day = chrono::NaiveDate::from_ymd_opt(2027, 1, 28).context("data")?;
    let acts = crate::albo::in_publication(&demo.service, day).await?;
    let file = dir.join("albo-2027-01-28.html");
    std::fs::write(
        &file,
        crate::albo::html("Ambito territoriale di Borgo Fiorito", day, &acts),
    )
    .with_context(|| file.display().to_string())?;
    println!("  albo online al 28/01/2027: {}", file.display());
    let referti: Vec<_> = demo
        .service
        .store()
        .protocol_registrations(&crate::store::ProtocolFilter::default())
        .await?
        .into_iter()
        .filter(|r| r.subject.starts_with("Referto di pubblicazione"))
        .collect();
    for r in &referti {
        println!(
            "    protocollo interno n. {}/{}: {}",
            r.padded_number(),
            r.year,
            r.subject
        );
    }
    for act in &acts {
        println!(
            "    {} — {} (dal {} al {}){}",
            act.title,
            act.oggetto.as_deref().unwrap_or(&act.procedure),
            act.from.format("%d/%m/%Y"),
            act.until.format("%d/%m/%Y"),
            act.protocollo
                .as_ref()
                .map(|r| format!(", {}", r.label()))
                .unwrap_or_default(),
        );
        for doc in &act.documents {
            println!("      {} sha256 {}", doc.name, doc.sha256);
        }
    }
    // Every act went to the capofila's albo, the legally valid one.
    let mut handed = 0;
    for id in demo.names.keys() {
        handed += demo.service.store().albo_handovers(id).await?.len();
    }
    println!(
        "  atti consegnati all'albo dell'ente capofila: {handed}, in {}",
        demo_dir(&args).join("demo-albo-capofila").display()
    );

    // A mayor's calendar feed and an ETS referent's, as their calendar clients read them.
    for person_id in ["sindaco-borgo-fiorito", "ets-orizzonti"] {
        let Some(person) = demo.service.store().person(person_id).await? else {
            continue;
        };
        let events = crate::calendar::events(
            &demo.service,
            &person,
            "borgofiorito.example.it",
            demo.clock.now(),
        )
        .await?;
        let file = dir.join(format!("calendario-{person_id}.ics"));
        std::fs::write(
            &file,
            crate::notify::invite::feed_ics(
                &format!("procedo – {}", person.name),
                &events,
                demo.clock.now(),
            ),
        )
        .with_context(|| file.display().to_string())?;
        // The same events as the page the person opens from the link.
        let page = dir.join(format!("calendario-{person_id}.html"));
        std::fs::write(
            &page,
            crate::calendar::html(
                &person.name,
                &events,
                &format!("calendario-{person_id}.ics"),
                "",
                demo.clock.now(),
            ),
        )
        .with_context(|| page.display().to_string())?;
        println!(
            "  calendario di {} ({} eventi, come lo legge il suo client): {} (e come pagina: {})",
            person.name,
            events.len(),
            file.display(),
            page.display()
        );
    }

    println!("\nEsiti delle domande (ciascuno comunicato al suo ente soltanto)");
    let row = demo
        .service
        .store()
        .instance(&avviso)
        .await?
        .context("avviso")?;
    let procedure = demo
        .service
        .procedure(&row.definition_id, Some(row.definition_version))
        .await?;
    for (_, part) in crate::engine::scope::active(&row.data) {
        let state = procedure
            .participant
            .as_ref()
            .and_then(|d| d.states.get(part.state.as_str()))
            .map_or(part.state.as_str(), |s| s.title.as_str());
        let score = part
            .variables
            .get("punteggio")
            .filter(|v| !v.is_null())
            .map(|v| format!(", punteggio {v}"))
            .unwrap_or_default();
        let challenge = ["termine_ricorso_graduatoria", "termine_ricorso"]
            .iter()
            .find_map(|name| part.terms.get(*name))
            .map(|t| format!(", ricorso entro il {}", t.expiry.format("%d/%m/%Y")))
            .or_else(|| {
                part.consegne
                    .values()
                    .find(|c| !c.delivered() && c.status != crate::engine::consegna::PENDING)
                    .map(|c| {
                        format!(
                            ", PEC dell'esito {}: termine per il ricorso non iniziato",
                            c.status.replace('_', " ")
                        )
                    })
            })
            .unwrap_or_default();
        println!("  {} — {state}{score}{challenge}", part.name);
    }

    println!("\nProtocollo");
    let days = demo.protocollo.daily_registers().await?;
    let registrations = demo
        .service
        .store()
        .protocol_registrations(&crate::store::ProtocolFilter::default())
        .await?;
    println!(
        "  {} registrazioni (procedo protocollo list --database sqlite://{}?mode=rwc); segnatura XML delle uscite con destinatari e documento: procedo protocollo segnatura NUMERO/ANNO",
        registrations.len(),
        args.db_file.display()
    );
    let produced = demo.service.store().daily_registers().await?;
    if let (Some(first), Some(last)) = (produced.first(), produced.last()) {
        println!(
            "  registri giornalieri dal {} al {} ({} giorni{}), consegnati alla conservazione in {}",
            first.day.format("%d/%m/%Y"),
            last.day.format("%d/%m/%Y"),
            produced.len(),
            if days.is_empty() {
                String::new()
            } else {
                format!(", {} prodotti ora", days.len())
            },
            demo_dir(&args).join("demo-conservazione").display()
        );
    }
    let report = demo.protocollo.verify().await?;
    println!(
        "  verifica (procedo protocollo verify): {} — {} righe della catena, {} file",
        if report.is_clean() {
            "registro integro"
        } else {
            "PROBLEMI"
        },
        report.rows,
        report.files
    );
    for problem in &report.problems {
        println!("    {problem}");
    }

    let store = demo.service.store();
    let count = |status| async move {
        store
            .deliveries(&DeliveryFilter {
                status: Some(status),
                ..DeliveryFilter::default()
            })
            .await
            .map(|rows| rows.len())
    };
    let (sent, held, failed) = (
        count(DeliveryStatus::Sent).await?,
        count(DeliveryStatus::Held).await?,
        count(DeliveryStatus::Failed).await?,
    );
    println!(
        "\nEmail: {sent} scritte in {} (file .eml){}{} — elenco: procedo mail deliveries --database sqlite://{}?mode=rwc",
        args.mail_dir.display(),
        if held > 0 {
            format!(", {held} in attesa del prossimo riepilogo")
        } else {
            String::new()
        },
        if failed > 0 {
            format!(", {failed} non consegnate")
        } else {
            String::new()
        },
        args.db_file.display()
    );
    Ok(())
}

/// The demo's protocol register: procedo's own, with the Ambito's codes, files and
/// conservation folder beside the demo's mail folder.
fn demo_protocollo(
    service: &Service,
    args: &DemoArgs,
) -> anyhow::Result<crate::protocollo::Protocollo> {
    let base = demo_dir(args);
    for dir in ["demo-files", "demo-conservazione", "demo-albo-capofila"] {
        let dir = base.join(dir);
        if dir.exists() {
            std::fs::remove_dir_all(&dir)
                .with_context(|| format!("rimozione di {}", dir.display()))?;
        }
    }
    let mut settings = crate::protocollo::Settings::local("Ambito territoriale di Borgo Fiorito");
    settings.aoo.codice_amministrazione = "ats_bf".into();
    settings.aoo.codice_aoo = "udp_bf".into();
    settings.aoo.codice_fiscale = "91012340123".into();
    settings.aoo.email = Some("ufficiodipiano@pec.borgofiorito.example.it".into());
    settings.files_dir = base.join("demo-files");
    settings.conservation_dir = base.join("demo-conservazione");
    settings.albo_dir = base.join("demo-albo-capofila");
    Ok(crate::protocollo::Protocollo::new(
        service.clone(),
        &settings,
    )?)
}

/// The folder beside the demo's mail folder (`out/`).
fn demo_dir(args: &DemoArgs) -> PathBuf {
    args.mail_dir
        .parent()
        .map_or_else(|| PathBuf::from("out"), std::path::Path::to_path_buf)
}

/// The people who receive the demo's emails: three mayors (one prefers the daily digest), two
/// ETS contacts and the RUP, each in their organisation.
async fn register_people(store: &Store, now: DateTime<Utc>) -> anyhow::Result<()> {
    let organisations = [
        (
            "ambito-borgo-fiorito",
            "Ambito territoriale di Borgo Fiorito",
            OrganisationKind::Ambito,
            "91012340123",
        ),
        (
            "comune-borgo-fiorito",
            "Comune di Borgo Fiorito",
            OrganisationKind::Comune,
            "00123450123",
        ),
        (
            "comune-castelverde",
            "Comune di Castelverde",
            OrganisationKind::Comune,
            "00234560234",
        ),
        (
            "comune-san-lorenzo",
            "Comune di San Lorenzo al Lago",
            OrganisationKind::Comune,
            "00345670345",
        ),
        (
            "ets-il-ponte",
            "Cooperativa Sociale Il Ponte",
            OrganisationKind::Ets,
            "02456780456",
        ),
        (
            "ets-orizzonti",
            "Associazione Orizzonti APS",
            OrganisationKind::Ets,
            "93567890567",
        ),
        (
            "ets-valle-verde",
            "Consorzio Solidale Valle Verde",
            OrganisationKind::Ets,
            "03678900678",
        ),
    ];
    for (id, name, kind, codice_fiscale) in organisations {
        // The ETS have a domicilio digitale: the acts that start their terms go there by PEC.
        let pec = match id {
            "ambito-borgo-fiorito" => Some(DEMO_PEC),
            "ets-il-ponte" => Some("ilponte@pec.ilponte.example.it"),
            "ets-orizzonti" => Some("orizzonti@pec.orizzonti.example.it"),
            "ets-valle-verde" => Some("valleverde@pec.valleverde.example.it"),
            _ => None,
        };
        store
            .add_organisation(&NewOrganisation {
                id: id.into(),
                name: name.into(),
                kind,
                codice_fiscale: Some(codice_fiscale.into()),
                runts: None,
                pec: pec.map(str::to_owned),
                at: now,
            })
            .await?;
    }
    let people = [
        (
            "sindaco-borgo-fiorito",
            "Anna Rossi",
            "sindaco@comune.borgofiorito.example.it",
            "comune-borgo-fiorito",
            "sindaco",
            "immediato",
        ),
        (
            "sindaco-castelverde",
            "Marco Bianchi",
            "sindaco@comune.castelverde.example.it",
            "comune-castelverde",
            "sindaco",
            "giornaliero",
        ),
        (
            "sindaco-san-lorenzo",
            "Giulia Esposito",
            "sindaco@comune.sanlorenzoallago.example.it",
            "comune-san-lorenzo",
            "sindaco",
            "immediato",
        ),
        (
            "ets-il-ponte",
            "Luca Ferri",
            "progetti@ilponte.example.org",
            "ets-il-ponte",
            "ets",
            "immediato",
        ),
        (
            "ets-orizzonti",
            "Sara Conti",
            "segreteria@orizzonti.example.org",
            "ets-orizzonti",
            "ets",
            "immediato",
        ),
        (
            "ets-valle-verde",
            "Elena Marchetti",
            "bandi@valleverde.example.org",
            "ets-valle-verde",
            "ets",
            "immediato",
        ),
        (
            "commissione-bianchi",
            "Anna Bianchi",
            "a.bianchi@borgofiorito.example.it",
            "ambito-borgo-fiorito",
            "commissione",
            "immediato",
        ),
        (
            "commissione-moretti",
            "Marco Moretti",
            "m.moretti@borgofiorito.example.it",
            "ambito-borgo-fiorito",
            "commissione",
            "immediato",
        ),
        (
            "rup",
            "Paolo Galli",
            "rup@borgofiorito.example.it",
            "ambito-borgo-fiorito",
            "rup",
            "immediato",
        ),
        (
            "segretario",
            "Carla Monti",
            "segretario@borgofiorito.example.it",
            "ambito-borgo-fiorito",
            "potere_sostitutivo",
            "immediato",
        ),
    ];
    for (id, name, email, organisation, role, digest) in people {
        let person = NewPerson {
            id: id.into(),
            name: name.into(),
            email: email.into(),
            organisation_id: organisation.into(),
            roles: vec![role.into()],
            digest: digest.into(),
            at: now,
        };
        store.add_person(&person).await?;
    }
    Ok(())
}

/// Removes the `.eml` files of a previous run (the folder is the demo's, like its database).
fn clear_mail_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|extension| extension == "eml") {
            std::fs::remove_file(&path)
                .with_context(|| format!("rimozione di {}", path.display()))?;
        }
    }
    Ok(())
}
