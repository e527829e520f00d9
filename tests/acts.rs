//! End to end through the service, on SQLite and PostgreSQL, with a manual clock: the acts
//! that move a term (proroga before it expires, riapertura after), the suspension of the
//! term of conclusion by a preavviso di rigetto (art. 10-bis L. 241/1990), and a
//! co-programmazione that awaits its tavolo and receives the verbale.

mod common;

use common::apply;

use std::sync::Arc;

use chrono::{DateTime, Days, Duration, NaiveDate, Utc};
use procedo::clock::ManualClock;
use procedo::definition::ExtensionKind;
use procedo::engine::{self, Actor, Command, Effect, ParentLink, SuspensionRecord};
use procedo::scheduler::{Dispatch, Options, Outcome, ResumeParent, Scheduler};
use procedo::service::{self, Service};
use procedo::store::{self, OutboxStatus};
use serde_json::{Map, Value, json};

fn catalog() -> procedo::catalog::Catalog {
    common::shipped_catalog()
}

fn rup() -> Actor {
    Actor {
        id: "maria.rossi".into(),
        role: "rup".into(),
    }
}

fn cmd(event: &str, payload: Value) -> Command {
    as_actor(rup(), event, payload)
}

fn as_actor(actor: Actor, event: &str, payload: Value) -> Command {
    Command {
        event: event.into(),
        actor,
        payload: payload.as_object().cloned().unwrap_or_default(),
        participant: None,
    }
}

fn on(participant: &str, event: &str, payload: Value) -> Command {
    Command {
        participant: Some(participant.into()),
        ..cmd(event, payload)
    }
}

fn vars(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

fn day(text: &str) -> NaiveDate {
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .unwrap_or_else(|e| panic!("data di test '{text}' non valida: {e}"))
}

async fn instance(service: &Service, id: &str) -> store::InstanceRow {
    service
        .store()
        .instance(id)
        .await
        .expect("read")
        .expect("exists")
}

/// The armed (pending or claimed) timers of an instance, as (key, instant), by key.
async fn armed(service: &Service, id: &str) -> Vec<(String, DateTime<Utc>)> {
    let mut timers: Vec<(String, DateTime<Utc>)> = service
        .store()
        .timers_between(
            common::at("2000-01-01T00:00:00Z"),
            common::at("2100-01-01T00:00:00Z"),
            Some(id),
        )
        .await
        .expect("timers")
        .into_iter()
        .map(|t| (t.key, t.fire_at))
        .collect();
    timers.sort();
    timers
}

fn timers(expected: &[(&str, &str)]) -> Vec<(String, DateTime<Utc>)> {
    let mut out: Vec<(String, DateTime<Utc>)> = expected
        .iter()
        .map(|(key, at)| ((*key).to_string(), common::at(at)))
        .collect();
    out.sort();
    out
}

/// The outbox rows a step of an instance queued.
async fn step_rows(service: &Service, id: &str, seq: i64) -> Vec<store::OutboxRow> {
    service
        .store()
        .outbox_rows(None)
        .await
        .expect("outbox")
        .into_iter()
        .filter(|r| r.instance_id.as_deref() == Some(id) && r.step_seq == Some(seq))
        .collect()
}

fn scheduler(service: &Service) -> Scheduler {
    Scheduler::new(
        service.clone(),
        Options {
            worker_id: "acts".into(),
            batch_size: 50,
            lease: Duration::seconds(30),
            ..Options::default()
        },
    )
    .expect("scheduler")
}

/// Ticks until nothing is due; returns how much was handled. Fails if it never settles.
async fn settle(scheduler: &Scheduler) -> usize {
    let mut handled = 0;
    for _ in 0..1_000 {
        match scheduler.tick().await.expect("tick") {
            Outcome::Progressed(n) => handled += n,
            Outcome::Idle => return handled,
        }
    }
    panic!("the scheduler never became idle");
}

#[tokio::test]
async fn a_proroga_moves_the_deadline_with_its_act_and_a_riapertura_is_needed_after_it() {
    for (backend, store, _scratch) in common::scratch_stores().await {
        let clock = ManualClock::new(common::at("2026-11-26T09:00:00+01:00"));
        let service = Service::new(store, Arc::new(clock.clone()));
        service.install(&catalog()).await.expect("install");
        let id = service
            .start(
                "avviso_coprogettazione",
                None,
                vars(json!({"oggetto": "Servizi per la disabilità"})),
                &rup(),
                None,
            )
            .await
            .expect("start")
            .instance
            .id;
        service
            .fire(
                &id,
                &cmd("pubblica", json!({"data_pubblicazione": "2026-11-27", "atto_criteri": "determina n. 12 del 26/11/2026"})),
                None,
            )
            .await
            .expect("pubblica");
        let row = instance(&service, &id).await;
        assert_eq!(
            row.data.variables["scadenza_domande"],
            json!("2026-12-28T12:00:00+01:00"),
            "{backend}"
        );
        // The deadline and its reminders, 7 and 1 days before at the same time of day.
        assert_eq!(
            armed(&service, &id).await,
            timers(&[
                ("scadenza_domande", "2026-12-28T12:00:00+01:00"),
                ("scadenza_domande#promemoria-1", "2026-12-21T12:00:00+01:00"),
                ("scadenza_domande#promemoria-2", "2026-12-27T12:00:00+01:00"),
            ]),
            "{backend}: timers after the publication"
        );

        clock.set(common::at("2026-12-10T10:00:00+01:00"));
        let first = apply(&service, &id, "ets-1").await;

        // Before the deadline: a proroga, with its act.
        clock.set(common::at("2026-12-20T10:00:00+01:00"));
        let prorogato = service
            .fire(
                &id,
                &cmd(
                    "proroga",
                    json!({
                        "nuova_scadenza": "2027-01-15T12:00:00+01:00",
                        "atto_proroga": "determina n. 45 del 20/12/2026",
                        "motivo_proroga": "richieste di chiarimento"
                    }),
                ),
                None,
            )
            .await
            .expect("proroga");
        let row = prorogato.instance.clone();
        assert_eq!(row.state, "pubblicato", "{backend}");
        assert_eq!(
            row.data.variables["scadenza_domande"],
            json!("2027-01-15T12:00:00+01:00"),
            "{backend}: the variable is the new deadline"
        );
        let term = &row.data.terms["scadenza_domande"];
        assert_eq!(
            term.deadline, "2027-01-15T12:00:00+01:00",
            "{backend}: {term:?}"
        );
        assert_eq!(term.expiry, day("2027-01-15"), "{backend}: {term:?}");
        assert!(
            term.trace
                .iter()
                .any(|l| l.contains("prorogato") && l.contains("determina n. 45")),
            "{backend}: the trace names the act: {:#?}",
            term.trace
        );
        let extensions = &row.data.extensions["scadenza_domande"];
        assert_eq!(extensions.len(), 1, "{backend}: {extensions:?}");
        let ext = &extensions[0];
        assert_eq!(ext.kind, ExtensionKind::Proroga, "{backend}");
        assert_eq!(
            ext.previous,
            json!("2026-12-28T12:00:00+01:00"),
            "{backend}"
        );
        assert_eq!(ext.new, json!("2027-01-15T12:00:00+01:00"), "{backend}");
        assert_eq!(ext.act, "determina n. 45 del 20/12/2026", "{backend}");
        assert_eq!(
            ext.reason.as_deref(),
            Some("richieste di chiarimento"),
            "{backend}"
        );
        assert_eq!(ext.at, common::at("2026-12-20T10:00:00+01:00"), "{backend}");
        // The timers follow the new deadline.
        assert_eq!(
            armed(&service, &id).await,
            timers(&[
                ("scadenza_domande", "2027-01-15T12:00:00+01:00"),
                ("scadenza_domande#promemoria-1", "2027-01-08T12:00:00+01:00"),
                ("scadenza_domande#promemoria-2", "2027-01-14T12:00:00+01:00"),
            ]),
            "{backend}: timers re-planned on the proroga"
        );
        assert_eq!(
            armed(&service, &id).await[0].1,
            common::at("2027-01-15T11:00:00Z"),
            "{backend}"
        );
        // Published like the avviso, and registered in the protocollo; the avviso itself is
        // not announced again.
        let rows = step_rows(&service, &id, prorogato.committed.seq).await;
        assert!(
            rows.iter().any(|r| r.kind == "notify"
                && matches!(&r.payload, Effect::Notify(plan)
                    if plan.template == "proroga_termini" && plan.public)),
            "{backend}: a public proroga_termini notice: {rows:#?}"
        );
        assert!(
            rows.iter()
                .any(|r| r.kind == "protocollo"
                    && matches!(r.payload, Effect::RegisterProtocol { .. })),
            "{backend}: a protocollo registration: {rows:#?}"
        );
        assert!(
            !rows
                .iter()
                .any(|r| matches!(&r.payload, Effect::Notify(plan)
                if plan.template == "avviso_pubblicato")),
            "{backend}: the proroga does not re-announce the avviso: {rows:#?}"
        );

        // A proroga to a date earlier than the current deadline is refused.
        clock.set(common::at("2027-01-05T10:00:00+01:00"));
        let version = instance(&service, &id).await.version;
        let earlier = service
            .fire(
                &id,
                &cmd(
                    "proroga",
                    json!({
                        "nuova_scadenza": "2027-01-10T12:00:00+01:00",
                        "atto_proroga": "determina n. 1 del 05/01/2027"
                    }),
                ),
                None,
            )
            .await
            .unwrap_err();
        assert!(
            matches!(
                earlier,
                service::Error::Engine(engine::Error::ExtensionNotLater { .. })
            ),
            "{backend}: {earlier}"
        );
        assert_eq!(
            instance(&service, &id).await.version,
            version,
            "{backend}: a refusal changes nothing"
        );

        // Between the old and the new deadline an ETS may still apply: the window the API
        // checks reads the deadline variable, which is now the prorogued one.
        let row = instance(&service, &id).await;
        let deadline = DateTime::parse_from_rfc3339(
            row.data.variables["scadenza_domande"]
                .as_str()
                .expect("text"),
        )
        .expect("rfc3339");
        assert!(
            service.now() > common::at("2026-12-28T12:00:00+01:00") && service.now() <= deadline,
            "{backend}: now is after the old deadline and within the new one"
        );
        let second = apply(&service, &id, "ets-2").await;
        let row = instance(&service, &id).await;
        assert_eq!(row.state, "pubblicato", "{backend}");
        assert!(
            row.data.participants.contains_key(&first)
                && row.data.participants.contains_key(&second),
            "{backend}: both ETS take part: {:?}",
            row.data.participants.keys()
        );
        assert_eq!(
            row.data.participants[&second].state, "ricevuta",
            "{backend}"
        );

        // After the new deadline (its timer not fired yet) a proroga is too late: a
        // riapertura is needed, with a distinct act.
        clock.set(common::at("2027-01-15T12:00:01+01:00"));
        let late = service
            .fire(
                &id,
                &cmd(
                    "proroga",
                    json!({
                        "nuova_scadenza": "2027-02-01T12:00:00+01:00",
                        "atto_proroga": "determina n. 2 del 15/01/2027"
                    }),
                ),
                None,
            )
            .await
            .unwrap_err();
        assert!(
            matches!(
                late,
                service::Error::Engine(engine::Error::ExtensionTooLate { .. })
            ),
            "{backend}: {late}"
        );
        assert!(
            late.to_string().contains("riapertura"),
            "{backend}: the refusal says a riapertura is needed: {late}"
        );
        assert_eq!(
            instance(&service, &id).await.version,
            version + 1,
            "{backend}: only the application moved the instance"
        );

        let closed = service
            .fire(&id, &cmd("chiudi_domande", json!({})), None)
            .await
            .expect("chiudi_domande");
        assert_eq!(closed.instance.state, "istruttoria", "{backend}");
        assert_eq!(closed.instance.data.participants.len(), 2, "{backend}");

        // In istruttoria too the term has expired: still no proroga.
        let late = service
            .fire(
                &id,
                &cmd(
                    "proroga",
                    json!({
                        "nuova_scadenza": "2027-02-01T12:00:00+01:00",
                        "atto_proroga": "determina n. 2 del 15/01/2027"
                    }),
                ),
                None,
            )
            .await
            .unwrap_err();
        assert!(
            matches!(
                late,
                service::Error::Engine(engine::Error::ExtensionTooLate { .. })
            ),
            "{backend}: {late}"
        );

        let reopened = service
            .fire(
                &id,
                &cmd(
                    "riapri_termini",
                    json!({
                        "nuova_scadenza": "2027-02-01T12:00:00+01:00",
                        "atto_proroga": "determina n. 3 del 15/01/2027",
                        "motivo_proroga": "domande insufficienti"
                    }),
                ),
                None,
            )
            .await
            .expect("riapri_termini");
        let row = reopened.instance;
        assert_eq!(row.state, "riaperto", "{backend}");
        assert_eq!(
            row.data.variables["scadenza_domande"],
            json!("2027-02-01T12:00:00+01:00"),
            "{backend}"
        );
        let trace = &row.data.terms["scadenza_domande"].trace;
        assert!(
            trace
                .iter()
                .any(|l| l.contains("riaperto") && l.contains("determina n. 3")),
            "{backend}: {trace:#?}"
        );
        let extensions = &row.data.extensions["scadenza_domande"];
        assert_eq!(
            extensions.iter().map(|e| e.kind).collect::<Vec<_>>(),
            vec![ExtensionKind::Proroga, ExtensionKind::Riapertura],
            "{backend}"
        );
        assert_eq!(
            extensions[1].previous,
            json!("2027-01-15T12:00:00+01:00"),
            "{backend}"
        );
        assert_eq!(
            armed(&service, &id).await,
            timers(&[
                ("scadenza_domande", "2027-02-01T12:00:00+01:00"),
                ("scadenza_domande#promemoria-1", "2027-01-25T12:00:00+01:00"),
                ("scadenza_domande#promemoria-2", "2027-01-31T12:00:00+01:00"),
            ]),
            "{backend}: timers re-armed on the riapertura"
        );
    }
}

#[tokio::test]
async fn observations_on_day_four_resume_the_suspended_term_on_day_fourteen() {
    for (backend, store, _scratch) in common::scratch_stores().await {
        let clock = ManualClock::new(common::at("2027-01-04T09:00:00+01:00"));
        let service = Service::new(store, Arc::new(clock.clone()));
        service.install(&catalog()).await.expect("install");
        let start = |ente: &'static str| {
            let service = service.clone();
            async move {
                service
                    .start(
                        "accreditamento",
                        None,
                        vars(json!({"ente": [ente], "data_domanda": "2027-01-04"})),
                        &rup(),
                        None,
                    )
                    .await
                    .expect("start")
                    .instance
            }
        };
        // One instance where the ETS answers, one where the ten days lapse.
        let answered = start("ets-x").await;
        let lapsed = start("ets-y").await;
        let thirty_days = day("2027-02-03");
        for row in [&answered, &lapsed] {
            assert_eq!(row.state, "istruttoria", "{backend}");
            assert_eq!(
                row.data.variables["termine_conclusione"],
                json!("2027-02-03"),
                "{backend}: 30 days from 04/01/2027"
            );
        }
        // `conclusione` fires no event: its reminder, 5 days before, and at its end the
        // alert of a term passed with the procedure open (`expired:`).
        assert_eq!(
            armed(&service, &answered.id).await,
            timers(&[
                ("conclusione#promemoria-1", "2027-01-29T09:00:00+01:00"),
                ("conclusione#scaduto", "2027-02-04T00:00:00+01:00"),
            ]),
            "{backend}"
        );

        clock.set(common::at("2027-01-11T10:00:00+01:00"));
        for row in [&answered, &lapsed] {
            let outcome = service
                .fire(
                    &row.id,
                    &cmd(
                        "preavviso_rigetto",
                        json!({"motivi_ostativi": "manca la sede operativa nell'ambito"}),
                    ),
                    None,
                )
                .await
                .expect("preavviso_rigetto");
            let row = outcome.instance;
            assert_eq!(row.state, "preavviso_rigetto", "{backend}");
            assert_eq!(
                row.data.variables["data_preavviso"],
                json!("2027-01-11"),
                "{backend}"
            );
            assert_eq!(
                row.data.variables["termine_osservazioni"],
                json!("2027-01-21"),
                "{backend}: ten days from the preavviso"
            );
            assert_eq!(
                row.data.suspensions["termine_conclusione"],
                vec![SuspensionRecord {
                    from: day("2027-01-11"),
                    until: None,
                }],
                "{backend}"
            );
            // While the term is suspended its timer and reminder are not armed; the ten
            // days for the observations run, to the end of their last day.
            assert_eq!(
                armed(&service, &row.id).await,
                timers(&[("osservazioni", "2027-01-22T00:00:00+01:00")]),
                "{backend}: no conclusione timer while suspended"
            );
        }

        // Day 4: the ETS sends its observations.
        clock.set(common::at("2027-01-15T16:00:00+01:00"));
        let ets = Actor {
            id: "ref".into(),
            role: "ets".into(),
        };
        let observed = service
            .fire(
                &answered.id,
                &as_actor(
                    ets,
                    "osservazioni",
                    json!({"osservazioni": "la sede operativa è in via Roma 1, allegato il contratto"}),
                ),
                None,
            )
            .await
            .expect("osservazioni");
        let row = observed.instance;
        assert_eq!(row.state, "esame_osservazioni", "{backend}");
        assert_eq!(
            row.data.variables["data_osservazioni"],
            json!("2027-01-15"),
            "{backend}"
        );
        assert_eq!(
            row.data.variables["ripresa_termine"],
            json!("2027-01-25"),
            "{backend}: ten days after the observations, day 14 from the preavviso"
        );
        assert_eq!(
            day("2027-01-11") + Days::new(14),
            day("2027-01-25"),
            "day 14"
        );
        assert_eq!(
            row.data.suspensions["termine_conclusione"],
            vec![SuspensionRecord {
                from: day("2027-01-11"),
                until: Some(day("2027-01-25")),
            }],
            "{backend}"
        );
        // The clock stood still from 11/01 to 24/01 (both included): 14 days; it runs again
        // on 25/01. 03/02/2027 + 14 days = 17/02/2027 (a Wednesday, a working day).
        let stopped = (day("2027-01-25") - day("2027-01-11")).num_days();
        assert_eq!(stopped, 14);
        let expected = thirty_days + Days::new(14);
        assert_eq!(expected, day("2027-02-17"));
        assert_eq!(
            row.data.variables["termine_conclusione"],
            json!(expected.format("%Y-%m-%d").to_string()),
            "{backend}: the term of conclusion is extended by the 14 suspended days"
        );
        let trace = &row.data.terms["termine_conclusione"].trace;
        assert!(
            trace.iter().any(|l| l.contains("sospensione")
                && l.contains("11/01/2027")
                && l.contains("di 14")),
            "{backend}: the trace shows the suspension: {trace:#?}"
        );
        assert_eq!(
            armed(&service, &answered.id).await,
            timers(&[
                ("conclusione#promemoria-1", "2027-02-12T09:00:00+01:00"),
                ("conclusione#scaduto", "2027-02-18T00:00:00+01:00"),
            ]),
            "{backend}: the conclusione reminder is re-armed 5 days before the extended term"
        );

        // A rejection after observations must say why they were not accepted.
        clock.set(common::at("2027-01-18T10:00:00+01:00"));
        let version = instance(&service, &answered.id).await.version;
        let refused = service
            .fire(
                &answered.id,
                &cmd(
                    "respingi",
                    json!({"motivazione": "requisiti non posseduti"}),
                ),
                None,
            )
            .await
            .unwrap_err();
        match &refused {
            service::Error::Engine(engine::Error::GuardFailed { message, .. }) => {
                assert!(message.contains("osservazioni"), "{backend}: {message}")
            }
            other => panic!("{backend}: expected GuardFailed, got {other}"),
        }
        assert_eq!(
            instance(&service, &answered.id).await.version,
            version,
            "{backend}"
        );
        let rejected = service
            .fire(
                &answered.id,
                &cmd(
                    "respingi",
                    json!({
                        "motivazione": "requisiti non posseduti",
                        "motivi_mancato_accoglimento": "il contratto allegato riguarda un'altra sede"
                    }),
                ),
                None,
            )
            .await
            .expect("respingi");
        assert_eq!(rejected.instance.state, "respinto", "{backend}");
        assert!(rejected.instance.is_final, "{backend}");

        // The other instance: no observations; the timer fires at the end of the tenth day.
        clock.set(common::at("2027-01-22T00:00:01+01:00"));
        let scheduler = scheduler(&service);
        settle(&scheduler).await;
        let row = instance(&service, &lapsed.id).await;
        assert_eq!(row.state, "esame_osservazioni", "{backend}");
        let last = service
            .store()
            .history(&lapsed.id)
            .await
            .expect("history")
            .pop()
            .expect("rows");
        assert_eq!(last.event, "osservazioni_non_pervenute", "{backend}");
        assert_eq!(last.actor.role, "system", "{backend}");
        assert!(
            !row.data.variables.contains_key("data_osservazioni")
                || row.data.variables["data_osservazioni"].is_null(),
            "{backend}"
        );
        // The ETS had the whole tenth day (21/01): the term runs again the day after.
        assert_eq!(
            row.data.variables["ripresa_senza_osservazioni"],
            json!("2027-01-22"),
            "{backend}"
        );
        assert_eq!(
            row.data.suspensions["termine_conclusione"],
            vec![SuspensionRecord {
                from: day("2027-01-11"),
                until: Some(day("2027-01-22")),
            }],
            "{backend}: the term runs again the day after the ten days lapse"
        );
        // Stopped from 11/01 to 21/01: 11 days. 03/02/2027 + 11 = 14/02/2027, a Sunday: the
        // term moves to Monday 15/02/2027.
        let expected = thirty_days + Days::new(11);
        assert_eq!(expected, day("2027-02-14"));
        assert_eq!(
            row.data.variables["termine_conclusione"],
            json!("2027-02-15"),
            "{backend}: extended by the 11 suspended days, off the Sunday"
        );
        let trace = &row.data.terms["termine_conclusione"].trace;
        assert!(
            trace.iter().any(|l| l.contains("sospensione")
                && l.contains("11/01/2027")
                && l.contains("di 11")),
            "{backend}: {trace:#?}"
        );
        assert_eq!(
            armed(&service, &lapsed.id).await,
            timers(&[
                ("conclusione#promemoria-1", "2027-02-10T09:00:00+01:00"),
                ("conclusione#scaduto", "2027-02-16T00:00:00+01:00"),
            ]),
            "{backend}"
        );
        assert!(
            armed(&service, &answered.id).await.is_empty(),
            "{backend}: a rejected instance keeps no timer"
        );
    }
}

#[tokio::test]
async fn a_coprogrammazione_awaits_its_tavolo_and_takes_the_verbale() {
    for (backend, store, _scratch) in common::scratch_stores().await {
        let clock = ManualClock::new(common::at("2026-12-01T09:00:00+01:00"));
        let service = Service::new(store, Arc::new(clock.clone()));
        service.install(&catalog()).await.expect("install");
        let parent = service
            .start(
                "coprogrammazione",
                None,
                vars(json!({"oggetto": "Politiche giovanili"})),
                &rup(),
                None,
            )
            .await
            .expect("start")
            .instance
            .id;
        service
            .fire(
                &parent,
                &cmd(
                    "pubblica",
                    json!({"data_pubblicazione": "2026-12-01", "data_avvio": "2026-12-01"}),
                ),
                None,
            )
            .await
            .expect("pubblica");
        assert_eq!(
            instance(&service, &parent).await.data.variables["scadenza_domande"],
            json!("2026-12-21T12:00:00+01:00"),
            "{backend}"
        );

        clock.set(common::at("2026-12-10T10:00:00+01:00"));
        let admitted = apply(&service, &parent, "ets-a").await;
        let excluded = apply(&service, &parent, "ets-b").await;

        clock.set(common::at("2026-12-21T12:00:01+01:00"));
        let closed = service
            .fire(&parent, &cmd("chiudi_adesioni", json!({})), None)
            .await
            .expect("chiudi_adesioni");
        assert_eq!(closed.instance.state, "verifica_adesioni", "{backend}");

        service
            .fire(
                &parent,
                &on(&admitted, "decidi_adesione", json!({"esito": "ammessa"})),
                None,
            )
            .await
            .expect("ammessa");
        let missing = service
            .fire(
                &parent,
                &on(
                    &excluded,
                    "decidi_adesione",
                    json!({"esito": "non_ammessa"}),
                ),
                None,
            )
            .await
            .unwrap_err();
        assert!(
            matches!(
                &missing,
                service::Error::Engine(engine::Error::MissingInput { field }) if field == "motivazione"
            ),
            "{backend}: {missing}"
        );
        service
            .fire(
                &parent,
                &on(
                    &excluded,
                    "decidi_adesione",
                    json!({"esito": "non_ammessa", "motivazione": "fuori ambito"}),
                ),
                None,
            )
            .await
            .expect("non ammessa");
        let row = instance(&service, &parent).await;
        assert_eq!(
            row.data.participants[&admitted].state, "ammessa",
            "{backend}"
        );
        assert_eq!(
            row.data.participants[&excluded].state, "non_ammessa",
            "{backend}"
        );

        service
            .fire(&parent, &cmd("apri_tavoli", json!({})), None)
            .await
            .expect("apri_tavoli");
        let convened = service
            .fire(
                &parent,
                &cmd(
                    "convoca_tavolo",
                    json!({
                        "data_tavolo": "2027-01-20T10:00:00+01:00",
                        "luogo_tavolo": "Sala",
                        "ordine_del_giorno_tavolo": ["Bisogni"]
                    }),
                ),
                None,
            )
            .await
            .expect("convoca_tavolo");
        assert_eq!(convened.instance.state, "tavolo_convocato", "{backend}");

        let scheduler = scheduler(&service);
        settle(&scheduler).await;
        let children: Vec<store::InstanceRow> = service
            .store()
            .instances(&Default::default())
            .await
            .expect("instances")
            .into_iter()
            .filter(|i| i.parent_id.as_deref() == Some(parent.as_str()))
            .collect();
        assert_eq!(children.len(), 1, "{backend}: one tavolo: {children:#?}");
        let child = &children[0];
        assert_eq!(child.definition_id, "convocazione_tavolo", "{backend}");
        assert_eq!(child.state, "bozza", "{backend}");
        assert_eq!(
            child.data.variables["partecipanti"],
            json!(["ets-a"]),
            "{backend}: only the admitted ETS is convened"
        );
        assert_eq!(
            child.data.variables["data_seduta"],
            json!("2027-01-20T10:00:00+01:00"),
            "{backend}"
        );
        assert_eq!(child.data.variables["luogo"], json!("Sala"), "{backend}");
        assert_eq!(
            child.data.variables["ordine_del_giorno"],
            json!(["Bisogni"]),
            "{backend}"
        );
        assert_eq!(
            child.data.parent,
            Some(ParentLink {
                instance_id: parent.clone(),
                event: "tavolo_concluso".into(),
            }),
            "{backend}"
        );
        let child = child.id.clone();

        let upd = Actor {
            id: "ufficio.piano".into(),
            role: "ufficio_di_piano".into(),
        };
        let drive = |event: &'static str, payload: Value| {
            let service = service.clone();
            let child = child.clone();
            let upd = upd.clone();
            async move {
                service
                    .fire(&child, &as_actor(upd, event, payload), None)
                    .await
                    .unwrap_or_else(|e| panic!("{event}: {e}"))
                    .instance
            }
        };
        drive("convoca", json!({})).await;
        clock.set(common::at("2027-01-20T10:00:00+01:00"));
        drive("apri_seduta", json!({})).await;
        drive("chiudi_seduta", json!({})).await;
        let done = drive(
            "approva_verbale",
            json!({"link_verbale": "https://ambito.example.it/verbali/1"}),
        )
        .await;
        assert_eq!(done.state, "concluso", "{backend}");
        assert!(done.is_final, "{backend}");
        assert_eq!(
            instance(&service, &parent).await.state,
            "tavolo_convocato",
            "{backend}: the parent waits for the scheduler"
        );

        settle(&scheduler).await;
        let row = instance(&service, &parent).await;
        assert_eq!(row.state, "sintesi", "{backend}");
        assert_eq!(
            row.data.variables["link_verbale"], done.data.variables["link_verbale"],
            "{backend}: the parent takes the verbale"
        );
        assert_eq!(
            row.data.variables["link_verbale"],
            json!("https://ambito.example.it/verbali/1"),
            "{backend}"
        );
        let resumed = |history: &[store::HistoryRow]| -> Vec<store::HistoryRow> {
            history
                .iter()
                .filter(|h| h.event == "tavolo_concluso")
                .cloned()
                .collect()
        };
        let history = service.store().history(&parent).await.expect("history");
        let rows = resumed(&history);
        assert_eq!(rows.len(), 1, "{backend}: {history:#?}");
        assert_eq!(rows[0].actor.role, "system", "{backend}");
        assert_eq!(rows[0].from_state.as_deref(), Some("tavolo_convocato"));
        assert_eq!(rows[0].to_state, "sintesi", "{backend}");

        // Idempotent: ticking again does nothing, and the resume row dispatched again (a
        // crash before it was marked done) does not resume the parent twice.
        assert_eq!(
            scheduler.tick().await.expect("tick"),
            Outcome::Idle,
            "{backend}"
        );
        let resume_rows: Vec<store::OutboxRow> = service
            .store()
            .outbox_rows(None)
            .await
            .expect("outbox")
            .into_iter()
            .filter(|r| r.kind == "resume_parent")
            .collect();
        assert_eq!(resume_rows.len(), 1, "{backend}: {resume_rows:#?}");
        assert_eq!(resume_rows[0].status, OutboxStatus::Done, "{backend}");
        ResumeParent::new(service.clone())
            .dispatch(&resume_rows[0])
            .await
            .expect("dispatch again");
        let again = instance(&service, &parent).await;
        assert_eq!(again.version, row.version, "{backend}");
        assert_eq!(again.state, "sintesi", "{backend}");
        let history = service.store().history(&parent).await.expect("history");
        assert_eq!(resumed(&history).len(), 1, "{backend}: {history:#?}");
    }
}
